"""One JSON error body for every 4xx and 5xx.

    {"detail": [{"loc": ["body", "network", "layers", 2, "kernel_size"],
                 "msg": "layer 2 (conv2d): kernel_size 5 is larger than ...",
                 "type": "spec_error"}]}

`loc` is the path to the offending field (FastAPI's convention: "body", "path", "query" first),
`msg` says the rule in words, `type` is a stable machine-readable code. FastAPI's own
validation errors keep this shape but lose `input` and `ctx`, so a rejected 4 MiB array is
never echoed back.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

log = logging.getLogger("cnnviz")

Loc = tuple[str | int, ...]

_HTTP_TYPES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
}


class ApiError(Exception):
    """An error the client can fix. Raised by the service layer, rendered by `api_error_handler`."""

    def __init__(self, loc: Loc, msg: str, type: str = "invalid", status: int = 422):
        super().__init__(msg)
        self.loc, self.msg, self.type, self.status = tuple(loc), msg, type, status

    def item(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "msg": self.msg, "type": self.type}


def error_body(items: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"detail": items})


def error_response(status: int, items: list[dict[str, Any]], headers=None) -> Response:
    return Response(
        error_body(items), status_code=status, media_type="application/json", headers=headers
    )


def _clean(err: dict[str, Any]) -> dict[str, Any]:
    msg = str(err.get("msg", "invalid value"))
    ctx = err.get("ctx") or {}
    if err.get("type") == "json_invalid" and "error" in ctx:
        msg = f"the body is not valid JSON ({ctx['error']}); NaN and Infinity are not JSON"
    loc = [p if isinstance(p, int | str) else str(p) for p in err.get("loc", ())]
    return {"loc": loc, "msg": msg, "type": str(err.get("type", "invalid"))}


async def validation_error_handler(request: Request, exc: RequestValidationError) -> Response:
    return error_response(422, [_clean(e) for e in exc.errors()])


async def api_error_handler(request: Request, exc: ApiError) -> Response:
    return error_response(exc.status, [exc.item()])


async def http_error_handler(request: Request, exc: StarletteHTTPException) -> Response:
    detail = exc.detail
    if isinstance(detail, list):
        items = detail
    else:
        loc = ["body"] if exc.status_code in (400, 413, 415) else []
        if exc.status_code == 404:
            loc = ["path"]
        items = [
            {"loc": loc, "msg": str(detail), "type": _HTTP_TYPES.get(exc.status_code, "http_error")}
        ]
    return error_response(exc.status_code, items, headers=getattr(exc, "headers", None))


async def unhandled_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, [{"loc": [], "msg": "internal server error", "type": "internal"}])


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(Exception, unhandled_error_handler)
