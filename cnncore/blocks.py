"""Blocks: layers that hold layer lists of their own (ResNet's skip, Inception's branches).

residual  {"type": "residual", "layers": [...], "activation": "relu", "projection": null}
          a = g(F(x) + skip(x)), F the inner chain (its last layer without activation) and
          skip(x) = x, or the projection (a conv2d, usually 1×1 with a stride) when F changes
          the shape. Backward, the gradient dC/dz at the add goes to both paths unchanged;
          at the block's input the two arrive and add:
          dC/da_prev = dC/da_prev(F path) + dC/da_prev(skip).
concat    {"type": "concat", "branches": [[...], [...]]}
          every branch a chain over the same input; the outputs are concatenated along axis 1
          (the channels). Backward, dC/dz is sliced back to each branch (the channels it
          produced) and the branches' input gradients add: dC/da_prev = Σ_b dC/da_prev(b).

A block's parameters are one flat dict with dotted names, "layers.0.w", "projection.b",
"branches.1.0.w" (nested blocks nest the names), so optimizers, saved models and the API
treat a block like any other layer; a nested form ({"layers": [{...}, {}], "projection":
{...}}) is accepted too (`flatten_params`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import activations
from . import specrules as R
from .functional import out_size
from .layers import Layer, Record, one

# --------------------------------------------------------------------------- spec rules


def _chain(parent: R.LayerCtx, raws: Any, shape: list[int], key: tuple, what: str):
    from .registry import normalize_chain

    if not isinstance(raws, list) or not raws:
        raise parent.error(f"'{what}' must be a non-empty list of layers", key)
    label = parent.label + " › " + key[0] + "".join(f"[{k}]" for k in key[1:]) + "[{i}]"
    return normalize_chain(raws, shape, parent.path + key, label, False)


def _shape(s: list[int]) -> str:
    return "×".join(map(str, s))


def normalize_residual(layer: R.LayerCtx, shape: list[int], is_last: bool) -> dict:
    from .registry import normalize_layer

    inner, f_shape = _chain(layer, layer.raw.get("layers"), shape, ("layers",), "layers")
    last = inner[-1]
    if last.get("activation", "identity") != "identity":
        i = len(inner) - 1
        raise R.SpecError(
            f"{layer.label} › layers[{i}] ({last['type']}): the last layer of a residual "
            f"block's F must have no activation (got {last['activation']!r}): the block adds "
            f"the input first and then applies its own activation, a = g(F(x) + x)",
            (*layer.path, "layers", i, "activation"),
        )
    act = R.activation(layer, False, "relu")
    raw_proj = layer.raw.get("projection")
    proj = None
    if raw_proj is not None:
        if not isinstance(raw_proj, dict):
            raise layer.error(
                "'projection' must be null or a conv2d layer such as "
                '{"type": "conv2d", "kernel_size": 1, "stride": 2}',
                "projection",
            )
        raw_proj = {"type": "conv2d", "kernel_size": 1, **raw_proj}
        ctx = R.LayerCtx((*layer.path, "projection"), layer.label + " › projection", raw_proj)
        if raw_proj["type"] != "conv2d":
            raise ctx.error("a projection is a conv2d layer", "type")
        if len(shape) != 3 or len(f_shape) != 3:
            raise layer.error(
                f"a projection (a conv2d) needs [C, H, W] shapes, but the block maps "
                f"{shape} to {f_shape}",
                "projection",
            )
        raw_proj.setdefault("out_channels", f_shape[0])
        proj = normalize_layer(ctx, shape, False)
        if proj["activation"] != "identity":
            raise ctx.error("a projection has no activation (the block's comes after the add)")
        if proj["output_shape"] != f_shape:
            raise ctx.error(
                f"maps the input {_shape(shape)} to {_shape(proj['output_shape'])}, but F "
                f"gives {_shape(f_shape)}; the two must match to be added"
                + _stride_hint(shape, f_shape),
            )
    elif f_shape != shape:
        raise layer.error(
            f"F maps the input {_shape(shape)} to {_shape(f_shape)}, so the input cannot be "
            "added back as it is: "
            + (
                "give a 'projection', a 1×1 conv2d that maps the input to F's shape"
                + _stride_hint(shape, f_shape)
                if len(shape) == 3 and len(f_shape) == 3
                else "make F keep the shape (a projection only maps [C, H, W] inputs)"
            ),
            "projection",
        )
    params = sum(s["param_count"] for s in inner) + (proj["param_count"] if proj else 0)
    madds = sum(s["multiply_adds"] for s in inner) + (proj["multiply_adds"] if proj else 0)
    return {
        "layers": inner,
        "activation": act,
        "projection": proj,
        "output_shape": list(f_shape),
        "param_count": params,
        "multiply_adds": madds + math.prod(f_shape),  # the add
    }


def _stride_hint(shape: list[int], f_shape: list[int]) -> str:
    """The 1×1 projection's stride that gives F's height and width, when one does."""
    for s in range(1, max(shape[1], shape[2]) + 1):
        if out_size(shape[1], 1, s, 0) == f_shape[1] and out_size(shape[2], 1, s, 0) == f_shape[2]:
            return (
                f' (e.g. {{"type": "conv2d", "kernel_size": 1, "stride": {s}}}, '
                f"out_channels {f_shape[0]})"
            )
    return " (no 1×1 stride gives that height and width: change F's stride or padding)"


def normalize_concat(layer: R.LayerCtx, shape: list[int], is_last: bool) -> dict:
    raws = layer.raw.get("branches")
    if not isinstance(raws, list) or not raws:
        raise layer.error("'branches' must be a non-empty list of layer lists", "branches")
    branches, shapes = [], []
    for b, raw in enumerate(raws):
        chain, s = _chain(layer, raw, shape, ("branches", b), f"branches[{b}]")
        branches.append(chain)
        shapes.append(s)
    first = shapes[0]
    for b, s in enumerate(shapes[1:], 1):
        if len(s) != len(first) or s[1:] != first[1:]:
            sizes = ", ".join(f"branch {i} gives {_shape(x)}" for i, x in enumerate(shapes))
            raise layer.error(
                f"branch {b} gives {_shape(s)} but branch 0 gives {_shape(first)}: outputs "
                "are concatenated along the channels, so every branch must keep the same "
                f"height and width ({sizes}); change that branch's padding or stride",
                ("branches", b),
            )
    starts = np.cumsum([0] + [s[0] for s in shapes]).tolist()
    return {
        "branches": branches,
        "channels": [[starts[b], starts[b + 1]] for b in range(len(shapes))],
        "output_shape": [starts[-1], *first[1:]],
        "param_count": sum(x["param_count"] for c in branches for x in c),
        "multiply_adds": sum(x["multiply_adds"] for c in branches for x in c),
    }


# --------------------------------------------------------------------------- parameters


def flatten_params(p: Any, prefix: str = "") -> Any:
    """A block's nested params ({"layers": [{"w", "b"}, {}], "projection": {...}},
    {"branches": [[...], ...]}) as the flat dotted dict; a flat dict is returned unchanged."""
    if not isinstance(p, dict):
        return p
    out: dict[str, Any] = {}
    for k, v in p.items():
        if k == "layers" and isinstance(v, list):
            for i, sub in enumerate(v):
                out.update(flatten_params(sub, f"{prefix}layers.{i}."))
        elif k == "branches" and isinstance(v, list):
            for b, chain in enumerate(v):
                for i, sub in enumerate(chain if isinstance(chain, list) else []):
                    out.update(flatten_params(sub, f"{prefix}branches.{b}.{i}."))
        elif k == "projection" and isinstance(v, dict):
            out.update(flatten_params(v, f"{prefix}projection."))
        elif k == "projection" and v is None:
            continue
        else:
            out[prefix + k] = v
    return out


# --------------------------------------------------------------------------- records


class BlockRecord(Record):
    """A block's record: the block as a whole, plus its inner layers' records."""

    def __init__(self, a_prev, z, a, children: list[tuple[str, Layer, Record]], **extra):
        super().__init__(a_prev=a_prev, z=z, a=a, extra=extra)
        self.children = children

    def grads(self) -> dict[str, np.ndarray]:
        return {f"{name}.{k}": v for name, _, rec in self.children for k, v in rec.grads().items()}

    def walk(self):
        yield self
        for _, _, rec in self.children:
            yield from rec.walk()


def _run(chain: list[Layer], x: np.ndarray) -> tuple[np.ndarray, list[Record]]:
    recs = []
    for layer in chain:
        x, rec = layer.forward(x)
        recs.append(rec)
    return x, recs


def _back(chain: list[Layer], recs: list[Record], g: np.ndarray) -> np.ndarray:
    for layer, rec in zip(reversed(chain), reversed(recs), strict=True):
        g = layer.backward(rec, g)
    return g


class Block(Layer):
    """Shared by the blocks: parameters as one flat dotted dict over the inner layers."""

    def named(self) -> list[tuple[str, Layer]]:
        raise NotImplementedError

    @property
    def params(self) -> dict[str, np.ndarray]:  # type: ignore[override]
        return {f"{name}.{k}": v for name, layer in self.named() for k, v in layer.params.items()}

    @params.setter
    def params(self, value: dict[str, np.ndarray]) -> None:
        for name, layer in self.named():
            pre = name + "."
            layer.params = {k[len(pre) :]: v for k, v in value.items() if k.startswith(pre)}

    def init(self, rng: np.random.Generator) -> None:
        for _, layer in self.named():
            layer.init(rng)

    def _entries(self, chain, recs, index_path: tuple) -> list[dict]:
        return [
            layer.trace_entry(rec, i, (*index_path, i))
            for i, (layer, rec) in enumerate(zip(chain, recs, strict=True))
        ]

    def _base_entry(self, rec: Record, index: int, path: tuple) -> dict[str, Any]:
        d: dict[str, Any] = {"index": index}
        if path:
            d["path"] = list(path)
        d.update(
            type=self.spec["type"],
            input_shape=self.spec["input_shape"],
            output_shape=self.spec["output_shape"],
            params={},  # each inner layer's entry carries its own
        )
        return d


class Residual(Block):
    type = "residual"

    def __init__(self, spec: dict):
        from .registry import build_layer

        self.spec = spec
        self.activation = spec["activation"]
        self.inner = [build_layer(s) for s in spec["layers"]]
        self.projection = build_layer(spec["projection"]) if spec.get("projection") else None

    def named(self):
        out = [(f"layers.{i}", layer) for i, layer in enumerate(self.inner)]
        return out + ([("projection", self.projection)] if self.projection else [])

    def forward(self, a_prev):
        f, recs = _run(self.inner, a_prev)
        children = [
            (f"layers.{i}", lay, r) for i, (lay, r) in enumerate(zip(self.inner, recs, strict=True))
        ]
        if self.projection is not None:
            skip, prec = self.projection.forward(a_prev)
            children.append(("projection", self.projection, prec))
        else:
            skip = a_prev
        z = f + skip
        a = activations.activate(self.activation, z)
        return a, BlockRecord(a_prev, z, a, children, f=f, skip=skip)

    def backward(self, rec, dC_da, dC_dz=None, need_dx=True):
        rec.dC_da = dC_da
        if dC_dz is None:
            dC_dz = activations.backward(self.activation, dC_da, rec.z, rec.a)
        rec.dC_dz = dC_dz  # the add passes dC/dz unchanged to both of its inputs
        n = len(self.inner)
        path = _back(self.inner, [r for _, _, r in rec.children[:n]], dC_dz)
        if self.projection is not None:
            skip = self.projection.backward(rec.children[n][2], dC_dz)
        else:
            skip = dC_dz
        rec.extra.update(dC_da_prev_path=path, dC_da_prev_skip=skip)
        rec.dC_da_prev = path + skip
        return rec.dC_da_prev

    def trace_entry(self, rec, index, path=()):
        d = self._base_entry(rec, index, path)
        here = path or (index,)
        x = rec.extra
        d["forward"] = {"a_prev": one(rec.a_prev), "z": one(rec.z), "a": one(rec.a)}
        d["backward"] = {
            "dC_da": one(rec.dC_da),
            "dC_dz": one(rec.dC_dz),
            "dC_db": None,
            "dC_dw": None,
            "dC_da_prev": one(rec.dC_da_prev),
        }
        # the two paths: z = f + skip forward; dC_da_prev = dC_da_prev_path + dC_da_prev_skip
        d["split"] = {
            "f": one(x["f"]),
            "skip": one(x["skip"]),
            "dC_da_prev_path": one(x["dC_da_prev_path"]),
            "dC_da_prev_skip": one(x["dC_da_prev_skip"]),
        }
        n = len(self.inner)
        d["layers"] = self._entries(
            self.inner, [r for _, _, r in rec.children[:n]], (*here, "layers")
        )
        d["projection"] = (
            self.projection.trace_entry(rec.children[n][2], 0, (*here, "projection"))
            if self.projection is not None
            else None
        )
        return d


class Concat(Block):
    type = "concat"

    def __init__(self, spec: dict):
        from .registry import build_layer

        self.spec = spec
        self.activation = "identity"
        self.branches = [[build_layer(s) for s in chain] for chain in spec["branches"]]

    def named(self):
        return [
            (f"branches.{b}.{i}", layer)
            for b, chain in enumerate(self.branches)
            for i, layer in enumerate(chain)
        ]

    def forward(self, a_prev):
        outs, children = [], []
        for b, chain in enumerate(self.branches):
            out, recs = _run(chain, a_prev)
            outs.append(out)
            children += [
                (f"branches.{b}.{i}", lay, r)
                for i, (lay, r) in enumerate(zip(chain, recs, strict=True))
            ]
        z = np.concatenate(outs, axis=1)
        return z, BlockRecord(a_prev, z, z, children)

    def _branch_recs(self, rec) -> list[list[Record]]:
        out, k = [], 0
        for chain in self.branches:
            out.append([r for _, _, r in rec.children[k : k + len(chain)]])
            k += len(chain)
        return out

    def backward(self, rec, dC_da, dC_dz=None, need_dx=True):
        rec.dC_da = rec.dC_dz = dC_da
        slices, dxs = [], []
        for (c0, c1), chain, recs in zip(
            self.spec["channels"], self.branches, self._branch_recs(rec), strict=True
        ):
            g = np.ascontiguousarray(dC_da[:, c0:c1])
            slices.append(g)
            dxs.append(_back(chain, recs, g))
        total = dxs[0].copy()
        for dx in dxs[1:]:
            total += dx
        rec.extra.update(dC_da_slices=slices, dC_da_prev_branches=dxs)
        rec.dC_da_prev = total
        return total

    def trace_entry(self, rec, index, path=()):
        d = self._base_entry(rec, index, path)
        here = path or (index,)
        d["forward"] = {"a_prev": one(rec.a_prev), "z": one(rec.z), "a": one(rec.a)}
        d["backward"] = {
            "dC_da": one(rec.dC_da),
            "dC_dz": one(rec.dC_dz),
            "dC_db": None,
            "dC_dw": None,
            "dC_da_prev": one(rec.dC_da_prev),
        }
        d["channels"] = self.spec["channels"]
        d["split"] = {
            "dC_da": [one(g) for g in rec.extra["dC_da_slices"]],
            "dC_da_prev": [one(g) for g in rec.extra["dC_da_prev_branches"]],
        }
        d["branches"] = [
            self._entries(chain, recs, (*here, "branches", b))
            for b, (chain, recs) in enumerate(
                zip(self.branches, self._branch_recs(rec), strict=True)
            )
        ]
        return d


BLOCK_CLASSES = {cls.type: cls for cls in (Residual, Concat)}
