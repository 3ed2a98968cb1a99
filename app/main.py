"""Builds the FastAPI app: routers, middleware, error handlers, static files.

`cnnviz serve` runs uvicorn with the factory `create_app` (in the wheel this package is
`cnnviz`, in a checkout `app`); tests call `create_app(Settings(...))`. Importing this module
does no work: the module attribute `app` is built on first access (for `uvicorn app.main:app`).

Middleware, outermost first: security headers (wrapping even Starlette's 500 page) ->
server errors -> CORS (only when CNNVIZ_CORS_ORIGINS is set) -> body-size cap -> request gzip
-> response gzip -> ETags of GET /api answers -> exception handlers -> routes.

Plain JSON POSTs to /api/trace, /api/learn and /api/predict skip everything after the first
layer (`routes.FastJSONPost`: the same model, service, headers and answers; anything it does
not serve goes down the stack above).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from cnncore.memory import share_one_arena

from . import errors
from .assets import VersionedStaticFiles, scan
from .caching import ETagMiddleware
from .compression import GZipMiddlewareFast
from .routes import docs, health, models, onnx, pages, predict, samples, scenarios, trace, train
from .security import BodyLimitMiddleware, GzipRequestMiddleware, SecurityHeadersMiddleware
from .settings import Settings, app_version, get_settings

log = logging.getLogger("cnnviz")

DESCRIPTION = """
The REST API of cnnviz: a real NumPy CNN (cnncore) computes forward **and** backward
propagation on the server and returns every tensor, unrounded float64.

* `POST /api/trace`: one sample through a bundled model, a worked-example scenario, or a
  network of your own; every layer's `a_prev, z, a` and `dC_da, dC_dz, dC_db, dC_dw,
  dC_da_prev`; optionally one SGD step.
* `POST /api/predict`: a drawing (JSON) or a PNG/JPEG upload, classified by the digit model.
* `GET /api/models`, `GET /api/scenarios`: what is bundled.

Errors (every 4xx) are `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`, where
`loc` names the field. Caps: body 4 MiB, upload 2 MiB, image {side}×{side}; custom networks: input
<= 3×64×64, <= 12 layers, <= 64 channels, <= 50 M multiply-adds, <= 1 M numbers in the
trace. See docs/api.md.
"""


class CnnvizAPI(FastAPI):
    """FastAPI with the security headers outside everything, Starlette's 500 page included."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeadersMiddleware(super().build_middleware_stack(), self.state.fast)

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            schema = super().openapi()
            trace.fill_examples(schema, self.state.settings)
        return self.openapi_schema


def limit_blas_threads(n: int) -> bool:
    """Run NumPy's BLAS with `n` threads in this process (threadpoolctl works after NumPy is
    loaded, as it is when `cnnviz serve` starts). 0 leaves BLAS alone. True if a limit was set.

    Why: on a small shared machine a multi-threaded BLAS makes each trace wait for a busy
    core; one thread per worker process, scaled out with --workers, is faster.
    """
    if n <= 0:
        return False
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n, user_api="blas")
    return True


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
REUSE_MMAP_THRESHOLD = 16 << 20
REUSE_TRIM_THRESHOLD = 32 << 20


def reuse_freed_memory(
    mmap_threshold: int = REUSE_MMAP_THRESHOLD, trim_threshold: int = REUSE_TRIM_THRESHOLD
) -> bool:
    """Let the next request reuse the memory the previous one freed (glibc only; a no-op
    elsewhere). True if glibc agreed.

    Why: a digit trace allocates ~10 MB (the engine's tensors, the 2-5 MB response) and frees
    it when the answer is sent. With glibc's defaults that memory went back to the OS after
    every request (freed at the heap's top beyond the adaptive trim threshold, or mmapped and
    unmapped), and the next request page-faulted all of it in again: measured under a real
    uvicorn, ~1,600 minor page faults per lean digit trace, compute 5.1 ms instead of 3.0 ms.
    Blocks up to `mmap_threshold` now come from the heap, and up to `trim_threshold` of free
    memory stays at its top: at most 32 MiB per worker kept for the next request, never a
    growth per request. Train mode raises both when a run starts and trims when it ends.
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, mmap_threshold)
    ok &= mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    return bool(ok)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # in each worker process as it starts serving, not when the module is imported
    limit_blas_threads(app.state.settings.blas_threads)
    share_one_arena()  # before any worker thread allocates: Train mode's memory goes back
    reuse_freed_memory()  # no page faults for the memory each request allocates again
    yield


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = CnnvizAPI(
        title="cnnviz API",
        version=app_version(),
        description=DESCRIPTION.replace("{side}", str(settings.max_image_side)),
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.settings = settings
    # POST /api/trace and /api/learn served from the outermost layer (routes.FastJSONPost);
    # not with CORS configured, whose middleware must see every request
    app.state.fast = {} if settings.cors_origins else trace.fast_routes(settings)
    errors.install(app)

    app.add_middleware(ETagMiddleware)  # inside gzip: it hashes the uncompressed body
    if settings.gzip_level > 0:
        app.add_middleware(
            GZipMiddlewareFast,
            minimum_size=settings.gzip_minimum_size,
            compresslevel=settings.gzip_level,
        )
    app.add_middleware(GzipRequestMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["content-type"],
        )

    for module in (health, models, onnx, scenarios, trace, predict, samples, docs, train):
        app.include_router(module.router)

    assets = scan(settings.static_dir) if settings.static_dir.is_dir() else None
    if (settings.templates_dir / "index.html").is_file():
        app.include_router(pages.page_router(settings.templates_dir, assets))
    else:
        # e.g. a non-editable `pip install .`: the wheel holds the Python packages only
        log.warning(
            "%s has no index.html: GET / redirects to the API docs (run from a checkout, "
            "as `make run` does, for the browser app)",
            settings.templates_dir,
        )

        @app.get("/", include_in_schema=False)
        def root() -> RedirectResponse:
            return RedirectResponse("/docs")

    if assets is not None:
        app.mount(
            "/static",
            VersionedStaticFiles(directory=settings.static_dir, version=assets.version),
            name="static",
        )
    swagger = docs.swagger_ui_dir()
    if swagger is not None:
        app.mount(docs.ASSETS, StaticFiles(directory=str(swagger)), name="docs-assets")
    return app


def __getattr__(name: str) -> Any:
    """`app`: the application from the environment's Settings, built on first access."""
    if name == "app":
        global app
        app = create_app()
        return app
    raise AttributeError(name)
