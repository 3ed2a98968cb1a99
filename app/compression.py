"""Gzip for responses, with ISA-L's deflate when the `isal` package is installed.

Why: a digit-model trace is ~5 MB of JSON, and zlib at level 1 (Starlette's GZipMiddleware)
takes 40–60 ms to compress it on a 2-core machine, several times everything else the
request costs. ISA-L's level 1 takes ~13 ms and its output is a little smaller (1.92 vs
1.97 MB). The compressed bytes differ; what a client decompresses does not. Without `isal`,
or with a Starlette whose GZipResponder lacks the `compressor` hook, this is Starlette's
middleware unchanged.
"""

from __future__ import annotations

import zlib

from starlette.datastructures import Headers
from starlette.middleware.gzip import GZipMiddleware, GZipResponder
from starlette.types import Receive, Scope, Send

try:
    from isal import isal_zlib
except ImportError:  # optional: zlib then
    isal_zlib = None


class IsalGZipResponder(GZipResponder):
    """Starlette's responder (thresholds, excluded types, compression off the event loop for
    large bodies) with ISA-L's compressor. ISA-L has levels 0–3; higher ones mean 3."""

    @property
    def compressor(self):  # type: ignore[override]
        if self._compressor is None:
            level = min(self.compresslevel, isal_zlib.ISAL_BEST_COMPRESSION)
            self._compressor = isal_zlib.compressobj(
                level, isal_zlib.DEFLATED, 16 + isal_zlib.MAX_WBITS
            )
        return self._compressor


def isal_available() -> bool:
    return isal_zlib is not None and isinstance(
        getattr(GZipResponder, "compressor", None), property
    )


class GZipMiddlewareFast(GZipMiddleware):
    """`GZipMiddleware` that compresses with ISA-L when `isal_available()`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not isal_available()
            or "gzip" not in Headers(scope=scope).get("Accept-Encoding", "")
        ):
            await super().__call__(scope, receive, send)
            return
        responder = IsalGZipResponder(
            self.app,
            self.minimum_size,
            compresslevel=self.compresslevel,
            thread_minimum_size=self.thread_minimum_size,
            exclude_content_types=self.exclude_content_types,
        )
        await responder(scope, receive, send)


def gzip_bytes(body: bytes, level: int) -> bytes:
    """`body` gzipped in one go, as `GZipMiddlewareFast` compresses a one-message response
    (ISA-L when `isal_available()`, levels above 3 meaning 3; else zlib)."""
    if isal_available():
        level = min(level, isal_zlib.ISAL_BEST_COMPRESSION)
        c = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 16 + isal_zlib.MAX_WBITS)
    else:
        c = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return c.compress(body) + c.flush()
