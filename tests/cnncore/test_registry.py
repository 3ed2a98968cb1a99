"""One registration per layer type: every consumer knows every registered type.

Walks `cnncore.registry.TYPES` and runs each type's example through the spec rules, the layer
classes, the network's trace, the naive oracle, the PyTorch oracle, a saved model's spec, the
API's response-size count and the OpenAPI schema; a type one of them does not know fails here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.schemas import _LAYER_SCHEMA, _SPEC_SCHEMA
from app.services.custom import trace_values
from cnncore import naive
from cnncore.activations import ACTIVATIONS
from cnncore.network import Network
from cnncore.registry import LAYER_TYPES, REQUIRED, TYPES, build_layer, raw_layer
from cnncore.spec import normalize_spec
from tests import torch_oracle

INPUT = [2, 5, 5]


def _spec(lt) -> dict:
    tail = [] if lt.name == "flatten" else [{"type": "flatten"}]
    if lt.name == "dense":
        tail = []
    head = [{"type": "flatten"}] if lt.name == "dense" else []
    return {
        "input_shape": INPUT,
        "layers": [*head, lt.example, *tail, {"type": "dense", "units": 3}],
        "loss": "mse",
    }


def _count(entries) -> int:
    """Numbers in trace entries (nested ones included), as the API's cap counts them."""
    total = 0
    for e in entries:
        for part in ("forward", "backward"):
            total += sum(v.size for v in e[part].values() if v is not None)
        total += sum(v.size for v in e["params"].values())
        total += e["argmax"].size if "argmax" in e else 0
        split = e.get("split", {})
        total += sum(v.size for v in split.get("dC_da_prev", []))
        total += sum(v.size for k, v in split.items() if not isinstance(v, list))
        total += _count(e.get("layers", []))
        total += _count([e["projection"]] if e.get("projection") else [])
        for chain in e.get("branches", []):
            total += _count(chain)
    return total


@pytest.mark.parametrize("name", LAYER_TYPES)
def test_every_consumer_knows_every_type(name):
    lt = TYPES[name]
    assert lt.kind in ("layer", "block")
    spec = normalize_spec(_spec(lt))
    layer_spec = next(s for s in spec["layers"] if s["type"] == name)
    # fields and defaults: every field is in the normalized spec or optional
    for key, default in lt.fields.items():
        assert key in layer_spec or default is not REQUIRED, key
    # the layer class is the registered one and builds from the spec
    layer = build_layer(layer_spec)
    assert type(layer) is lt.layer_class and layer.type == name
    # the network traces it, and the naive and PyTorch oracles agree on every tensor
    net = Network.from_spec(spec, seed=1)
    x = np.random.default_rng(0).normal(size=INPUT)
    target = np.full(3, 0.5)
    trace = net.trace(x, target).to_dict()
    assert name in naive.OPS
    ref = naive.network_trace(spec, net.params, x, target)
    assert trace["loss"] == pytest.approx(ref["loss"], rel=1e-12)
    assert name in torch_oracle._LAYERS
    tloss, _ = torch_oracle.torch_trace(net, x, target)
    assert trace["loss"] == pytest.approx(tloss, rel=1e-10)
    # a saved model keeps exactly the fields a user writes, and they normalize back the same
    raw = raw_layer(layer_spec)
    assert set(raw) <= lt.allowed
    again = normalize_spec({**spec, "layers": [raw_layer(s) for s in spec["layers"]]})
    assert again == spec
    # the API's cap counts exactly the numbers a trace holds
    entries = trace["layers"]
    numbers = _count(entries) + 2 * math.prod(spec["output_shape"])
    assert trace_values(spec, False) >= numbers
    assert trace_values(spec, False) - numbers <= 2 * math.prod(layer_spec["output_shape"])
    # the OpenAPI schema lists the type and its fields
    assert name in _LAYER_SCHEMA["properties"]["type"]["enum"]
    for key in lt.fields:
        assert key in _LAYER_SCHEMA["properties"], key
    assert _SPEC_SCHEMA["properties"]["layers"]["items"] is _LAYER_SCHEMA or (
        _SPEC_SCHEMA["properties"]["layers"]["items"] == _LAYER_SCHEMA
    )


def test_the_schema_enums_are_the_registry_and_the_engine():
    assert _LAYER_SCHEMA["properties"]["type"]["enum"] == list(LAYER_TYPES)
    assert _LAYER_SCHEMA["properties"]["activation"]["enum"] == list(ACTIVATIONS)
    assert set(naive.OPS) == set(TYPES)
    assert set(torch_oracle._LAYERS) == set(TYPES)


def test_the_page_knows_every_type():
    """The overview names every registered type, and the stepper and the playground know the
    blocks (a new type must be taught to the page too)."""
    from pathlib import Path

    js = Path(__file__).resolve().parents[2] / "static" / "js"
    overview = (js / "views" / "overview.js").read_text()
    steps = (js / "steps.js").read_text()
    playground = (js / "playground" / "index.js").read_text()
    for name in LAYER_TYPES:
        assert f'"{name}"' in overview, f"views/overview.js does not name {name}"
        assert f"{name}:" in playground or f'"{name}"' in playground, f"playground: {name}"
        if TYPES[name].kind == "block":
            assert f'"{name}"' in steps, f"steps.js does not walk into {name}"
