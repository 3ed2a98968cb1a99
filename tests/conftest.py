"""Shared fixtures: a tiny 28×28 classifier saved as a bundled-style model, and the app.

The app tests never depend on the trained digit model: they use `tiny_models_dir`, a model
directory with a small "digits" network (seeded, untrained), so they are fast and exact.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_SPEC = {
    "input_shape": [1, 28, 28],
    "layers": [
        {"type": "conv2d", "out_channels": 2, "kernel_size": 5, "stride": 3, "activation": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ],
    "loss": "cross_entropy",
}
TINY_META = {"description": "a tiny untrained test model", "dataset": "none",
             "test_accuracy": 0.1}


def make_models_dir(directory: Path) -> Path:
    from cnncore import Network, models

    directory.mkdir(parents=True, exist_ok=True)
    net = Network.from_spec(TINY_SPEC, seed=1)
    models.save(net, directory / "digits", TINY_META)
    return directory


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
