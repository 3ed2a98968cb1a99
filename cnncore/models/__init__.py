"""Bundled models: a spec JSON and a weights .npz per name, loaded without pickle."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

from ..network import Network
from ..registry import raw_layer

MODELS_DIR = Path(__file__).parent


def available() -> list[str]:
    return sorted(p.stem for p in MODELS_DIR.glob("*.json") if p.with_suffix(".npz").exists())


def save(net: Network, name: str | Path, meta: dict) -> tuple[Path, Path]:
    """Write `<name>.json` (spec + meta) and `<name>.npz` (weights as float32 arrays)."""
    base = Path(name) if isinstance(name, Path) else MODELS_DIR / name
    spec_path, weights_path = base.with_suffix(".json"), base.with_suffix(".npz")
    raw_spec = {
        "input_shape": net.spec["input_shape"],
        "loss": net.spec["loss"],
        "layers": [raw_layer(s) for s in net.spec["layers"]],
    }
    spec_path.write_text(json.dumps({"spec": raw_spec, **meta}, indent=2) + "\n")
    arrays = {
        f"{i}.{k}": v.astype(np.float32) for i, p in enumerate(net.params) for k, v in p.items()
    }
    np.savez_compressed(weights_path, **arrays)
    return spec_path, weights_path


def load_file(base: Path) -> tuple[Network, dict]:
    """Load `<base>.json` + `<base>.npz`; weights are read with allow_pickle=False."""
    doc = json.loads(base.with_suffix(".json").read_text())
    spec = doc.pop("spec")
    net = Network.from_spec(spec)
    with np.load(base.with_suffix(".npz"), allow_pickle=False) as z:
        params = [
            {k: z[f"{i}.{k}"].astype(np.float64) for k in layer.params}
            for i, layer in enumerate(net.layers)
        ]
    net.load_params(params)
    return net, doc


@cache
def load(name: str) -> tuple[Network, dict]:
    """A bundled model by name: (network in float64, metadata). Cached: treat as read-only."""
    if name not in available():
        raise KeyError(f"unknown model {name!r}; available: {', '.join(available()) or 'none'}")
    return load_file(MODELS_DIR / name)
