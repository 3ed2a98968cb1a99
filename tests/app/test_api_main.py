"""app.main: the module-level app, the page router when present, BLAS threads."""

from __future__ import annotations

import ctypes

import pytest

from app import main


def test_module_level_app_is_built():
    from fastapi.testclient import TestClient

    with TestClient(main.app) as c:
        assert c.get("/api/health").status_code == 200
        assert c.get("/").status_code == 200  # the page router, or a redirect to /docs
        assert "/api/trace" in c.get("/openapi.json").json()["paths"]


def _openblas():
    with open("/proc/self/maps") as f:
        libs = sorted({line.split()[-1] for line in f if "openblas" in line.lower()})
    for path in libs:
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads"):
            getter = getattr(lib, name, None)
            if getter is not None:
                return getter
    return None


def test_limit_blas_threads():
    import numpy  # noqa: F401  (loads OpenBLAS)

    getter = _openblas()
    if getter is None:
        pytest.skip("NumPy is not linked to OpenBLAS here")
    before = getter()
    try:
        assert main.limit_blas_threads(1)
        assert getter() == 1
    finally:
        main.limit_blas_threads(before)
    assert not main.limit_blas_threads(0)
