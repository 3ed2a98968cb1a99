"""What is installed: the bundled models, the worked-example scenarios, and health."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import cnncore
from cnncore import Network, models
from cnncore.scenarios import SCENARIOS, Scenario

from ..errors import ApiError, Loc
from ..settings import Settings, app_version
from .serialize import ENCODINGS, dumps


def _not_found(loc: Loc) -> int:
    """A name in the URL path that does not exist is a 404; one in a body is a 422."""
    return 404 if loc and loc[0] == "path" else 422


# ---------------------------------------------------------------------------- models
def model_names(settings: Settings) -> list[str]:
    if settings.models_dir is None:
        return models.available()
    d = settings.models_dir
    return sorted(p.stem for p in d.glob("*.json") if p.with_suffix(".npz").exists())


@lru_cache(maxsize=16)
def _load_from(directory: Path, name: str) -> tuple[Network, dict]:
    return models.load_file(directory / name)


def load_model(settings: Settings, name: str, loc: Loc) -> tuple[Network, dict]:
    """The cached (read-only) network and metadata of an installed model."""
    names = model_names(settings)
    if name not in names:
        raise ApiError(
            loc,
            f"unknown model {name!r}; available: "
            f"{', '.join(names) or 'none (no model is installed yet)'}",
            "unknown_model",
            _not_found(loc),
        )
    if settings.models_dir is None:
        return models.load(name)
    return _load_from(settings.models_dir, name)


def _model_summary(name: str, net: Network, meta: dict) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    out.update({k: v for k, v in meta.items() if k not in ("name", "network", "params")})
    out.setdefault("description", None)
    out.setdefault("dataset", None)
    out.setdefault("test_accuracy", None)
    out["network"] = net.spec
    return out


def models_json(settings: Settings) -> bytes:
    items = []
    for name in model_names(settings):
        net, meta = load_model(settings, name, ("path", "name"))
        items.append(_model_summary(name, net, meta))
    return dumps(items)


def model_json(settings: Settings, name: str) -> bytes:
    return model_json_etag(settings, name)[0]


def model_json_etag(settings: Settings, name: str, encoding: str = "json") -> tuple[bytes, str]:
    """The model's JSON (with its ~114k parameters for the digit model) and its ETag, built
    once per process: the model files are read-only while the server runs."""
    load_model(settings, name, ("path", "name"))  # 404 for an unknown name
    return _model_bytes(settings.models_dir, name, encoding)


@lru_cache(maxsize=16)
def _model_bytes(models_dir: Path | None, name: str, encoding: str) -> tuple[bytes, str]:
    if models_dir is None:
        net, meta = models.load(name)
    else:
        net, meta = _load_from(models_dir, name)
    out = _model_summary(name, net, meta)
    out["params"] = net.params
    body = ENCODINGS[encoding][1](out)
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


# ---------------------------------------------------------------------------- scenarios
def get_scenario(sid: str, loc: Loc) -> Scenario:
    if sid not in SCENARIOS:
        raise ApiError(
            loc,
            f"unknown scenario {sid!r}; available: {', '.join(SCENARIOS)}",
            "unknown_scenario",
            _not_found(loc),
        )
    return SCENARIOS[sid]


@lru_cache(maxsize=64)
def scenario_network(sid: str) -> Network:
    """The scenario's network, built once (read-only, like the bundled models)."""
    return SCENARIOS[sid].network()


def scenarios_json() -> bytes:
    return dumps([{"id": s.id, "title": s.title, "note": s.note} for s in SCENARIOS.values()])


def scenario_json(sid: str) -> bytes:
    out = get_scenario(sid, ("path", "id")).to_dict()
    out["network"] = scenario_network(sid).spec
    return dumps(out)


# ---------------------------------------------------------------------------- health
def health(settings: Settings) -> dict[str, Any]:
    return {
        "status": "ok",
        "version": app_version(),
        "engine": cnncore.__version__,
        "models": model_names(settings),
    }
