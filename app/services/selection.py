"""What a trace response carries: the request's selection (`include`, `layers`,
`every_layer`, `exclude`, `dedupe`), the per-layer `norms`, and the finiteness check of what is
actually returned.

Without selection fields the response is today's complete, self-contained trace. Every key a
selection leaves out is simply absent; every key `dedupe` leaves out is named, with where its
values are, in the layer's `"omitted"`: `{"a_prev": "layers[2].forward.a"}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ApiError

PARTS = ("forward", "backward", "params", "argmax", "updated_params")
PART_KEYS = {
    "forward": ("a_prev", "z", "a"),
    "backward": ("dC_da", "dC_dz", "dC_db", "dC_dw", "dC_da_prev"),
    "params": ("w", "b"),
    "argmax": ("argmax",),
}
LAYER_KEYS = tuple(k for keys in PART_KEYS.values() for k in keys)

OVERFLOW = (
    "the computation overflowed (a value became infinite or NaN); use smaller input "
    "or parameter values, or a smaller learning_rate"
)
_INF_DC_DA = (
    "dC/da = -y/a of the softmax output is infinite where the target's probability a "
    "underflowed to 0 (a logit gap over ~710); backpropagation does not use it: dC/dz = a - y "
    '(backward.dC_dz) is finite and exact. JSON has no infinity: ask for "encoding": '
    '"base64" to receive the float64 values (-inf) themselves'
)


@dataclass(frozen=True)
class Selection:
    include: frozenset[str]
    layers: frozenset[int] | None  # None: every layer
    every_layer: frozenset[str]
    exclude: frozenset[str]
    dedupe: bool

    @classmethod
    def of(cls, req: Any) -> Selection:
        return cls(
            include=frozenset(PARTS if req.include is None else req.include),
            layers=None if req.layers is None else frozenset(req.layers),
            every_layer=frozenset(req.every_layer or ()),
            exclude=frozenset(req.exclude or ()),
            dedupe=bool(req.dedupe),
        )

    def keys(self, i: int) -> set[str]:
        """The per-layer keys layer `i` may carry (before dedupe)."""
        wanted = {k for part in self.include if part in PART_KEYS for k in PART_KEYS[part]}
        if self.layers is not None and i not in self.layers:
            wanted &= self.every_layer
        return wanted - self.exclude


def check_layers(sel: Selection, n_layers: int) -> None:
    if sel.layers is None:
        return
    bad = sorted(i for i in sel.layers if not 0 <= i < n_layers)
    if bad:
        raise ApiError(
            ("body", "layers"),
            f"layer index {bad[0]} is out of range: the network has layers 0 to {n_layers - 1}",
            "range",
        )


def _norm(a: Any) -> float | None:
    if a is None:
        return None
    n = float(np.sqrt(np.sum(np.square(a, dtype=np.float64))))
    return n if np.isfinite(n) else None


def _same(a: Any, b: Any) -> bool:
    """Bit for bit (so -0.0 != 0.0), any shape: the client can reuse b's values for a."""
    if a is None or b is None or a.size != b.size or a.dtype != b.dtype:
        return False
    return a is b or a.reshape(-1).tobytes() == b.reshape(-1).tobytes()


def _finite(a: Any) -> bool:
    return a is None or not isinstance(a, np.ndarray) or bool(np.isfinite(a).all())


def _all_finite(x: Any) -> bool:
    """Every number inside `x` (a block's nested entries: dicts, lists, arrays) is finite."""
    if isinstance(x, dict):
        return all(_all_finite(v) for v in x.values())
    if isinstance(x, (list, tuple)):
        return all(_all_finite(v) for v in x)
    if isinstance(x, np.ndarray):
        return x.dtype.kind not in "fc" or bool(np.isfinite(x).all())
    if isinstance(x, float):
        return bool(np.isfinite(x))
    return True


def apply(out: dict[str, Any], sel: Selection, encoding: str, softmax_ce: bool) -> dict[str, Any]:
    """The trace dict `out` (Trace.to_dict()) cut to the selection, with norms and the
    dedupe notes; raises the 422 "overflow" if a returned number is not finite.

    The one exception: a softmax + cross-entropy network's last `dC_da` can be -inf by
    definition (see `_INF_DC_DA`); it is sent as float64 with base64, left out (and said why)
    with JSON.
    """
    layers = out["layers"]
    last = len(layers) - 1
    new_layers = []
    for i, layer in enumerate(layers):
        fw, bw = layer.get("forward", {}), layer.get("backward", {})
        keys = sel.keys(i)
        entry = {
            k: v for k, v in layer.items() if k not in ("params", "forward", "backward", "argmax")
        }
        # a block's nested entries (inner layers, branches, projection, split) travel whole:
        # every number in them is returned, so every one must be finite
        if not _all_finite(entry):
            raise ApiError(("body",), OVERFLOW, "overflow")
        entry["norms"] = {
            "a": _norm(fw.get("a")),
            "dC_da": _norm(bw.get("dC_da")),
            "dC_dw": _norm(bw.get("dC_dw")),
        }
        omitted: dict[str, str] = {}
        nonfinite: dict[str, str] = {}
        if sel.dedupe:
            if "a_prev" in keys:
                keys.discard("a_prev")
                omitted["a_prev"] = "input" if i == 0 else f"layers[{i - 1}].forward.a"
            if "z" in keys and _same(fw.get("z"), fw.get("a")):
                keys.discard("z")
                omitted["z"] = f"layers[{i}].forward.a"
            if i > 0 and "dC_da_prev" in keys:
                keys.discard("dC_da_prev")
                omitted["dC_da_prev"] = f"layers[{i - 1}].backward.dC_da"
            if "dC_dz" in keys and _same(bw.get("dC_dz"), bw.get("dC_da")):
                keys.discard("dC_dz")
                omitted["dC_dz"] = f"layers[{i}].backward.dC_da"
        if (
            softmax_ce
            and i == last
            and "dC_da" in keys
            and not _finite(bw.get("dC_da"))
            and np.isfinite(bw["dC_dz"]).all()
            and not np.isnan(bw["dC_da"]).any()
        ):
            if encoding != "base64":
                keys.discard("dC_da")
            nonfinite["dC_da"] = _INF_DC_DA
            skip_check = "dC_da"
        else:
            skip_check = None
        for part, names in PART_KEYS.items():
            if part not in sel.include:
                continue
            src = {"forward": fw, "backward": bw, "params": layer.get("params", {})}.get(part)
            if part == "argmax":
                if "argmax" in keys and "argmax" in layer:
                    entry["argmax"] = layer["argmax"]
                continue
            d = {k: src[k] for k in names if k in keys and k in src}
            for k, v in d.items():
                if k != skip_check and not _finite(v):
                    raise ApiError(("body",), OVERFLOW, "overflow")
            entry[part] = d
        if omitted:
            entry["omitted"] = omitted
        if nonfinite:
            entry["nonfinite"] = nonfinite
        for k in ("layers", "branches"):  # blocks: their inner layers travel whole
            if k in layer:
                entry[k] = layer[k]
        new_layers.append(entry)
    if not (np.isfinite(out["loss"]) and _finite(out["output"])):
        raise ApiError(("body",), OVERFLOW, "overflow")
    res = {k: v for k, v in out.items() if k != "layers"}
    res["layers"] = new_layers
    return res
