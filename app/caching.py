"""ETags for the API's GET answers: a browser revalidates (`Cache-Control: no-cache`) and gets
`304 Not Modified` without a body when nothing changed, so a reload downloads almost nothing.

A pure ASGI middleware for `GET /api/...` answers that are 200 and set no ETag of their own (GET
/api/models/{name} does, cached per process): it buffers the body (these answers are small
JSON), hashes it, and answers 304 when `If-None-Match` names that hash. Everything else passes
through untouched, streamed as before.
"""

from __future__ import annotations

import hashlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BUFFERED = 4 * 1024 * 1024


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def matches(header: str | None, etag: str) -> bool:
    """If-None-Match: "*" or a list of (possibly weak) ETags, one of them `etag`."""
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


class ETagMiddleware:
    def __init__(self, app: ASGIApp, prefix: str = "/api/"):
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(self.prefix)
        ):
            await self.app(scope, receive, send)
            return
        inm = None
        for name, value in scope.get("headers", ()):
            if name == b"if-none-match":
                inm = value.decode("latin-1")
        start: Message | None = None
        chunks: list[bytes] = []
        passthrough = False

        async def capture(message: Message) -> None:
            nonlocal start, passthrough
            if passthrough:
                await send(message)
                return
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                if message["status"] != 200 or any(n.lower() == b"etag" for n, _ in headers):
                    passthrough = True
                    await send(message)
                    return
                start = message
                return
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                size = sum(len(c) for c in chunks)
                if message.get("more_body", False) and size <= MAX_BUFFERED:
                    return
                body = b"".join(chunks)
                assert start is not None
                if message.get("more_body", False):  # too large: send as it comes
                    passthrough = True
                    await send(start)
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                    return
                etag = etag_of(body)
                headers = [
                    (n, v)
                    for n, v in start.get("headers", [])
                    if n.lower() not in (b"cache-control", b"content-length")
                ]
                headers += [(b"etag", etag.encode()), (b"cache-control", b"no-cache")]
                if matches(inm, etag):
                    await send({"type": "http.response.start", "status": 304, "headers": headers})
                    await send({"type": "http.response.body", "body": b""})
                    return
                headers.append((b"content-length", str(len(body)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await self.app(scope, receive, capture)
