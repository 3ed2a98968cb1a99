"""Shared fixtures: a tiny 28×28 classifier saved as a bundled-style model, and the app.

The app tests never depend on the trained digit model: they use `tiny_models_dir`, a model
directory with a small "digits" network (seeded, untrained), so they are fast and exact.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "app"))
from api_helpers import make_models_dir  # noqa: E402


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_models_dir(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def static_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("static")
    (d / "hello.css").write_text("body { color: black; }\n")
    return d


@pytest.fixture(scope="session")
def settings(tiny_models_dir: Path, static_dir: Path):
    from app.settings import Settings

    return Settings(models_dir=tiny_models_dir, static_dir=static_dir)


@pytest.fixture(scope="session")
def app(settings):
    from app.main import create_app

    return create_app(settings)


@pytest.fixture(scope="session")
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


# `make test` sets CNNVIZ_FAIL_ON_SKIP=1: there every test must run (the PyTorch oracle, the
# MNIST data, Chromium and the trained model are all installed by it), so a skipped test, e.g. a
# broken import turned into a quiet importorskip, fails the run instead of passing unnoticed.
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CNNVIZ_FAIL_ON_SKIP") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if skipped and os.environ.get("CNNVIZ_FAIL_ON_SKIP") == "1":
        terminalreporter.write_sep(
            "=", f"FAILED: {len(skipped)} test(s) skipped under CNNVIZ_FAIL_ON_SKIP=1", red=True
        )
        for rep in skipped[:20]:
            reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
            terminalreporter.write_line(f"  {rep.nodeid}: {reason}")
