"""One router per resource, plus what they share: the orjson request/response plumbing and
the thread the NumPy work runs in.

`ApiRoute` parses JSON bodies with orjson (fast, and it refuses NaN/Infinity, which Python's
json module would accept) and every handler returns bytes the service layer already
serialized, wrapped in `JSONBytes`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
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


T = TypeVar("T")

# One thread per event loop (per worker process) for the service layer's NumPy work.
# Why: that work holds the GIL nearly throughout, so a second thread cannot run beside it.
# With the default pool (40 threads) several requests' threads contend for the GIL; run on
# the event loop instead, it keeps the loop from reading other requests' bodies. Measured on
# the 2-core machine: trace (digits), 1 worker, 8 clients: 130 vs 101 requests/s with the
# default pool, p99 67 vs 147 ms; predict (280×280 JSON), 1 worker, 32 clients: p99 160 ms
# vs 1 s on the event loop. More cores: more `--workers`.
_compute: anyio.lowlevel.RunVar[anyio.CapacityLimiter] = anyio.lowlevel.RunVar("compute")


async def run_compute(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in this process's compute thread, off the event loop."""
    try:
        limiter = _compute.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(1)
        _compute.set(limiter)
    return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)


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


def multipart_file(description: str, **fields: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI `content` of a multipart form with a required binary `file` (+ `fields`)."""
    properties = {"file": {"type": "string", "format": "binary", "description": description}}
    return {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {**properties, **fields},
            }
        }
    }
