"""A bare ASGI app for `bench_api.py`'s floor: it answers every request with the bytes of one
file, read at start-up, so a request costs only uvicorn and the transfer.

    CNNVIZ_FLOOR_BODY=/tmp/body.json uvicorn floor_app:app --app-dir benchmarks

Why: `/api/trace` for the digit model must send ~4–5 MB. The p50 of this app answering with
the same bytes, under the same uvicorn and client, is what sending them costs before any
routing, validation, engine or serialization: a lower bound for the API.
"""

from __future__ import annotations

import os
from pathlib import Path

BODY = Path(os.environ["CNNVIZ_FLOOR_BODY"]).read_bytes()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    message = {"more_body": True}
    while message.get("more_body", False):  # read the request body like the API does
        message = await receive()
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
