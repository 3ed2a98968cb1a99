"""Bare ASGI apps for `bench_api.py`'s floor: no FastAPI, no middleware, no validation, no
thread, so a request costs only uvicorn, the transfer and (in the second mode) the work itself.

    CNNVIZ_FLOOR_BODY=/tmp/body.json uvicorn floor_app:app --app-dir benchmarks
    CNNVIZ_FLOOR_WORKLOAD="trace (digits)" uvicorn floor_app:app --app-dir benchmarks

* `CNNVIZ_FLOOR_BODY`: answers every request with the bytes of one file, read at start-up.
  `/api/trace` for the digit model sends 2–5 MB; the p50 of this app answering with the same
  bytes, under the same uvicorn and client, is what sending them costs before any routing,
  validation, engine or serialization: the transfer part of the floor.
* `CNNVIZ_FLOOR_WORKLOAD` (a digit-trace workload of `bench_api.py`): every request runs the
  engine, the selection and the serializer for that workload's fixed input, on the event loop,
  and sends the result (the same bytes as the API). Its p50 is engine + serialize + send in one
  span, as the API runs them but without the framework: the API's p50 minus this one is what
  FastAPI, validation and the compute thread cost, with the same exposure to a busy machine.
"""

from __future__ import annotations

import os
from pathlib import Path

if "CNNVIZ_FLOOR_WORKLOAD" in os.environ:
    from bench_api import trace_maker

    _make = trace_maker(os.environ["CNNVIZ_FLOOR_WORKLOAD"])
    BODY = b""
else:
    _make = None
    BODY = Path(os.environ["CNNVIZ_FLOOR_BODY"]).read_bytes()


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        message = await receive()
        if message["type"] == "lifespan.startup":
            if _make is not None:
                from app.main import reuse_freed_memory

                reuse_freed_memory()  # the API server's allocator settings
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
        if message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    message = {"more_body": True}
    while message.get("more_body", False):  # read the request body like the API does
        message = await receive()
    body = BODY if _make is None else _make()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
