"""Layers: thin holders of parameters over the functional ops (tinygrad style).

Every layer maps a_prev -> z -> a with a = g(z). Layers without an activation (pooling,
flatten) have z = a, so dC/dz = dC/da. `forward` returns the output and a `Record` of what it
computed; `backward` fills the record's gradients. The trace is these records, read back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import activations, fftconv
from . import functional as F


@dataclass
class Record:
    """What one layer computed for a batch: forward values, then backward gradients."""

    a_prev: np.ndarray
    z: np.ndarray
    a: np.ndarray
    cache: Any = None
    dC_da: np.ndarray | None = None
    dC_dz: np.ndarray | None = None
    dC_dw: np.ndarray | None = None
    dC_db: np.ndarray | None = None
    dC_da_prev: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def grads(self) -> dict[str, np.ndarray]:
        return {} if self.dC_dw is None else {"w": self.dC_dw, "b": self.dC_db}

    def walk(self):
        """This record and every nested one (a block's inner layers): what a trace returns."""
        yield self


def one(x: np.ndarray | None) -> np.ndarray | None:
    """A batch-of-one tensor without its batch axis (None stays None)."""
    return None if x is None else np.ascontiguousarray(x[0])


class Layer:
    type = ""
    activation = "identity"

    def __init__(self, spec: dict):
        self.spec = spec
        self.params: dict[str, np.ndarray] = {}

    def op_forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def op_backward(self, dz: np.ndarray, cache: Any, need_dx: bool = True):
        """-> (dC/da_prev or None when not needed, {"w": dC/dw, "b": dC/db} or {})."""
        raise NotImplementedError

    def forward(self, a_prev: np.ndarray) -> tuple[np.ndarray, Record]:
        z, cache = self.op_forward(a_prev)
        a = activations.activate(self.activation, z)
        return a, Record(a_prev=a_prev, z=z, a=a, cache=cache)

    def backward(
        self,
        rec: Record,
        dC_da: np.ndarray | None,
        dC_dz: np.ndarray | None = None,
        need_dx: bool = True,
    ):
        """Fill `rec` with gradients. Pass `dC_dz` directly when the loss simplified it."""
        rec.dC_da = dC_da
        if dC_dz is None:
            dC_dz = activations.backward(self.activation, dC_da, rec.z, rec.a)
        rec.dC_dz = dC_dz
        rec.dC_da_prev, grads = self.op_backward(dC_dz, rec.cache, need_dx)
        rec.dC_dw, rec.dC_db = grads.get("w"), grads.get("b")
        return rec.dC_da_prev

    def init(self, rng: np.random.Generator) -> None:
        """Seeded initialisation: He normal for relu, Xavier (Glorot) normal otherwise; biases
        start at zero. Layers without parameters keep none."""
        if "w" not in self.params:
            return
        w = self.params["w"]
        fan_in = int(np.prod(w.shape[1:]))
        fan_out = w.shape[0] * int(np.prod(w.shape[2:]))
        fan = fan_in / 2 if self.activation == "relu" else (fan_in + fan_out) / 2
        std = np.sqrt(1.0 / fan)
        self.params["w"] = rng.normal(0.0, std, size=w.shape)
        self.params["b"] = np.zeros_like(self.params["b"])

    def trace_entry(self, rec: Record, index: int, path: tuple = ()) -> dict[str, Any]:
        """This layer's part of the public trace (one sample: the batch axis dropped).

        `path` is empty for a top-level layer; a block's inner entries carry theirs, e.g.
        (2, "layers", 0) or (3, "branches", 1, 0), so a client can name them.
        """
        spec = self.spec
        d: dict[str, Any] = {"index": index}
        if path:
            d["path"] = list(path)
        d.update(
            type=spec["type"],
            input_shape=spec["input_shape"],
            output_shape=spec["output_shape"],
            params={k: np.ascontiguousarray(v) for k, v in self.params.items()},
            forward={"a_prev": one(rec.a_prev), "z": one(rec.z), "a": one(rec.a)},
            backward={
                "dC_da": one(rec.dC_da),
                "dC_dz": one(rec.dC_dz),
                "dC_db": rec.dC_db,
                "dC_dw": rec.dC_dw,
                "dC_da_prev": one(rec.dC_da_prev),
            },
        )
        return d


class Conv2d(Layer):
    type = "conv2d"

    def __init__(self, spec: dict):
        super().__init__(spec)
        self.activation = spec["activation"]
        self.stride = tuple(spec["stride"])
        self.padding = tuple(spec["padding"])
        kh, kw = spec["kernel_size"]
        self.params = {
            "w": np.zeros((spec["out_channels"], spec["in_channels"], kh, kw)),
            "b": np.zeros(spec["out_channels"]),
        }

    def op_forward(self, x):
        return F.conv2d_forward(x, self.params["w"], self.params["b"], self.stride, self.padding)

    def op_backward(self, dz, cache, need_dx=True):
        if isinstance(cache, fftconv.TRAINING_CACHES):  # --conv-algorithm auto/fft training
            dx, dw, db = fftconv.backward(dz, cache, need_dx)
        else:
            dx, dw, db = F.conv2d_backward(dz, cache, need_dx)
        return dx, {"w": dw, "b": db}


class MaxPool2d(Layer):
    type = "maxpool2d"

    def __init__(self, spec: dict):
        super().__init__(spec)
        self.args = tuple(spec["kernel_size"]), tuple(spec["stride"]), tuple(spec["padding"])

    def op_forward(self, x):
        return F.maxpool2d_forward(x, *self.args)

    def op_backward(self, dz, cache, need_dx=True):
        return F.maxpool2d_backward(dz, cache), {}

    def trace_entry(self, rec: Record, index: int, path: tuple = ()) -> dict[str, Any]:
        d = super().trace_entry(rec, index, path)
        d["argmax"] = np.ascontiguousarray(F.maxpool2d_argmax_rc(rec.cache)[0])
        return d


class AvgPool2d(Layer):
    type = "avgpool2d"

    def __init__(self, spec: dict):
        super().__init__(spec)
        self.args = tuple(spec["kernel_size"]), tuple(spec["stride"]), tuple(spec["padding"])

    def op_forward(self, x):
        return F.avgpool2d_forward(x, *self.args)

    def op_backward(self, dz, cache, need_dx=True):
        return F.avgpool2d_backward(dz, cache), {}


class Flatten(Layer):
    type = "flatten"

    def op_forward(self, x):
        return x.reshape(x.shape[0], -1), x.shape

    def op_backward(self, dz, cache, need_dx=True):
        return dz.reshape(cache), {}


class Dense(Layer):
    type = "dense"

    def __init__(self, spec: dict):
        super().__init__(spec)
        self.activation = spec["activation"]
        self.params = {
            "w": np.zeros((spec["units"], spec["in_features"])),
            "b": np.zeros(spec["units"]),
        }

    def op_forward(self, x):
        return F.dense_forward(x, self.params["w"], self.params["b"])

    def op_backward(self, dz, cache, need_dx=True):
        dx, dw, db = F.dense_backward(dz, cache, need_dx)
        return dx, {"w": dw, "b": db}


LAYER_CLASSES = {cls.type: cls for cls in (Conv2d, MaxPool2d, AvgPool2d, Flatten, Dense)}


def build_layer(spec: dict) -> Layer:
    """The layer (or block) of a normalized spec, by its registered type."""
    from .registry import build_layer as build

    return build(spec)


def init_params(layer: Layer, rng: np.random.Generator) -> None:
    """Seeded initialisation of a layer (a block initialises its inner layers in order)."""
    layer.init(rng)
