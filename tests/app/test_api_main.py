"""app.main: the module-level app, the page or a redirect to /docs, BLAS threads."""

from __future__ import annotations

from app import main


def test_module_level_app_is_built():
    from fastapi.testclient import TestClient

    with TestClient(main.app) as c:
        assert c.get("/api/health").status_code == 200
        page = c.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<script type="module"' in page.text
        assert "/api/trace" in c.get("/openapi.json").json()["paths"]


def test_without_the_page_files_root_redirects_to_the_api_docs(tmp_path, caplog):
    """A non-editable install has no templates/: `/` must not fail, it points to /docs."""
    from fastapi.testclient import TestClient

    from app.settings import Settings

    with caplog.at_level("WARNING", logger="cnnviz"):
        app = main.create_app(Settings(templates_dir=tmp_path, static_dir=tmp_path / "none"))
    assert "has no index.html" in caplog.text
    with TestClient(app) as c:
        r = c.get("/", follow_redirects=False)
        assert r.status_code == 307
        assert r.headers["location"] == "/docs"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert c.get("/docs").status_code == 200
        assert c.get("/api/health").status_code == 200


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
