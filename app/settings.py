"""Every knob of the web layer in one place: limits, paths, CORS.

Values come from the environment (prefix ``CNNVIZ_``) once per process; tests build their own
`Settings` and pass it to `create_app`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MiB = 1024 * 1024

# The largest side of an image POST /api/predict accepts (JSON or upload), in pixels. The one
# place it is written: Settings, the request schema and the docs read it from here.
MAX_IMAGE_SIDE = 512


def _data_dir(name: str) -> Path:
    """The page's `static/` or `templates/`: package data of the installed wheel (next to these
    modules, found through importlib.resources), or the checkout's top-level folder."""
    from importlib.resources import files

    packaged = files(__package__ or "app") / name
    if packaged.is_dir():
        return Path(str(packaged))
    return ROOT / name


def _env_list(name: str) -> tuple[str, ...]:
    raw = os.environ.get(name, "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _env_path(name: str) -> Path | None:
    raw = os.environ.get(name, "").strip()
    return Path(raw) if raw else None


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


@dataclass(frozen=True)
class Settings:
    # Paths
    static_dir: Path = field(default_factory=lambda: _data_dir("static"))
    templates_dir: Path = field(default_factory=lambda: _data_dir("templates"))
    # None: cnncore's bundled models (cnncore/models/<name>.json + .npz)
    models_dir: Path | None = None

    # Request limits
    max_body_bytes: int = 4 * MiB
    max_upload_bytes: int = 2 * MiB
    max_onnx_bytes: int = 3 * MiB  # POST /api/models (.onnx); under max_body_bytes
    max_image_side: int = MAX_IMAGE_SIDE

    # Caps for a custom network in POST /api/trace
    max_input_shape: tuple[int, int, int] = (3, 64, 64)
    max_layers: int = 12
    max_channels: int = 64
    max_multiply_adds: int = 50_000_000
    # numbers in one trace response (every recorded tensor, parameters and their gradients)
    max_trace_values: int = 1_000_000
    # |value| of an input, a parameter or a target
    max_abs_value: float = 1e6
    max_learning_rate: float = 10.0
    max_seed: int = 2**32 - 1

    # Train mode (WebSocket /api/train): one run per connection, all of it freed on close.
    train_max_runs: int = 4  # concurrent runs per worker process; more get close code 1013
    train_max_steps: int = 100_000
    train_max_batch_size: int = 256
    # per sample; the digit network needs ~2.9 M, LeNet ~0.3 M
    train_max_multiply_adds: int = 10_000_000
    # no client message for this long while the run is not training (paused, finished, or
    # before `start`) closes the connection (1001); a run that trains is bounded by max_steps
    train_idle_timeout_s: float = 300.0
    train_max_message_bytes: int = 64 * 1024
    # messages that must not be dropped (eval, trace, export, ...) waiting for a slow client:
    # past this the training thread waits; step messages are aggregated, never queued
    train_max_queued: int = 64
    train_max_queued_bytes: int = 64 * MiB  # ... or this many bytes (a trace is ~5 MB)

    # BLAS threads per process (1: a multi-threaded BLAS on a shared 2-core machine makes a
    # trace ~10x slower under load; workers scale out instead). 0 leaves BLAS alone.
    blas_threads: int = 1

    # HTTP. Gzip pays off over a network: a digit trace is 4.9 MB as JSON, 1.9 MB gzipped,
    # which costs ~13 ms with ISA-L (the `isal` package, used when installed) or 40–60 ms
    # with zlib, at level 1. For a browser on the same machine (loopback) sending 4.9 MB
    # takes ~2 ms, so CNNVIZ_GZIP_LEVEL=0 (no gzip) is fastest there. Levels above 1 cost
    # far more for ~8% less (zlib 6: ~240 ms, 1.80 MB); ISA-L's top level is 3.
    # uvicorn (`cnnviz serve`): how long an idle keep-alive connection stays open. Longer than
    # clients keep idle pooled connections (httpx: 5 s, browsers: longer), so the server never
    # closes a connection just as a client sends on it (uvicorn's own 5 s default raced httpx's
    # 5 s and dropped ~1 request per run under load: "server disconnected without sending a
    # response"). And the listen backlog for bursts of new connections.
    keep_alive_timeout_s: int = 75
    backlog: int = 2048
    gzip_minimum_size: int = 1000
    gzip_level: int = 1
    cors_origins: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            models_dir=_env_path("CNNVIZ_MODELS_DIR"),
            cors_origins=_env_list("CNNVIZ_CORS_ORIGINS"),
            max_body_bytes=_env_int("CNNVIZ_MAX_BODY_BYTES", 4 * MiB),
            gzip_level=_env_int("CNNVIZ_GZIP_LEVEL", 1),
            blas_threads=_env_int("CNNVIZ_BLAS_THREADS", 1),
            keep_alive_timeout_s=_env_int("CNNVIZ_KEEP_ALIVE_TIMEOUT", 75),
        )


@lru_cache(maxsize=1)
def app_version() -> str:
    try:
        return version("cnnviz")
    except PackageNotFoundError:
        return "0.0.0"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
