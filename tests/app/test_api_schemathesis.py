"""Property-based: schemathesis generates requests from the app's own OpenAPI schema (valid
and invalid ones, a bounded number per operation) and no response may be a 5xx."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import schemathesis
from api_helpers import make_models_dir
from hypothesis import HealthCheck, settings

from app.main import create_app
from app.security import CSP
from app.settings import Settings

_models = make_models_dir(Path(tempfile.mkdtemp(prefix="cnnviz-models-")))
atexit.register(shutil.rmtree, _models, ignore_errors=True)
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(Settings(models_dir=_models)))


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case):
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    csp = response.headers["content-security-policy"]
    assert (csp[0] if isinstance(csp, list) else csp) == CSP
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body["detail"], list) and body["detail"]
        assert {"loc", "msg", "type"} <= set(body["detail"][0])
