"""One router per resource, plus what they share: the orjson request/response plumbing and
the thread the NumPy work runs in.

`ApiRoute` parses JSON bodies with orjson (fast, and it refuses NaN/Infinity, which Python's
json module would accept) and every handler returns bytes the service layer already
serialized, wrapped in `JSONBytes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import queue
import threading
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import anyio.lowlevel
import orjson
from fastapi import Depends, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..compression import gzip_bytes
from ..errors import ApiError, error_body
from ..schemas import ErrorResponse as _ErrorResponse
from ..security import SECURITY_HEADERS, replaying
from ..settings import Settings

log = logging.getLogger("cnnviz")


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
#
# The thread is our own rather than anyio's pool behind a CapacityLimiter(1): a job is one
# queue put, and its result one call_soon_threadsafe, with no limiter, cancel scope or
# checkpoints around it: 0.05-0.08 ms less CPU per request than anyio.to_thread with a
# limiter, for 1 ms of NumPy work (side by side, in-process; docs/api.md "Performance"). A
# request that goes away before its job starts skips it.
class ComputeThread:
    """Runs jobs one at a time, in order, in one thread; the thread ends after `idle` seconds
    without a job and starts again with the next one (no thread outlives a closed loop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, idle: float = 10.0):
        self._loop = loop
        self._idle = idle
        self._jobs: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._alive = False
        self.pending = 0  # jobs submitted and not yet done (read and written on the loop only)

    def _done(self, _future: asyncio.Future[Any]) -> None:
        self.pending -= 1

    def submit(self, fn: Callable[..., T], args: tuple[Any, ...]) -> asyncio.Future[T]:
        future = self._loop.create_future()
        self.pending += 1
        future.add_done_callback(self._done)  # on the loop, when settled or cancelled
        job = (future, contextvars.copy_context(), fn, args)
        with self._lock:
            self._jobs.put(job)
            if not self._alive:
                self._alive = True
                threading.Thread(target=self._serve, name="cnnviz-compute", daemon=True).start()
        return future

    def _serve(self) -> None:
        while True:
            try:
                future, context, fn, args = self._jobs.get(timeout=self._idle)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():
                        self._alive = False
                        return
                continue
            if future.cancelled():  # its request is gone: skip the work
                continue
            try:
                result, error = context.run(fn, *args), None
            except BaseException as exc:  # handed to the awaiting request, raised there
                result, error = None, exc
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for it
                self._loop.call_soon_threadsafe(_settle, future, result, error)
            # drop this job's references now (the response belongs to the loop), not at the next job
            del future, context, fn, args, result, error


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


_compute: anyio.lowlevel.RunVar[ComputeThread] = anyio.lowlevel.RunVar("compute")


async def run_compute(fn: Callable[..., T], *args: Any, alone: bool = False) -> T:
    """`fn(*args)` in this process's compute thread, off the event loop.

    `alone`: the caller is the only request this worker is serving (`FastJSONPost` counts
    them); then, if the compute thread has no job either, `fn` runs right here on the event
    loop, which has nothing else to do meanwhile. Why: handing the work to the thread and the
    answer back costs ~1 ms per digit trace on this 2-core machine (the thread runs on the
    other core: the wake-ups and a 2-6 MB body built in the other core's cache), measured
    side by side under uvicorn at 1 client: p50 10.9-11.6 ms through the thread, 10.2 ms
    here, 9.9 ms for the bare app (docs/api.md, Performance). Under load, with other requests
    in flight, the thread keeps the loop free to read them, as above."""
    try:
        worker = _compute.get()
    except LookupError:
        worker = ComputeThread(asyncio.get_running_loop())
        _compute.set(worker)
    if alone and worker.pending == 0:
        return fn(*args)
    return await worker.submit(fn, args)


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


class FastJSONPost:
    """`POST <path>` with a JSON body, served straight from the outermost ASGI layer
    (`SecurityHeadersMiddleware`) when the request is the plain, valid kind the page and REST
    clients send; everything else goes to `fallback`, the whole FastAPI stack, unchanged.

    Why: FastAPI's request machinery (its exception and exit-stack middleware, routing over
    every route, the request object, dependencies, body validation through the route's field,
    the response class) and our middleware layers cost ~0.4-0.5 ms of event-loop CPU per
    request in a real worker, where the trace itself needs only: the body read once, parsed
    with orjson, validated with the same pydantic model (`model_validate`), the work in the
    compute thread, and one response message (docs/api.md, Performance). With `model` None
    the service gets the raw body and parses and checks it itself (POST /api/predict).

    Same behaviour as the route it stands in for (the route stays registered: OpenAPI, and the
    fallback): the body is served here only with `Content-Type: application/json`, a
    `Content-Length` within `max_body_bytes` and no `Content-Encoding`; if the JSON or the
    validation fails, the body already read is replayed to `fallback`, so every error is
    FastAPI's own 422 naming the field. `ApiError` from the service gives the same error body
    as `errors.api_error_handler`; any other exception the 500 of
    `errors.unhandled_error_handler`. The response carries what the middleware stack adds:
    the security headers, and (with gzip on) `Vary: Accept-Encoding` and gzip when the client
    accepts it and the body has at least `gzip_minimum_size` bytes, compressed in the compute
    thread right after the body is built (the middleware compresses it in a worker thread).
    """

    serving = 0  # this worker's requests being served here, from the body read to the answer

    def __init__(
        self,
        model: type[BaseModel] | None,
        fn: Callable[[Any, Settings], bytes | list[bytes]],
        s: Settings,
    ):
        self.model, self.fn, self.settings = model, fn, s
        self.max_bytes = s.max_body_bytes
        self.gzip_level, self.gzip_min = s.gzip_level, s.gzip_minimum_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send, fallback: ASGIApp):
        length = ctype = accept = None
        encoded = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"content-type":
                ctype = value
            elif name == b"accept-encoding":
                accept = value
            elif name == b"content-encoding":
                encoded = True
        if (
            encoded
            or length is None
            or not length.isdigit()
            or int(length) > self.max_bytes
            or ctype is None
            or ctype.split(b";", 1)[0].strip().lower() != b"application/json"
        ):
            await fallback(scope, receive, send)
            return
        FastJSONPost.serving += 1
        try:
            await self._serve(scope, receive, send, fallback, accept)
        finally:
            FastJSONPost.serving -= 1

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, fallback: ASGIApp, accept: bytes | None
    ) -> None:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return
        raw = message.get("body", b"")
        if message.get("more_body", False):
            chunks = [raw]
            while message.get("more_body", False):
                message = await receive()
                if message["type"] != "http.request":
                    return
                chunks.append(message.get("body", b""))
            raw = b"".join(chunks)
        try:
            req = raw if self.model is None else self.model.model_validate(orjson.loads(raw))
        except (orjson.JSONDecodeError, ValidationError):
            # FastAPI's own errors (json_invalid, missing, ...) with its `loc`s
            await fallback(scope, replaying(raw, receive), send)
            return
        gzip = self.gzip_level > 0 and accept is not None and b"gzip" in accept
        try:
            # a custom network's cost is the user's (up to the settings' limits): in the thread
            alone = FastJSONPost.serving == 1 and getattr(req, "network", None) is None
            status, (pieces, gzipped) = 200, await run_compute(self._work, req, gzip, alone=alone)
        except ApiError as exc:
            status, pieces, gzipped = exc.status, [error_body([exc.item()])], False
        except Exception:
            log.exception("unhandled error on POST %s", scope["path"])
            status, pieces, gzipped = 500, [_INTERNAL], False
        length = sum(len(p) for p in pieces)
        headers = [
            (b"content-length", b"%d" % length),
            (b"content-type", b"application/json"),
        ]
        if self.gzip_level > 0 and (gzipped or length >= self.gzip_min):
            headers.append((b"vary", b"Accept-Encoding"))
            if gzipped:
                headers.append((b"content-encoding", b"gzip"))
            elif gzip:  # an error body that long, compressed as the middleware would
                pieces = [gzip_bytes(b"".join(pieces), self.gzip_level)]
                headers[0] = (b"content-length", b"%d" % len(pieces[0]))
                headers.append((b"content-encoding", b"gzip"))
        headers.extend(SECURITY_HEADERS)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        for piece in pieces[:-1]:  # a long answer in the pieces it was built in, not joined
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": pieces[-1] if pieces else b""})

    def _work(self, req: BaseModel, gzip: bool) -> tuple[list[bytes], bool]:
        body = self.fn(req, self.settings)
        pieces = body if isinstance(body, list) else [body]
        if gzip and sum(len(p) for p in pieces) >= self.gzip_min:
            return [gzip_bytes(b"".join(pieces), self.gzip_level)], True
        return pieces, False


_INTERNAL = error_body([{"loc": [], "msg": "internal server error", "type": "internal"}])
