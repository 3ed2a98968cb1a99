"""Shared fixtures: a tiny 28×28 classifier saved as a bundled-style model, and the app.

The app tests never depend on the trained digit model: they use `tiny_models_dir`, a model
directory with a small "digits" network (seeded, untrained), so they are fast and exact.
"""

from __future__ import annotations

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
