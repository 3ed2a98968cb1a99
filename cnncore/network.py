"""A network built from a spec: forward, loss, backward, and the per-layer trace.

net = Network.from_spec(spec, seed=0)          # or params=[{"w": ..., "b": ...}, {}, ...]
probs = net.predict(x)                         # x: (N, C, H, W)
loss, grads = net.loss_and_grads(x, targets)   # batched, any float dtype (float32 trains)
trace = net.trace(x1, target)                  # one sample, float64, every tensor recorded
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import fftconv, losses
from . import functional as F  # noqa: N812
from .blocks import flatten_params
from .layers import Layer, MaxPool2d, Record, build_layer, init_params
from .spec import SpecError, normalize_spec


@dataclass
class Trace:
    """One sample's forward and backward pass: the network's records with the batch axis dropped."""

    network: dict
    loss: float
    output: np.ndarray
    records: list[Record]
    layers: list[Layer]
    target: np.ndarray

    @property
    def prediction(self) -> int | None:
        if self.network["layers"][-1].get("activation") != "softmax":
            return None
        return int(np.argmax(self.output))

    def to_dict(self) -> dict[str, Any]:
        """The public trace format (NumPy arrays inside; orjson serializes them)."""
        out: dict[str, Any] = {
            "network": self.network,
            "loss": self.loss,
            "output": self.output,
            "target": self.target,
        }
        if self.prediction is not None:
            out["prediction"] = self.prediction
        out["layers"] = [self._layer_dict(i) for i in range(len(self.records))]
        return out

    def _layer_dict(self, i: int) -> dict[str, Any]:
        return self.layers[i].trace_entry(self.records[i], i)

    def walk_records(self):
        """Every record the trace returns, blocks' inner layers included."""
        for rec in self.records:
            yield from rec.walk()


class Network:
    def __init__(self, spec: dict, layers: list[Layer]):
        self.spec = spec
        self.layers = layers

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_spec(cls, spec: dict, params: list | None = None, seed: int = 0) -> Network:
        """Build from a raw or normalized spec; seeded init unless `params` are given."""
        norm = normalize_spec(spec)
        layers = [build_layer(s) for s in norm["layers"]]
        rng = np.random.default_rng(seed)
        for layer in layers:
            init_params(layer, rng)
        net = cls(norm, layers)
        if params is not None:
            net.load_params(params)
        return net

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.spec["input_shape"])

    @property
    def loss_name(self) -> str:
        return self.spec["loss"]

    @property
    def is_classifier(self) -> bool:
        return self.spec["layers"][-1].get("activation") == "softmax"

    @property
    def params(self) -> list[dict[str, np.ndarray]]:
        return [layer.params for layer in self.layers]

    def load_params(self, params: list) -> None:
        """Replace the parameters: one dict per layer ({} for layers without parameters).

        Values are copied as float64 arrays; shapes must match PyTorch's layout exactly.
        """
        if not isinstance(params, list | tuple) or len(params) != len(self.layers):
            raise SpecError(
                f"params must be a list with one entry per layer "
                f"({len(self.layers)}), use {{}} for layers without parameters",
                ("params",),
            )
        new = []
        for i, (layer, p) in enumerate(zip(self.layers, params, strict=True)):
            p = {} if p is None else flatten_params(p)
            if not isinstance(p, dict) or set(p) != set(layer.params):
                want = sorted(layer.params) or "nothing ({})"
                raise SpecError(f"params[{i}] ({layer.type}): expected {want}", ("params", i))
            entry = {}
            for k, ref in layer.params.items():
                try:
                    raw = np.asarray(p[k])
                    if raw.dtype.kind not in "iuf":  # no strings, booleans or objects
                        raise TypeError(raw.dtype)
                    arr = raw.astype(np.float64)
                except (ValueError, TypeError) as exc:
                    raise SpecError(
                        f"params[{i}].{k} ({layer.type}): not a regular array of numbers",
                        ("params", i, k),
                    ) from exc
                if arr.shape != ref.shape:
                    raise SpecError(
                        f"params[{i}].{k} ({layer.type}): shape {list(arr.shape)} "
                        f"but the layer needs {list(ref.shape)}",
                        ("params", i, k),
                    )
                if not np.all(np.isfinite(arr)):
                    raise SpecError(
                        f"params[{i}].{k} ({layer.type}): NaN or infinity is not allowed",
                        ("params", i, k),
                    )
                entry[k] = arr
            new.append(entry)
        for layer, entry in zip(self.layers, new, strict=True):
            layer.params = entry

    def copy(self) -> Network:
        return copy.deepcopy(self)

    def astype(self, dtype) -> Network:
        """A copy whose parameters have `dtype` (float32 for training)."""
        net = self.copy()
        for layer in net.layers:
            layer.params = {k: v.astype(dtype) for k, v in layer.params.items()}
        return net

    def multiply_adds(self) -> int:
        return sum(layer["multiply_adds"] for layer in self.spec["layers"])

    # ------------------------------------------------------------------ computation
    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list[Record]]:
        """Shapes: x (N, C, H, W) -> output (N, *output_shape), one Record per layer."""
        records = []
        a = x
        for layer in self.layers:
            a, rec = layer.forward(a)
            records.append(rec)
        return a, records

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)[0]

    def encode_target(self, target: Any, n: int, dtype=np.float64) -> np.ndarray:
        """Targets to arrays shaped like the output: class indices become one-hot rows."""
        out_shape = tuple(self.spec["output_shape"])
        t = np.asarray(target)
        if (
            self.loss_name == "cross_entropy"
            and len(out_shape) == 1
            and t.ndim <= 1
            and t.size == n
            and np.issubdtype(t.dtype, np.integer)
        ):
            k = out_shape[0]
            idx = t.reshape(n)
            if idx.min() < 0 or idx.max() >= k:
                raise SpecError(f"target class must be between 0 and {k - 1}", ("target",))
            y = np.zeros((n, k), dtype=dtype)
            y[np.arange(n), idx] = 1
            return y
        y = t.astype(dtype).reshape(n, *out_shape) if t.size == n * np.prod(out_shape) else None
        if y is None:
            raise SpecError(
                f"target must be shaped like the output {list(out_shape)}"
                + (" or be a class index" if self.is_classifier else ""),
                ("target",),
            )
        return y

    def backward(self, records: list[Record], y: np.ndarray, input_grad: bool = True) -> float:
        """Backward pass through every layer; fills the records and returns the loss.

        `input_grad=False` is the training mode: it skips dC/dx of the network's input, and only
        the parameter gradients (`Record.grads`) are guaranteed to be filled. There, a max-pool
        that follows a relu layer hands that layer dC/dz directly (see `_pool_after_relu`), so
        the relu layer's dC/da and the pool's dC/da_prev stay None. The trace uses the default.
        """
        last = records[-1]
        z_for_loss = last.z if self.is_classifier else None
        loss = losses.loss_value(self.loss_name, last.a, y, z_for_loss)
        dC_da = losses.loss_grad(self.loss_name, last.a, y)
        dC_dz = None
        if self.is_classifier and self.loss_name == "cross_entropy":
            dC_dz = (last.a - y) / y.shape[0]  # softmax + cross-entropy: exact and stable
        for i in reversed(range(len(self.layers))):
            need_dx = input_grad or i > 0
            if not input_grad and i > 0 and _pool_after_relu(self.layers[i - 1], self.layers[i]):
                dC_dz = _pool_relu_backward(records[i], dC_da, dC_dz)
                dC_da = None
                continue
            dC_da = self.layers[i].backward(records[i], dC_da, dC_dz, need_dx)
            dC_dz = None
        return loss

    def loss_and_grads(self, x: np.ndarray, target: Any) -> tuple[float, list[dict]]:
        """Batched training step's maths: mean loss and gradients, one dict per layer."""
        a, records = self.forward(x)
        y = self.encode_target(target, x.shape[0], dtype=x.dtype)
        loss = self.backward(records, y, input_grad=False)
        return loss, [rec.grads() for rec in records]

    def trace(self, x: np.ndarray, target: Any) -> Trace:
        """Forward and backward for one sample in float64, recording every tensor.

        Shapes: x (C, H, W) (or (1, C, H, W)); target a class index or shaped like the output.
        """
        x = np.asarray(x, dtype=np.float64).reshape(1, *self.input_shape)
        net = (
            self
            if all(p.dtype == np.float64 for lp in self.params for p in lp.values())
            else self.astype(np.float64)
        )
        a, records = net.forward(x)
        y = net.encode_target(target if np.ndim(target) else [target], 1)
        loss = net.backward(records, y)
        return Trace(net.spec, loss, a[0], records, net.layers, y[0])

    def sgd_step(self, grads: list[dict], learning_rate: float) -> Network:
        """A copy with one plain SGD step applied: p <- p - lr * dC/dp."""
        net = self.copy()
        for layer, g in zip(net.layers, grads, strict=True):
            layer.params = {k: v - learning_rate * g[k] for k, v in layer.params.items()}
        return net


def _pool_after_relu(prev: Layer, layer: Layer) -> bool:
    """A max-pool whose input is a plain layer's relu output (not a block's)."""
    return (
        type(layer) is MaxPool2d
        and prev.activation == "relu"
        and type(prev).backward is Layer.backward
    )


def _pool_relu_backward(
    rec: Record, dC_da: np.ndarray | None, dC_dz: np.ndarray | None
) -> np.ndarray:
    """dC/dz of the relu layer before a max-pool, straight from the pool's dC/da.

    The pool routes each window's gradient to the cell that holds its maximum, whose relu
    output a equals the window's output; relu passes the gradient where z > 0, i.e. where
    a > 0. So masking the pool's output gradient by (pool output > 0) and routing it gives
    exactly relu_backward(maxpool_backward(dC_da)), bit for bit (a NaN window: NaN > 0 is
    false, as for its NaN cell), with one pass over the pool's small output instead of one
    over the relu layer's whole output. Fills the pool's record as `Layer.backward` would,
    except dC/da_prev, which is not computed.
    """
    g = dC_dz if dC_dz is not None else dC_da  # a pool has no activation: dC/dz = dC/da
    rec.dC_da, rec.dC_dz = g, g
    if isinstance(rec.cache, fftconv.FUSED_POOL_CACHES):  # fused with its conv in training
        return fftconv.relu_maxpool_backward(g, rec.a, rec.cache)
    masked = F.where_or_zero(rec.a > 0, g)
    return F.maxpool2d_backward(masked, rec.cache, channels_major=True)
