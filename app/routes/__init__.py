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
import queue
import threading
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import anyio.lowlevel
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

    def submit(self, fn: Callable[..., T], args: tuple[Any, ...]) -> asyncio.Future[T]:
        future = self._loop.create_future()
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


async def run_compute(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in this process's compute thread, off the event loop."""
    try:
        worker = _compute.get()
    except LookupError:
        worker = ComputeThread(asyncio.get_running_loop())
        _compute.set(worker)
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
