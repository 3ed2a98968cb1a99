"""Pure ASGI middleware: security headers on every response, and a cap on the request body.

Both are plain ASGI callables (no BaseHTTPMiddleware): they add a few dict operations per
request and never buffer a response.
"""

from __future__ import annotations

import zlib
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

try:
    from isal import isal_zlib
except ImportError:  # optional: zlib then
    isal_zlib = None

from .errors import error_body

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_NAMES = {name for name, _ in SECURITY_HEADERS}


class SecurityHeadersMiddleware:
    """Adds `SECURITY_HEADERS` to every HTTP response, replacing any the app set itself.

    The outermost layer, so it also dispatches the `fast` routes: `{path: handler}` for POST
    requests, each `handler(scope, receive, send, fallback)` answering with the security
    headers itself, or handing the request to `fallback` (this layer's usual path: the whole
    app, headers added) when it is not the plain kind it serves (`routes.FastJSONPost`).
    """

    def __init__(self, app: ASGIApp, fast: dict[str, Any] | None = None):
        self.app = app
        self.fast = fast or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.fast and scope["method"] == "POST" and not scope.get("root_path"):
            handler = self.fast.get(scope["path"])
            if handler is not None:
                await handler(scope, receive, send, self.secured)
                return
        await self.secured(scope, receive, send)

    async def secured(self, scope: Scope, receive: Receive, send: Send) -> None:

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if h[0].lower() not in _NAMES]
                headers.extend(SECURITY_HEADERS)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimitMiddleware:
    """Refuses request bodies larger than `max_bytes` with 413, before the app reads them.

    A declared Content-Length over the cap is refused at once. A body without one (chunked)
    is read here up to the cap and replayed to the app; one byte more and it is refused. The
    server enforces a declared Content-Length, so such bodies cannot grow past it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send: Send, msg: str, status: int = 413) -> None:
        body = error_body(
            [{"loc": ["body"], "msg": msg, "type": "too_large" if status == 413 else "bad_request"}]
        )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        too_big = (
            f"the request body is larger than the {self.max_bytes} bytes "
            f"({self.max_bytes / 2**20:g} MiB) this server accepts"
        )
        length = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    await self._refuse(send, "Content-Length is not a number", 400)
                    return
                break
        if length is not None:
            if length > self.max_bytes:
                await self._refuse(send, too_big)
                return
            await self.app(scope, receive, send)
            return

        # No Content-Length: read (at most the cap) here, then replay.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send, too_big)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        await self.app(scope, replaying(body, receive), send)


def _inflater():
    """A gzip decompressor with zlib's interface (max_length, unconsumed_tail, eof): ISA-L's
    when the `isal` package is installed (a learner's 0.64 MB of gzipped parameters inflate in
    ~3 ms instead of ~6 ms), else zlib's."""
    if isal_zlib is None:
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    return isal_zlib.decompressobj(16 + isal_zlib.MAX_WBITS)


_INFLATE_ERRORS = (zlib.error,) if isal_zlib is None else (zlib.error, isal_zlib.error)


class GzipRequestMiddleware:
    """Accepts request bodies sent with `Content-Encoding: gzip` (the page gzips the learner's
    parameters on their way up), decompressed here to at most `max_bytes`: a gzip bomb is
    refused with 413 after `max_bytes` of output, never inflated in full. Any other
    Content-Encoding is refused with 415. Sits inside `BodyLimitMiddleware`, which caps the
    compressed bytes."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        encoding = None
        for name, value in scope.get("headers", ()):
            if name == b"content-encoding":
                encoding = value.strip().lower()
        if encoding in (None, b"identity", b""):
            await self.app(scope, receive, send)
            return
        if encoding != b"gzip":
            await _error(
                send, 415, f"Content-Encoding {encoding.decode('latin-1')!r}: only gzip is accepted"
            )
            return
        inflater = _inflater()
        out: list[bytes] = []
        size = 0
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                while chunk:
                    part = inflater.decompress(chunk, self.max_bytes + 1 - size)
                    size += len(part)
                    out.append(part)
                    if size > self.max_bytes:
                        await _error(
                            send,
                            413,
                            f"the decompressed request body is larger than the "
                            f"{self.max_bytes} bytes this server accepts",
                        )
                        return
                    chunk = inflater.unconsumed_tail
                if not message.get("more_body", False):
                    break
            if not inflater.eof:
                raise ValueError("truncated gzip stream")
        except (ValueError, *_INFLATE_ERRORS):
            await _error(send, 400, "the request body is not valid gzip")
            return
        body = b"".join(out)
        headers = [
            (n, v)
            for n, v in scope.get("headers", ())
            if n not in (b"content-encoding", b"content-length")
        ]
        headers.append((b"content-length", str(len(body)).encode()))
        scope = {**scope, "headers": headers}
        await self.app(scope, replaying(body, receive), send)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A receive() that hands the app the already-read `body` once, then the real channel."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _error(send: Send, status: int, msg: str) -> None:
    kind = {413: "too_large", 415: "unsupported_media_type"}.get(status, "bad_request")
    body = error_body([{"loc": ["header", "content-encoding"], "msg": msg, "type": kind}])
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
