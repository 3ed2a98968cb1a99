"""app.main: the module-level app, the page router when present, BLAS threads."""

from __future__ import annotations

from app import main


def test_module_level_app_is_built():
    from fastapi.testclient import TestClient

    with TestClient(main.app) as c:
        assert c.get("/api/health").status_code == 200
        assert c.get("/").status_code == 200  # the page router, or a redirect to /docs
        assert "/api/trace" in c.get("/openapi.json").json()["paths"]


def test_limit_blas_threads():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    assert before, "NumPy's BLAS is not visible to threadpoolctl"
    try:
        assert main.limit_blas_threads(1)
        assert blas_threads() == [1] * len(before)
    finally:
        main.limit_blas_threads(max(before))
    assert not main.limit_blas_threads(0)
