"""One router per resource, plus what they share: the orjson request/response plumbing.

`ApiRoute` parses JSON bodies with orjson (fast, and it refuses NaN/Infinity, which Python's
json module would accept) and every handler returns bytes the service layer already
serialized, wrapped in `JSONBytes`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from ..schemas import ErrorResponse as _ErrorResponse
from ..settings import Settings


class OrjsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class ApiRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def orjson_handler(request: Request) -> Response:
            return await handler(OrjsonRequest(request.scope, request.receive))

        return orjson_handler


class JSONBytes(Response):
    """A response whose body is JSON bytes the service layer already built."""

    media_type = "application/json"


async def settings(request: Request) -> Settings:
    # async: FastAPI runs a sync dependency in the threadpool, a hop per request for nothing
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(settings)]


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error responses an endpoint can give."""
    text = {
        404: "Unknown name or id",
        413: "Request body too large",
        415: "Unsupported content type",
        422: "Invalid input: `loc` names the field, `msg` the rule",
    }
    return {c: {"model": _ErrorResponse, "description": text.get(c, "Error")} for c in codes}
