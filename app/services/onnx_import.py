"""An ONNX file -> a cnnviz network spec and parameters, or a refusal naming the node.

The file is untrusted. What is checked, in order, before anything large is allocated:

1. its size (the caller's cap);
2. a scan of the protobuf wire format (`_scan`) that counts every nested message and string
   without building them, so a file of a million tiny nodes is refused in milliseconds instead
   of costing hundreds of MB to parse (protobuf keeps ~150 bytes per message);
3. the parsed ModelProto: IR version, opsets, one input of a fixed NCHW shape, one output,
   unique value names, no cycles (Kahn's order), every initializer's declared size against a
   cap and against the bytes it holds; external data is refused, never read;
4. the walk from the input to the output, node by node, mapping each onto an engine layer
   (`_Walker`), then `normalize_spec`, which checks every shape again.

Nothing here reads a file named by the model, runs onnx's C++ checker or shape inference on
it, or unpickles anything. Only the protobuf parser touches the raw bytes.

Supported (the ops the engine has): Conv (group 1, no dilation, symmetric pads), Relu,
Sigmoid, Tanh, MaxPool, AveragePool (count_include_pad=1 as PyTorch exports it, or no
padding), GlobalAveragePool, GlobalMaxPool, Flatten and Reshape to a vector, Gemm, MatMul
(+ Add), Softmax and LogSoftmax last, Identity, Dropout; BatchNormalization folded into the
Conv before it; a constant Add after a Conv or Gemm folded into its bias; the shape arithmetic
of a dynamic batch (Shape, Gather, Unsqueeze, Concat, ... on tiny integer tensors) evaluated
for a Reshape; branches from one value that join in an Add (a `residual` block: F and the
input or one Conv, the projection) or a Concat along the channels (a `concat` block), nested.
Opsets 11 to 23.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnncore import SpecError, normalize_spec

OPSET_MIN, OPSET_MAX = 11, 23
IR_MIN = 3

# Wire scan limits: every message and string in the file, the nodes of the graph
MAX_OBJECTS = 100_000
MAX_NODES = 2_000
MAX_DEPTH = 12
# Values that feed several paths (residual and concat blocks), each costing a graph search
MAX_BLOCKS = 64
# One tensor's declared values (initializers, constants); the whole model's parameters
MAX_TENSOR_VALUES = 20_000_000
# Small integer tensors (Reshape shapes)
MAX_SHAPE_VALUES = 16


class OnnxImportError(ValueError):
    """A model cnnviz cannot import; the message names the node, its op type and why."""

    def __init__(self, message: str, status: int = 422, kind: str = "onnx_unsupported"):
        super().__init__(message)
        self.status, self.kind = status, kind


def _invalid(msg: str) -> OnnxImportError:
    return OnnxImportError(msg, 422, "onnx_invalid")


# ---------------------------------------------------------------------------- wire scan
# For each message type: field number -> the message type of that (length-delimited) field.
# Fields not listed are strings, bytes or packed numbers: counted, not entered. A name that is
# not a message type here (e.g. "training_info") is a part cnnviz refuses outright.
_SCHEMA: dict[str, dict[int, str]] = {
    "Model": {7: "Graph", 8: "Leaf", 14: "Leaf", 20: "training_info", 25: "local functions",
              26: "device configurations"},
    "Graph": {1: "Node", 5: "Tensor", 15: "sparse initializers", 11: "Value", 12: "Value",
              13: "Value", 14: "Annotation", 16: "Leaf"},
    "Node": {5: "Attribute", 9: "Leaf"},
    "Attribute": {5: "Tensor", 6: "Graph", 10: "Tensor", 11: "Graph", 14: "Type", 15: "Type",
                  22: "sparse tensors", 23: "sparse tensors"},
    "Tensor": {3: "Leaf", 13: "Leaf", 16: "Leaf"},
    "Value": {2: "Type", 4: "Leaf"},
    "Type": {1: "TensorType", 4: "Type1", 5: "Map", 8: "TensorType", 9: "Type1"},
    "Type1": {1: "Type"},
    "Map": {2: "Type"},
    "TensorType": {2: "Shape"},
    "Shape": {1: "Leaf"},
    "Annotation": {2: "Leaf"},
}  # fmt: skip


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _invalid("the file is not a valid ONNX model: it ends inside a number")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _scan(data: bytes) -> None:
    """Walk the protobuf wire format of a ModelProto without building it.

    Refuses a malformed encoding (truncated, a length past the end), nesting deeper than
    MAX_DEPTH, more than MAX_OBJECTS messages and strings, or more than MAX_NODES nodes in
    any graph. Cost: a Python step per message or string, at most MAX_OBJECTS of them.
    """
    objects = 0
    stack: list[tuple[str, int, int, int]] = [("Model", 0, len(data), 0)]
    while stack:
        kind, pos, end, depth = stack.pop()
        fields = _SCHEMA.get(kind, {})
        nodes = 0
        while pos < end:
            key, pos = _varint(data, pos, end)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise _invalid("the file is not a valid ONNX model: field number 0")
            if wire == 0:
                _, pos = _varint(data, pos, end)
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            elif wire == 2:
                length, pos = _varint(data, pos, end)
                if pos + length > end:
                    raise _invalid(
                        "the file is not a valid ONNX model: it is truncated "
                        "(a field runs past the end)"
                    )
                objects += 1
                if objects > MAX_OBJECTS:
                    raise OnnxImportError(
                        f"the model holds more than {MAX_OBJECTS:,} messages and names; "
                        "cnnviz imports small networks only",
                        413,
                        "onnx_too_large",
                    )
                sub = fields.get(number)
                if kind == "Graph" and number == 1:
                    nodes += 1
                    if nodes > MAX_NODES:
                        raise OnnxImportError(
                            f"the graph has more than {MAX_NODES:,} nodes; cnnviz imports "
                            "small networks only",
                            413,
                            "onnx_too_large",
                        )
                if sub is not None and sub not in _SCHEMA and sub != "Leaf":
                    # parts cnnviz never reads, which protobuf would build unchecked
                    raise OnnxImportError(f"the model holds {sub}, which cnnviz does not import")
                if sub is not None and sub != "Leaf":
                    if depth + 1 > MAX_DEPTH:
                        raise _invalid("the model nests messages too deeply")
                    stack.append((sub, pos, pos + length, depth + 1))
                pos += length
            else:
                raise _invalid(
                    f"the file is not a valid ONNX model: wire type {wire} "
                    "(not protobuf, or corrupt)"
                )
        if pos != end:
            raise _invalid("the file is not a valid ONNX model: it is truncated")


def parse_model(data: bytes):
    """Bytes -> onnx.ModelProto, after the wire scan. Never loads external data."""
    import onnx
    from google.protobuf.message import DecodeError

    if not data:
        raise _invalid("the file is empty")
    _scan(data)
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise _invalid(
            "the file is not a valid ONNX model (not protobuf, or truncated): "
            f"{str(exc)[:120] or type(exc).__name__}"
        ) from None
    if not model.HasField("graph"):
        raise _invalid("the file is not an ONNX model: it has no graph")
    return model


# ---------------------------------------------------------------------------- tensors
def _np_types() -> dict[int, np.dtype]:
    from onnx import TensorProto as T

    return {
        T.FLOAT: np.dtype("<f4"),
        T.DOUBLE: np.dtype("<f8"),
        T.FLOAT16: np.dtype("<f2"),
        T.INT64: np.dtype("<i8"),
        T.INT32: np.dtype("<i4"),
        T.BOOL: np.dtype("bool"),
    }


def tensor_array(t, what: str, max_values: int = MAX_TENSOR_VALUES) -> np.ndarray:
    """A TensorProto's values, with its declared size checked before anything is allocated."""
    from onnx import TensorProto as T

    if t.data_location == T.EXTERNAL or len(t.external_data):
        raise OnnxImportError(
            f"{what}: its data is stored in an external file; cnnviz never reads files a "
            "model names. Save the model with its weights inside (onnx.save_model(model, "
            "path, save_as_external_data=False))",
            422,
            "onnx_external_data",
        )
    if t.HasField("segment"):
        raise OnnxImportError(f"{what}: segmented tensors are not supported")
    dims = list(t.dims)
    if any(d < 0 for d in dims):
        raise _invalid(f"{what}: negative dimension in {dims}")
    count = math.prod(dims)
    if count > max_values:
        raise OnnxImportError(
            f"{what}: declares {count:,} values (shape {dims}); the cap is {max_values:,}",
            413,
            "onnx_too_large",
        )
    dtype = _np_types().get(t.data_type)
    if dtype is None:
        raise OnnxImportError(
            f"{what}: element type {T.DataType.Name(t.data_type) if t.data_type in T.DataType.values() else t.data_type} "  # noqa: E501
            "is not supported (float, double, float16, int32, int64, bool)"
        )
    if t.HasField("raw_data"):
        raw = t.raw_data
        if len(raw) != count * dtype.itemsize:
            raise _invalid(
                f"{what}: declares shape {dims} ({count:,} values, {count * dtype.itemsize:,} "
                f"bytes) but holds {len(raw):,} bytes"
            )
        return np.frombuffer(raw, dtype=dtype).reshape(dims).copy()
    if t.data_type == T.FLOAT:
        src, conv = t.float_data, np.float32
    elif t.data_type == T.DOUBLE:
        src, conv = t.double_data, np.float64
    elif t.data_type == T.INT64:
        src, conv = t.int64_data, np.int64
    else:  # int32, float16 (as bits), bool: int32_data
        src, conv = t.int32_data, None
    if len(src) != count:
        raise _invalid(f"{what}: declares shape {dims} ({count:,} values) but holds {len(src):,}")
    if conv is None:
        arr = np.asarray(src, dtype=np.int32)
        arr = arr.astype(np.uint16).view(np.float16) if dtype.kind == "f" else arr.astype(dtype)
        return arr.reshape(dims)
    return np.asarray(src, dtype=conv).reshape(dims)


# ---------------------------------------------------------------------------- graph
@dataclass
class _Layer:
    spec: dict
    params: dict
    nodes: list[str] = field(default_factory=list)
    bn_folded: bool = False
    bias_added: bool = False


def _node_label(node, index: int) -> str:
    return (
        f"{node.op_type} at node '{node.name}'" if node.name else f"{node.op_type} at node #{index}"
    )


def _attrs(node) -> dict[str, Any]:
    from onnx import AttributeProto as A

    out: dict[str, Any] = {}
    for a in node.attribute:
        if a.type == A.INT:
            out[a.name] = a.i
        elif a.type == A.INTS:
            out[a.name] = list(a.ints)
        elif a.type == A.FLOAT:
            out[a.name] = a.f
        elif a.type == A.FLOATS:
            out[a.name] = list(a.floats)
        elif a.type == A.STRING:
            out[a.name] = a.s.decode("utf-8", "replace")
        elif a.type == A.TENSOR:
            out[a.name] = a.t
        elif a.ref_attr_name:
            out[a.name] = ("ref", a.ref_attr_name)
        else:
            out[a.name] = ("other", a.type)
    return out


def _dims(value_info) -> list[int | str | None] | None:
    """A ValueInfo's shape: ints, names of symbolic dims, None for unknown; None if no shape."""
    tt = value_info.type.tensor_type if value_info.type.HasField("tensor_type") else None
    if tt is None or not tt.HasField("shape"):
        return None
    out: list[int | str | None] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            out.append(d.dim_param)
        else:
            out.append(None)
    return out


def _sanitize_name(name: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:64]
    return clean or "imported"


FOLDABLE = {"Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Mul", "Div", "Add", "Sub"}


def _axes(ins: list, a: dict, opset: int) -> list[int]:
    if opset >= 13 and len(ins) > 1 and ins[1] is not None:
        return [int(v) for v in ins[1].reshape(-1)]
    return [int(v) for v in a.get("axes", [])]


def _fold_op(op: str, ins: list, a: dict, opset: int) -> np.ndarray:
    """One integer op on tiny arrays (at most MAX_SHAPE_VALUES values each)."""
    x = ins[0]
    if op == "Gather":
        idx = ins[1].astype(np.int64)
        return np.take(x, idx, axis=int(a.get("axis", 0)))
    if op == "Unsqueeze":
        for ax in sorted(_axes(ins, a, opset)):
            x = np.expand_dims(x, ax if ax >= 0 else ax + x.ndim + 1)
        return x
    if op == "Squeeze":
        axes = _axes(ins, a, opset)
        return np.squeeze(x, axis=tuple(axes)) if axes else np.squeeze(x)
    if op == "Concat":
        return np.concatenate([np.atleast_1d(v) for v in ins], axis=int(a.get("axis", 0)))
    if op == "Slice":
        starts, ends = ins[1].reshape(-1), ins[2].reshape(-1)
        steps = ins[4].reshape(-1) if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
        if x.ndim != 1 or len(starts) != 1:
            raise ValueError("only 1-D slices")
        return x[int(starts[0]) : int(ends[0]) : int(steps[0])]
    if op == "Cast":
        to = a.get("to")
        return x.astype(np.float64 if to in (1, 10, 11) else np.int64)
    y = ins[1]
    if op == "Mul":
        return x * y
    if op == "Add":
        return x + y
    if op == "Sub":
        return x - y
    if np.any(y == 0):
        raise ValueError("division by zero")
    return np.trunc(x / y).astype(x.dtype) if x.dtype.kind in "iu" else x / y


ELEMENTWISE = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh"}
PASS_THROUGH = {"Identity", "Dropout"}
SUPPORTED_OPS = (
    "Conv", "BatchNormalization", "Relu", "Sigmoid", "Tanh", "MaxPool", "AveragePool",
    "GlobalAveragePool", "GlobalMaxPool", "Flatten", "Reshape", "Gemm", "MatMul", "Add",
    "Softmax", "LogSoftmax", "Identity", "Dropout",
)  # fmt: skip


class _Walker:
    """Maps the path from the graph's input to its output onto engine layers."""

    def __init__(self, model, max_params: int):
        self.model = model
        self.graph = model.graph
        self.max_params = max_params
        self.opset = 0
        self.layers: list[_Layer] = []
        self.notes: list[str] = []
        self.mapped: list[dict] = []
        self.params_total = 0
        self.visited: set[int] = set()
        self.known: dict[str, np.ndarray] = {}  # folded shape values
        self.forks = 0

    # -------------------------------------------------------------- checks
    def check_header(self) -> None:
        m = self.model
        if m.ir_version < IR_MIN:
            raise _invalid(f"IR version {m.ir_version} is too old (cnnviz reads {IR_MIN} and up)")
        for op in m.opset_import:
            if op.domain in ("", "ai.onnx"):
                self.opset = op.version
            elif op.domain != "ai.onnx.ml":
                pass  # a custom domain only matters if a node uses it (refused there)
        if not self.opset:
            raise _invalid("the model imports no ONNX opset (opset_import is empty)")
        if not OPSET_MIN <= self.opset <= OPSET_MAX:
            raise OnnxImportError(
                f"opset {self.opset} is outside the range cnnviz imports ({OPSET_MIN} to "
                f"{OPSET_MAX}); export with e.g. torch.onnx.export(..., opset_version=17)"
            )
        if len(self.model.functions):
            raise OnnxImportError("the model defines local functions; export without them")

    def index_graph(self) -> None:
        g = self.graph
        if len(g.node) > MAX_NODES:
            raise OnnxImportError(f"the graph has {len(g.node):,} nodes; the cap is {MAX_NODES}")
        if len(g.sparse_initializer):
            raise OnnxImportError("sparse initializers are not supported")
        self.inits = {}
        for t in g.initializer:
            if t.name in self.inits:
                raise _invalid(f"initializer '{t.name}' is defined twice")
            self.inits[t.name] = t
        real_inputs = [v for v in g.input if v.name not in self.inits]
        if len(real_inputs) != 1:
            names = ", ".join(f"'{v.name}'" for v in real_inputs) or "none"
            raise OnnxImportError(
                f"the graph must have exactly one input (an image batch N×C×H×W); it has "
                f"{len(real_inputs)}: {names}"
            )
        if len(g.output) != 1:
            raise OnnxImportError(f"the graph must have exactly one output; it has {len(g.output)}")
        self.input = real_inputs[0]
        self.output = g.output[0].name
        self.declared = {v.name: _dims(v) for v in list(g.value_info) + list(g.output)}
        # Producers (SSA: each value once), consumers, and Kahn's order (cycles refused)
        producer: dict[str, int] = {}
        known = set(self.inits) | {self.input.name}
        for i, node in enumerate(g.node):
            if node.domain not in ("", "ai.onnx"):
                raise OnnxImportError(
                    f"{_node_label(node, i)}: operator domain '{node.domain}' is not standard "
                    "ONNX; cnnviz reads the default domain only"
                )
            for out in node.output:
                if not out:
                    continue
                if out in producer or out in known:
                    raise _invalid(f"{_node_label(node, i)}: value '{out}' is produced twice")
                producer[out] = i
        self.producer = producer
        indegree = [0] * len(g.node)
        users: dict[int, list[int]] = {}
        self.consumers: dict[str, list[int]] = {}
        for i, node in enumerate(g.node):
            for name in node.input:
                if not name:
                    continue
                self.consumers.setdefault(name, []).append(i)
                if name in producer:
                    indegree[i] += 1
                    users.setdefault(producer[name], []).append(i)
                elif name not in known:
                    raise _invalid(
                        f"{_node_label(node, i)}: input '{name}' is neither the graph's "
                        "input, an initializer nor any node's output"
                    )
        ready = [i for i, d in enumerate(indegree) if d == 0]
        order = []
        while ready:
            i = ready.pop()
            order.append(i)
            for j in users.get(i, ()):
                indegree[j] -= 1
                if indegree[j] == 0:
                    ready.append(j)
        self.node_users = users
        self.topo_pos = {i: k for k, i in enumerate(order)}
        if len(order) != len(g.node):
            stuck = next(i for i, d in enumerate(indegree) if d > 0)
            raise _invalid(
                f"the graph has a cycle (through {_node_label(g.node[stuck], stuck)}); "
                "an ONNX graph must be acyclic"
            )
        if self.output not in producer and self.output != self.input.name:
            raise _invalid(f"the graph's output '{self.output}' is produced by no node")

    def input_shape(self) -> list[int]:
        from onnx import TensorProto as T

        v = self.input
        tt = v.type.tensor_type if v.type.HasField("tensor_type") else None
        if tt is None:
            raise OnnxImportError(f"the input '{v.name}' is not a tensor")
        if tt.elem_type not in (T.FLOAT, T.DOUBLE, T.FLOAT16):
            raise OnnxImportError(
                f"the input '{v.name}' has element type {tt.elem_type}; cnnviz needs "
                "floating-point images"
            )
        dims = _dims(v)
        if dims is None or len(dims) != 4:
            raise OnnxImportError(
                f"the input '{v.name}' must have 4 dimensions N×C×H×W (NCHW), it has "
                f"{'an unknown shape' if dims is None else dims}"
            )
        n, *chw = dims
        if isinstance(n, int) and n != 1:
            raise OnnxImportError(
                f"the input '{v.name}' has a fixed batch size {n}; export with batch size 1 "
                "or a dynamic batch axis"
            )
        if not all(isinstance(d, int) and d > 0 for d in chw):
            raise OnnxImportError(
                f"the input '{v.name}' has shape {dims}: channels, height and width must be "
                "fixed numbers (export with a fixed image size)"
            )
        if math.prod(chw) > MAX_TENSOR_VALUES:
            raise OnnxImportError(f"the input shape {dims} is too large", 413, "onnx_too_large")
        return [int(d) for d in chw]

    # -------------------------------------------------------------- constants
    def const(self, name: str, node_i: int, role: str, max_values: int = MAX_TENSOR_VALUES):
        """The value of an initializer or a Constant node's output, or None if computed."""
        node = self.graph.node[node_i]
        label = _node_label(node, node_i)
        if name in self.inits:
            return tensor_array(self.inits[name], f"{label}: {role} '{name}'", max_values)
        p = self.producer.get(name)
        if p is not None and self.graph.node[p].op_type == "Constant":
            c = self.graph.node[p]
            attrs = _attrs(c)
            if "value" not in attrs or not hasattr(attrs["value"], "dims"):
                raise OnnxImportError(
                    f"{_node_label(c, p)}: only Constant nodes with a tensor 'value' are supported"
                )
            if p not in self.visited:
                self.visited.add(p)
                self.mapped.append(self._entry(p, None, f"constant: the {role} of {label}"))
            return tensor_array(attrs["value"], f"{_node_label(c, p)}: value", max_values)
        if name in self.known:
            return self.known[name]
        if p is not None and self.graph.node[p].op_type in FOLDABLE:
            return self.fold(p, 0)
        return None

    def is_const(self, name: str) -> bool:
        p = self.producer.get(name)
        if name in self.inits or name in self.known:
            return True
        if p is None:
            return False
        op = self.graph.node[p].op_type
        return op == "Constant" or (op in FOLDABLE and self.fold(p, 0) is not None)

    # -------------------------------------------------------------- shape arithmetic
    def shape_of_data(self, i: int) -> None:
        """A Shape node reading the data: its value is the running shape, batch 1."""
        node = self.graph.node[i]
        a = _attrs(node)
        full = np.array([1, *self.shape], dtype=np.int64)
        start, end = a.get("start", 0), a.get("end", len(full))
        self.known[node.output[0]] = full[start:end]
        self.visited.add(i)
        self.mapped.append(self._entry(i, None, f"the data's shape {full[start:end].tolist()}"))

    def fold(self, p: int, depth: int) -> np.ndarray | None:
        """Evaluate a small integer computation of constants and shapes (e.g. PyTorch's
        x.view(x.size(0), -1) with a dynamic batch: Shape, Gather, Unsqueeze, Concat)."""
        node = self.graph.node[p]
        if node.output[0] in self.known:
            return self.known[node.output[0]]
        if depth > 32:
            raise self.refuse(p, "the shape computation is too deep")
        ins = []
        for k, name in enumerate(node.input):
            if not name:
                ins.append(None)
                continue
            q = self.producer.get(name)
            qop = self.graph.node[q].op_type if q is not None else None
            if name in self.inits and math.prod(self.inits[name].dims) > MAX_SHAPE_VALUES:
                return None  # a weight, not shape arithmetic
            if qop == "Constant":
                t = _attrs(self.graph.node[q]).get("value")
                if hasattr(t, "dims") and math.prod(t.dims) > MAX_SHAPE_VALUES:
                    return None
            if qop in FOLDABLE and name not in self.known:
                v = self.fold(q, depth + 1)
            else:
                v = self.const(name, p, f"input {k}", MAX_SHAPE_VALUES)
            if v is None:
                return None
            ins.append(v)
        a = _attrs(node)
        op = node.op_type
        try:
            out = _fold_op(op, ins, a, self.opset)
        except (ValueError, IndexError, TypeError) as exc:
            raise self.refuse(p, f"cannot evaluate this shape computation ({exc})") from None
        if out.size > MAX_SHAPE_VALUES or out.ndim > 1 or out.dtype.kind not in "iuf":
            raise self.refuse(
                p, "computes a large or non-integer tensor; only small shape sums fold"
            )
        self.known[node.output[0]] = out
        self.visited.add(p)
        self.mapped.append(self._entry(p, None, f"shape arithmetic = {out.tolist()}"))
        return out

    def need_const(self, node_i: int, k: int, role: str, **kw) -> np.ndarray:
        node = self.graph.node[node_i]
        if len(node.input) <= k or not node.input[k]:
            raise OnnxImportError(f"{_node_label(node, node_i)}: the {role} is missing")
        value = self.const(node.input[k], node_i, role, **kw)
        if value is None:
            raise OnnxImportError(
                f"{_node_label(node, node_i)}: its {role} '{node.input[k]}' is computed in "
                "the graph; cnnviz needs it stored in the model (an initializer)"
            )
        return value

    def float_param(self, node_i: int, k: int, role: str, shape: tuple) -> np.ndarray:
        arr = self.need_const(node_i, k, role)
        label = _node_label(self.graph.node[node_i], node_i)
        if arr.dtype.kind != "f":
            raise OnnxImportError(f"{label}: the {role} must hold floating-point numbers")
        if tuple(arr.shape) != tuple(shape):
            raise _invalid(
                f"{label}: the {role} has shape {list(arr.shape)} but the layer needs "
                f"{list(shape)} (shapes don't agree)"
            )
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise OnnxImportError(f"{label}: the {role} holds NaN or infinity")
        return arr

    # -------------------------------------------------------------- walking
    def _entry(self, i: int, layer: int | None, what: str) -> dict:
        node = self.graph.node[i]
        return {"index": i, "name": node.name, "op_type": node.op_type, "layer": layer, "as": what}

    def refuse(self, i: int, why: str, status: int = 422) -> OnnxImportError:
        return OnnxImportError(f"{_node_label(self.graph.node[i], i)}: {why}", status)

    def single_data_input(self, i: int, data: str, nconst: int | None = None) -> None:
        node = self.graph.node[i]
        if not node.input or node.input[0] != data:
            raise self.refuse(i, f"its first input must be the data ('{data}')")
        for k, name in enumerate(node.input[1:], 1):
            if name and not self.is_const(name):
                raise self.refuse(
                    i,
                    f"input {k} ('{name}') is computed in the graph; cnnviz needs it stored "
                    "in the model (an initializer), or branches that start at one value and "
                    "join in an Add or a Concat",
                )

    def only_first_output_used(self, i: int) -> str:
        node = self.graph.node[i]
        if not node.output or not node.output[0]:
            raise _invalid(f"{_node_label(node, i)}: has no output")
        for extra in node.output[1:]:
            if extra and (extra in self.consumers or extra == self.output):
                raise self.refuse(
                    i, f"its extra output '{extra}' is used; cnnviz has no such output"
                )
        return node.output[0]

    def walk(self) -> None:
        g = self.graph
        self.shape = self.input_shape()
        self.in_shape = list(self.shape)
        cur = self.input.name
        self.final_activation: str | None = None
        self.log_softmax = False
        self.chain(cur, None)
        others = [
            i for i, n in enumerate(g.node) if i not in self.visited and n.op_type != "Constant"
        ]
        if others:
            i = others[0]
            raise self.refuse(
                i, "is not on the path from the input to the output; cnnviz imports one chain"
            )
        declared = self.declared.get(self.output)
        want = [1, *self.shape]
        if declared and len(declared) == len(want):
            bad = [
                (d, w)
                for k, (d, w) in enumerate(zip(declared, want, strict=True))
                if isinstance(d, int) and d != w and not (k == 0 and d in (0, 1))
            ]
            if bad:
                raise _invalid(
                    f"the graph's output '{self.output}' is declared {declared} but the "
                    f"layers give {want} (shapes don't agree)"
                )
        elif declared:
            raise _invalid(
                f"the graph's output '{self.output}' is declared {declared} but the layers "
                f"give {want} (shapes don't agree)"
            )

    def chain(self, cur: str, stop: int | None) -> str:
        """Walk from the value `cur`, appending layers to `self.layers`, up to the graph's
        output (stop None) or up to the node `stop` that joins branches. Returns the last
        value."""
        g = self.graph
        while True:
            if stop is None and cur == self.output:
                return cur
            users = [i for i in self.consumers.get(cur, []) if i not in self.visited]
            for i in [i for i in users if g.node[i].op_type == "Shape" and len(users) > 1]:
                self.shape_of_data(i)
                users.remove(i)
            if stop is not None and users == [stop]:
                return cur
            if not users:
                raise _invalid(f"the value '{cur}' leads nowhere: it is not the graph's output")
            if len(users) > 1:
                if stop is not None and stop in users:
                    names = ", ".join(_node_label(g.node[i], i) for i in users[:4])
                    raise _invalid(
                        f"the value '{cur}' feeds {names}: a branch that forks again into "
                        "its own join is not supported"
                    )
                cur = self.block(cur, users)
                continue
            i = users[0]
            if self.final_activation is not None and g.node[i].op_type not in PASS_THROUGH:
                raise self.refuse(
                    i,
                    f"comes after {'LogSoftmax' if self.log_softmax else 'Softmax'}; softmax must "
                    "be the network's last operation",
                )
            self.visited.add(i)
            cur = self.step(i, cur)

    def descendants(self, start: int) -> set[int]:
        seen, todo = {start}, [start]
        while todo:
            for j in self.node_users.get(todo.pop(), ()):
                if j not in seen:
                    seen.add(j)
                    todo.append(j)
        return seen

    def block(self, cur: str, users: list[int]) -> str:
        """`cur` feeds several nodes: branches that join again at an Add (a residual block)
        or a Concat along the channels (a concat block). Walks each branch, returns the
        join's output."""
        g = self.graph
        self.forks += 1
        if self.forks > MAX_BLOCKS:
            raise OnnxImportError(
                f"the graph branches more than {MAX_BLOCKS} times; cnnviz imports small "
                "networks only",
                413,
                "onnx_too_large",
            )
        common = set.intersection(*(self.descendants(u) for u in users))
        names = ", ".join(_node_label(g.node[i], i) for i in users[:4])
        if not common:
            raise _invalid(
                f"the value '{cur}' feeds {len(users)} nodes ({names}) whose paths never join "
                "again; cnnviz imports one network with one output"
            )
        m = min(common, key=self.topo_pos.__getitem__)
        join = g.node[m]
        if join.op_type not in ("Add", "Sum", "Concat"):
            raise self.refuse(
                m,
                f"joins the branches from '{cur}' ({names}); cnnviz joins branches only with "
                "Add (a residual block) or Concat along the channels (a concat block)",
            )
        start_shape = list(self.shape)
        outer_layers = self.layers
        branches = []  # (layers, shape, end value, first mapped entry, last)
        for u in users:
            if u == m:
                branches.append(([], list(start_shape), cur, len(self.mapped), len(self.mapped)))
                continue
            self.layers, self.shape = [], list(start_shape)
            first = len(self.mapped)
            self.visited.add(u)
            out = self.chain(self.step(u, cur), m)
            branches.append((self.layers, self.shape, out, first, len(self.mapped)))
        self.layers = outer_layers
        self.visited.add(m)
        out = self.only_first_output_used(m)
        ends = [b[2] for b in branches]
        inputs = list(join.input)
        if sorted(inputs) != sorted(ends) or len(set(inputs)) != len(inputs):
            raise self.refuse(
                m,
                f"joins {inputs}, but the branches from '{cur}' end in {ends}; every input "
                "must be one branch",
            )
        branches.sort(key=lambda b: inputs.index(b[2]))
        k = len(self.layers)
        if join.op_type == "Concat":
            spec, params, labels, shape = self._concat(m, join, branches, k)
        else:
            spec, params, labels, shape = self._residual(m, branches, k)
        for (_, _, _, first, last), label in zip(branches, labels, strict=True):
            for e in self.mapped[first:last]:
                inner = "" if e["layer"] is None else f"[{e['layer']}]"
                what = re.sub(r" of (the residual block|layer) \d+$", "", e["as"])
                e["as"] = f"in layer {k} ({spec['type']}) {label}{inner}: {what}"
                e["layer"] = k
        self.shape = list(start_shape)
        self.add_layer(m, spec, params, f"{spec['type']} block", out_shape=shape)
        return out

    def _residual(self, m: int, branches: list, k: int):
        if len(branches) != 2:
            raise self.refuse(m, "adds more than two branches; a residual block adds two")

        def is_skip(b) -> bool:
            layers = b[0]
            return not layers or (
                len(layers) == 1
                and layers[0].spec["type"] == "conv2d"
                and layers[0].spec["activation"] == "identity"
            )

        main, skip = branches
        if not is_skip(skip) or (not main[0] and skip[0]):
            main, skip = skip, main
        if not main[0] or not is_skip(skip):
            raise self.refuse(
                m,
                "adds two branches, but neither is the block's input itself or a single Conv "
                "(a projection): cnnviz's residual block is a = g(F(x) + x) or "
                "g(F(x) + conv(x))",
            )
        if main[1] != skip[1]:
            raise self.refuse(m, f"adds shapes {main[1]} and {skip[1]} (shapes don't agree)")
        spec = {
            "type": "residual",
            "layers": [lay.spec for lay in main[0]],
            "activation": "identity",
            "projection": skip[0][0].spec if skip[0] else None,
        }
        params = {
            f"layers.{i}.{n}": v for i, lay in enumerate(main[0]) for n, v in lay.params.items()
        }
        if skip[0]:
            params.update({f"projection.{n}": v for n, v in skip[0][0].params.items()})
        labels = ["F" if b is main else "projection" for b in branches]
        return spec, params, labels, list(main[1])

    def _concat(self, m: int, join, branches: list, k: int):
        ndim = len(branches[0][1])
        axis = _attrs(join).get("axis", 1)
        if axis not in (1, -ndim):
            raise self.refuse(m, f"axis={axis}: cnnviz concatenates along the channels (axis 1)")
        if any(not b[0] for b in branches):
            raise self.refuse(
                m, "concatenates the block's input itself; every branch needs a layer"
            )
        shapes = [b[1] for b in branches]
        if any(len(sh) != ndim or sh[1:] != shapes[0][1:] for sh in shapes):
            raise self.refuse(
                m,
                f"concatenates shapes {shapes}: their heights and widths differ "
                "(shapes don't agree)",
            )
        spec = {"type": "concat", "branches": [[lay.spec for lay in b[0]] for b in branches]}
        params = {
            f"branches.{j}.{i}.{n}": v
            for j, b in enumerate(branches)
            for i, lay in enumerate(b[0])
            for n, v in lay.params.items()
        }
        shape = [sum(sh[0] for sh in shapes), *shapes[0][1:]]
        return spec, params, [f"branch {j}" for j in range(len(branches))], shape

    def check_declared(self, i: int, name: str) -> None:
        declared = self.declared.get(name)
        if not declared:
            return
        want = [1, *self.shape]
        ok = len(declared) == len(want) and all(
            not isinstance(d, int) or d == w or (k == 0 and d == 0)
            for k, (d, w) in enumerate(zip(declared, want, strict=True))
        )
        if not ok:
            raise self.refuse(
                i,
                f"its output '{name}' is declared {declared} but computes {want} "
                "(shapes don't agree)",
            )

    def add_layer(
        self, i: int, spec: dict, params: dict, what: str, out_shape: list | None = None
    ) -> None:
        t = spec["type"]
        if t in ("conv2d", "maxpool2d", "avgpool2d") or (out_shape and len(self.shape) == 3):
            try:
                norm = normalize_spec({"input_shape": self.shape, "layers": [spec], "loss": "mse"})
            except SpecError as exc:
                msg = str(exc).split(": ", 1)[-1]
                raise self.refuse(i, f"{msg} (shapes don't agree)") from None
            self.shape = norm["output_shape"]
        elif out_shape is not None:
            self.shape = list(out_shape)
        elif t == "flatten":
            self.shape = [math.prod(self.shape)]
        else:
            self.shape = [spec["units"]]
        n = sum(int(v.size) for v in params.values())
        if t in ("residual", "concat"):
            n = 0  # its layers' parameters were counted as they were walked
        self.params_total += n
        if self.params_total > self.max_params:
            raise OnnxImportError(
                f"the model has more than {self.max_params:,} parameters (the cap)",
                413,
                "onnx_too_large",
            )
        self.layers.append(_Layer(spec, params, [self.graph.node[i].name]))
        self.mapped.append(self._entry(i, len(self.layers) - 1, what))

    def last_open(self, i: int, what: str) -> _Layer:
        """The previous layer, if it is a conv2d/dense that can still take `what`."""
        if not self.layers or self.layers[-1].spec["type"] not in ("conv2d", "dense"):
            prev = self.layers[-1].spec["type"] if self.layers else "the input"
            raise self.refuse(i, f"{what}, but it follows {prev}")
        last = self.layers[-1]
        if last.spec.get("activation", "identity") != "identity":
            raise self.refuse(i, f"{what}, but that layer already has an activation")
        return last

    def step(self, i: int, cur: str) -> str:
        node = self.graph.node[i]
        op = node.op_type
        a = _attrs(node)
        handler = getattr(self, f"op_{op.lower()}", None) if op in SUPPORTED_OPS else None
        if handler is None:
            raise self.refuse(i, self.unsupported_reason(op))
        out = handler(i, node, a, cur)
        self.check_declared(i, out)
        return out

    @staticmethod
    def unsupported_reason(op: str) -> str:
        hints = {
            "BatchNormalization": "not supported here; cnnviz folds it only into a Conv "
            "directly before it",
            "Concat": "a Concat joins branches that start at one value (a concat block)",
            "Pad": "separate padding is not supported; give the Conv or pool its padding",
            "LeakyRelu": "not supported; the engine's activations are relu, sigmoid and tanh",
            "Shape": "shape computations are not supported; export with a fixed input size "
            "and torch.flatten(x, 1) instead of x.view(x.size(0), -1)",
            "ConvTranspose": "not supported: the engine has no transposed convolution",
        }
        return hints.get(
            op,
            "not supported: cnnviz imports Conv, Relu, Sigmoid, Tanh, MaxPool, AveragePool, "
            "Flatten, Reshape, Gemm, MatMul, Add (bias), Softmax, LogSoftmax, Identity, "
            "Dropout and BatchNormalization (after a Conv)",
        )

    # -------------------------------------------------------------- ops
    def _pair_attr(self, i: int, a: dict, key: str, default: list[int], name: str) -> list[int]:
        v = a.get(key, default)
        if not isinstance(v, list) or len(v) != 2 or not all(isinstance(x, int) for x in v):
            raise self.refuse(i, f"'{key}' {v!r} must be 2 numbers ({name}); only 2-D is supported")
        return v

    def _window(self, i: int, a: dict, kernel: list[int], pool: bool) -> tuple[list, list]:
        if len(self.shape) != 3:
            raise self.refuse(i, f"needs a C×H×W input but receives shape {self.shape}")
        strides = self._pair_attr(i, a, "strides", [1, 1], "stride")
        dil = a.get("dilations", [1, 1])
        if list(dil) != [1, 1]:
            raise self.refuse(i, f"dilations {dil} are not supported (only 1)")
        auto = a.get("auto_pad", "NOTSET")
        if auto in ("NOTSET", ""):
            pads = a.get("pads", [0, 0, 0, 0])
            if not isinstance(pads, list) or len(pads) != 4:
                raise self.refuse(
                    i, f"'pads' {pads!r} must be 4 numbers [top, left, bottom, right]"
                )
        elif auto == "VALID":
            pads = [0, 0, 0, 0]
        elif auto in ("SAME_UPPER", "SAME_LOWER"):
            pads = [0, 0, 0, 0]
            for ax in range(2):
                size = self.shape[1 + ax]
                total = max(
                    (math.ceil(size / strides[ax]) - 1) * strides[ax] + kernel[ax] - size, 0
                )
                first = total // 2 if auto == "SAME_UPPER" else total - total // 2
                pads[ax], pads[ax + 2] = first, total - first
        else:
            raise self.refuse(i, f"auto_pad {auto!r} is not supported")
        if any(p < 0 for p in pads):
            raise self.refuse(i, f"negative pads {pads}")
        if pads[0] != pads[2] or pads[1] != pads[3]:
            raise self.refuse(
                i,
                f"pads {pads} are not symmetric (top {pads[0]}, bottom {pads[2]}, left "
                f"{pads[1]}, right {pads[3]}); cnnviz pads both sides equally",
            )
        if pool and a.get("ceil_mode", 0):
            for ax in range(2):
                n = self.shape[1 + ax] + 2 * pads[ax] - kernel[ax]
                if n % strides[ax]:
                    raise self.refuse(
                        i, "ceil_mode=1 changes the output size here; cnnviz rounds down"
                    )
        return strides, [pads[0], pads[1]]

    def op_conv(self, i, node, a, cur):
        self.single_data_input(i, cur)
        out = self.only_first_output_used(i)
        if len(self.shape) != 3:
            raise self.refuse(i, f"needs a C×H×W input but receives shape {self.shape}")
        w = self.need_const(i, 1, "weight")
        if w.ndim != 4:
            raise self.refuse(
                i, f"weight of shape {list(w.shape)}: only 2-D convolutions (4-D weights)"
            )
        if a.get("group", 1) != 1:
            raise self.refuse(
                i, f"group={a['group']} (grouped/depthwise) is not supported; only group 1"
            )
        m, c, kh, kw = (int(x) for x in w.shape)
        if c != self.shape[0]:
            raise self.refuse(
                i,
                f"weight has {c} input channels but the input has {self.shape[0]} "
                "(shapes don't agree)",
            )
        kernel = self._pair_attr(i, a, "kernel_shape", [kh, kw], "kernel size")
        if kernel != [kh, kw]:
            raise self.refuse(i, f"kernel_shape {kernel} does not match the weight's {[kh, kw]}")
        strides, pads = self._window(i, a, kernel, pool=False)
        wf = self.float_param(i, 1, "weight", (m, c, kh, kw))
        has_b = len(node.input) > 2 and node.input[2]
        b = self.float_param(i, 2, "bias", (m,)) if has_b else np.zeros(m)
        spec = {"type": "conv2d", "out_channels": m, "kernel_size": [kh, kw], "stride": strides,
                "padding": pads, "activation": "identity"}  # fmt: skip
        self.add_layer(
            i, spec, {"w": wf, "b": b}, "conv2d" + ("" if has_b else " (no bias: b = 0)")
        )
        return out

    def op_batchnormalization(self, i, node, a, cur):
        self.single_data_input(i, cur)
        out = self.only_first_output_used(i)
        if a.get("training_mode", 0):
            raise self.refuse(i, "training_mode=1; export the model in eval() mode")
        if not self.layers or self.layers[-1].spec["type"] != "conv2d":
            raise self.refuse(
                i,
                "not supported here: cnnviz folds BatchNormalization only into a Conv "
                "directly before it",
            )
        last = self.last_open(i, "BatchNormalization folds into the Conv before it")
        if last.bn_folded:
            raise self.refuse(i, "a second BatchNormalization after the same Conv")
        m = last.spec["out_channels"]
        gamma, beta, mean, var = (
            self.float_param(i, k, role, (m,))
            for k, role in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "var"))
        )
        eps = float(a.get("epsilon", 1e-5))
        if np.any(var + eps <= 0):
            raise self.refuse(i, "variance + epsilon must be positive")
        k = gamma / np.sqrt(var + eps)
        last.params["w"] = last.params["w"] * k[:, None, None, None]
        last.params["b"] = (last.params["b"] - mean) * k + beta
        last.bn_folded = True
        self.mapped.append(self._entry(i, len(self.layers) - 1, "folded into the conv2d before it"))
        self.notes.append(
            f"BatchNormalization '{node.name}' folded into layer {len(self.layers) - 1}: "
            "w·γ/√(var+ε), (b − mean)·γ/√(var+ε) + β"
        )
        return out

    def _activation(self, i, node, cur, act: str) -> str:
        self.single_data_input(i, cur)
        out = self.only_first_output_used(i)
        last = self.layers[-1] if self.layers else None
        if last is not None and last.spec["type"] == "residual":
            if last.spec["activation"] != "identity":
                raise self.refuse(i, "the residual block already has an activation")
            last.spec["activation"] = act
            k = len(self.layers) - 1
            self.mapped.append(self._entry(i, k, f"activation {act} of the residual block {k}"))
            return out
        # Element-wise and non-decreasing, so it commutes with flatten and with max-pooling:
        # relu(max(x)) = max(relu(x)); outputs and every parameter gradient stay the same.
        k = len(self.layers) - 1
        moved = []
        while k >= 0 and self.layers[k].spec["type"] in ("flatten", "maxpool2d"):
            moved.append(self.layers[k].spec["type"])
            k -= 1
        if k < 0 or self.layers[k].spec["type"] not in ("conv2d", "dense"):
            prev = self.layers[-1].spec["type"] if self.layers else "the input"
            raise self.refuse(
                i,
                f"cnnviz applies an activation only as part of a conv2d or dense layer, but it "
                f"follows {prev}",
            )
        target = self.layers[k]
        if target.spec["activation"] != "identity":
            raise self.refuse(i, f"layer {k} ({target.spec['type']}) already has an activation")
        target.spec["activation"] = act
        self.mapped.append(self._entry(i, k, f"activation {act} of layer {k}"))
        if "maxpool2d" in moved:
            self.notes.append(
                f"{node.op_type} '{node.name}' came after max-pooling; it is applied before it "
                f"in layer {k} ({act} and max commute: the output and every gradient of the "
                "parameters are the same, the pooled values shown are already activated)"
            )
        return out

    def op_relu(self, i, node, a, cur):
        return self._activation(i, node, cur, "relu")

    def op_sigmoid(self, i, node, a, cur):
        return self._activation(i, node, cur, "sigmoid")

    def op_tanh(self, i, node, a, cur):
        return self._activation(i, node, cur, "tanh")

    def _pool(self, i, node, a, cur, kind: str, global_: bool = False) -> str:
        self.single_data_input(i, cur)
        out = self.only_first_output_used(i)
        if len(self.shape) != 3:
            raise self.refuse(i, f"needs a C×H×W input but receives shape {self.shape}")
        if global_:
            kernel, strides, pads = list(self.shape[1:]), list(self.shape[1:]), [0, 0]
        else:
            if "kernel_shape" not in a:
                raise self.refuse(i, "has no kernel_shape")
            kernel = self._pair_attr(i, a, "kernel_shape", None, "kernel size")
            strides, pads = self._window(i, a, kernel, pool=True)
            if kind == "maxpool2d" and a.get("storage_order", 0):
                raise self.refuse(i, "storage_order=1 is not supported")
            if kind == "avgpool2d" and any(pads) and not a.get("count_include_pad", 0):
                raise self.refuse(
                    i,
                    "count_include_pad=0 with padding is not supported: cnnviz divides by the "
                    "whole window, padding included (PyTorch's default count_include_pad=True)",
                )
        spec = {"type": kind, "kernel_size": kernel, "stride": strides, "padding": pads}
        self.add_layer(i, spec, {}, kind)
        return out

    def op_maxpool(self, i, node, a, cur):
        return self._pool(i, node, a, cur, "maxpool2d")

    def op_averagepool(self, i, node, a, cur):
        return self._pool(i, node, a, cur, "avgpool2d")

    def op_globalaveragepool(self, i, node, a, cur):
        return self._pool(i, node, a, cur, "avgpool2d", global_=True)

    def op_globalmaxpool(self, i, node, a, cur):
        return self._pool(i, node, a, cur, "maxpool2d", global_=True)

    def _flatten(self, i: int, what: str) -> None:
        if len(self.shape) == 1:
            self.mapped.append(self._entry(i, None, "skipped: the data is already a vector"))
            return
        self.add_layer(i, {"type": "flatten"}, {}, what)

    def op_flatten(self, i, node, a, cur):
        self.single_data_input(i, cur)
        out = self.only_first_output_used(i)
        axis = a.get("axis", 1)
        if axis != 1:
            raise self.refuse(
                i, f"axis={axis}: cnnviz flattens everything after the batch axis (axis=1)"
            )
        self._flatten(i, "flatten")
        return out

    def op_reshape(self, i, node, a, cur):
        self.single_data_input(i, cur)
        out = self.only_first_output_used(i)
        target = self.need_const(i, 1, "shape", max_values=MAX_SHAPE_VALUES)
        if target.dtype.kind not in "iu" or target.ndim != 1:
            raise self.refuse(i, "the target shape must be a 1-D integer tensor")
        full = [1, *self.shape]
        dims = [int(v) for v in target]
        allowzero = a.get("allowzero", 0)
        resolved = []
        for k, d in enumerate(dims):
            if d == 0 and not allowzero:
                if k >= len(full):
                    raise self.refuse(i, f"shape {dims}: 0 copies a dimension that does not exist")
                d = full[k]
            resolved.append(d)
        total = math.prod(full)
        if resolved.count(-1) > 1 or any(d < -1 for d in resolved):
            raise self.refuse(i, f"invalid target shape {dims}")
        if -1 in resolved:
            rest = math.prod(d for d in resolved if d != -1)
            if rest == 0 or total % rest:
                raise self.refuse(i, f"cannot reshape {full} to {dims} (shapes don't agree)")
            resolved[resolved.index(-1)] = total // rest
        if math.prod(resolved) != total:
            raise self.refuse(i, f"cannot reshape {full} to {dims} (shapes don't agree)")
        if len(resolved) != 2 or resolved[0] != 1:
            raise self.refuse(
                i,
                f"reshapes {full} to {resolved}; cnnviz supports only flattening to a vector "
                "[batch, features]",
            )
        self._flatten(i, "flatten (Reshape to a vector)")
        return out

    def _dense(self, i: int, w: np.ndarray, what: str) -> None:
        units = int(w.shape[0])
        spec = {"type": "dense", "units": units, "activation": "identity"}
        self.add_layer(i, spec, {"w": w, "b": np.zeros(units)}, what)

    def _need_vector(self, i: int) -> int:
        if len(self.shape) != 1:
            raise self.refuse(
                i, f"needs a flat vector but receives shape {self.shape}; flatten before it"
            )
        return self.shape[0]

    def op_gemm(self, i, node, a, cur):
        self.single_data_input(i, cur)
        out = self.only_first_output_used(i)
        n_in = self._need_vector(i)
        if a.get("transA", 0):
            raise self.refuse(i, "transA=1 is not supported")
        raw = self.need_const(i, 1, "weight")
        if raw.ndim != 2:
            raise self.refuse(i, f"weight of shape {list(raw.shape)} must be 2-D")
        trans_b = a.get("transB", 0)
        units = int(raw.shape[0] if trans_b else raw.shape[1])
        shape = (units, n_in) if trans_b else (n_in, units)
        w = self.float_param(i, 1, "weight", shape)
        w = w if trans_b else w.T.copy()
        alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
        if alpha != 1.0:
            w = w * alpha
            self.notes.append(f"Gemm '{node.name}': alpha {alpha} multiplied into the weight")
        self._dense(i, w, "dense (Gemm)")
        if len(node.input) > 2 and node.input[2]:
            c = self.need_const(i, 2, "bias")
            self._add_bias(i, c * beta if beta != 1.0 else c, "bias")
            if beta != 1.0:
                self.notes.append(f"Gemm '{node.name}': beta {beta} multiplied into the bias")
        return out

    def op_matmul(self, i, node, a, cur):
        self.single_data_input(i, cur)
        out = self.only_first_output_used(i)
        n_in = self._need_vector(i)
        raw = self.need_const(i, 1, "weight")
        if raw.ndim != 2:
            raise self.refuse(i, f"weight of shape {list(raw.shape)} must be 2-D")
        w = self.float_param(i, 1, "weight", (n_in, int(raw.shape[1]))).T.copy()
        self._dense(i, w, "dense (MatMul; a following Add is its bias)")
        return out

    def _add_bias(self, i: int, c: np.ndarray, role: str) -> None:
        last = self.last_open(i, "a constant Add is folded into the bias of the layer before it")
        if last.bias_added and role != "bias":
            raise self.refuse(i, "a second constant Add after the same layer")
        if c.dtype.kind != "f":
            raise self.refuse(i, f"the {role} must hold floating-point numbers")
        b = last.params["b"]
        m = b.shape[0]
        if last.spec["type"] == "conv2d":
            ok_shapes = {(m,), (m, 1, 1), (1, m, 1, 1), (1,), ()}
        else:
            ok_shapes = {(m,), (1, m), (1,), ()}
        if tuple(c.shape) not in ok_shapes:
            raise self.refuse(
                i,
                f"the {role} has shape {list(c.shape)}; cnnviz folds a per-output bias of "
                f"{m} values (shapes don't agree)",
            )
        c = np.broadcast_to(c.astype(np.float64).reshape(-1), (m,))
        if not np.all(np.isfinite(c)):
            raise self.refuse(i, f"the {role} holds NaN or infinity")
        last.params["b"] = b + c
        last.bias_added = True

    def op_add(self, i, node, a, cur):
        out = self.only_first_output_used(i)
        if len(node.input) != 2 or cur not in node.input:
            raise self.refuse(i, "must add a constant to the data")
        other = node.input[1] if node.input[0] == cur else node.input[0]
        c = self.const(other, i, "bias")
        if c is None:
            raise self.refuse(
                i,
                "adds two computed values that do not branch from one value; a residual "
                "block's Add joins F(x) and x (or a Conv of x)",
            )
        self._add_bias(i, c, "added constant")
        self.mapped.append(
            self._entry(i, len(self.layers) - 1, "added to the bias of the layer before it")
        )
        return out

    def _softmax(self, i, node, a, cur, log: bool) -> str:
        self.single_data_input(i, cur)
        out = self.only_first_output_used(i)
        default_axis = -1 if self.opset >= 13 else 1
        axis = a.get("axis", default_axis)
        if len(self.shape) != 1 or axis not in (1, -1):
            raise self.refuse(
                i,
                f"softmax over axis {axis} of shape {[1, *self.shape]}: cnnviz's softmax is over "
                "a flat vector of classes (axis 1 after flattening)",
            )
        k = len(self.layers) - 1
        if k < 0 or self.layers[k].spec["type"] not in ("conv2d", "dense"):
            prev = self.layers[k].spec["type"] if self.layers else "the input"
            raise self.refuse(i, f"softmax must directly follow a dense layer, not {prev}")
        target = self.layers[k]
        if target.spec["activation"] != "identity":
            raise self.refuse(
                i, f"layer {k} already has the activation {target.spec['activation']}"
            )
        target.spec["activation"] = "softmax"
        self.final_activation = "softmax"
        self.log_softmax = log
        what = "activation softmax of the last layer, loss cross_entropy"
        if log:
            what = "LogSoftmax: " + what
            self.notes.append(
                f"LogSoftmax '{node.name}' became the softmax activation with the cross-entropy "
                "loss: cnnviz shows the probabilities, whose logarithm is the ONNX output"
            )
        self.mapped.append(self._entry(i, k, what))
        return out

    def op_softmax(self, i, node, a, cur):
        return self._softmax(i, node, a, cur, log=False)

    def op_logsoftmax(self, i, node, a, cur):
        return self._softmax(i, node, a, cur, log=True)

    def op_identity(self, i, node, a, cur):
        self.single_data_input(i, cur)
        self.mapped.append(self._entry(i, None, "skipped (identity)"))
        return self.only_first_output_used(i)

    def op_dropout(self, i, node, a, cur):
        self.single_data_input(i, cur)
        if len(node.input) > 2 and node.input[2]:
            mode = self.const(node.input[2], i, "training_mode")
            if mode is not None and mode.size == 1 and bool(mode.reshape(-1)[0]):
                raise self.refuse(i, "training_mode is true; export the model in eval() mode")
        self.mapped.append(self._entry(i, None, "skipped (dropout does nothing at inference)"))
        return self.only_first_output_used(i)


@dataclass
class Imported:
    """A converted model: raw spec (normalize it with normalize_spec), params, report."""

    name: str
    spec: dict
    params: list[dict]
    report: dict


def convert(data: bytes, name: str = "imported", max_params: int = MAX_TENSOR_VALUES) -> Imported:
    """ONNX bytes -> spec + params + report. Raises OnnxImportError naming what is wrong."""
    model = parse_model(data)
    w = _Walker(model, max_params)
    w.check_header()
    w.index_graph()
    w.walk()
    if not w.layers:
        raise OnnxImportError("the graph has no layer cnnviz can show (input goes straight out)")
    loss = "cross_entropy" if w.final_activation == "softmax" else "mse"
    spec = {"input_shape": w.in_shape, "layers": [lay.spec for lay in w.layers], "loss": loss}
    try:
        norm = normalize_spec(spec)
    except SpecError as exc:  # the walk checks shapes; this is the engine's last word
        raise OnnxImportError(f"the converted network is not valid: {exc}") from None
    if model.graph.name and name == "imported":
        name = model.graph.name
    unused = [t for t in model.graph.initializer if t.name not in w.consumers]
    report = {
        "format": "onnx",
        "ir_version": int(model.ir_version),
        "opset": int(w.opset),
        "producer": f"{model.producer_name} {model.producer_version}".strip() or None,
        "graph": model.graph.name or None,
        "input": {"name": w.input.name, "shape": [1, *w.in_shape]},
        "output": {"name": w.output, "shape": [1, *norm["output_shape"]]},
        "nodes": sorted(w.mapped, key=lambda e: e["index"]),
        "notes": w.notes + ([f"{len(unused)} unused initializer(s) ignored"] if unused else []),
        "layers": len(w.layers),
        "param_count": norm["param_count"],
    }
    return Imported(_sanitize_name(name), norm, [lay.params for lay in w.layers], report)


# ---------------------------------------------------------------------------- the web layer
def _web_caps(spec: dict, s) -> str | None:
    """Why the page could not trace this network through POST /api/trace, or None: the
    custom-network caps of /api/trace, checked by the same functions."""
    from ..errors import ApiError
    from .custom import _check_caps, count_layers

    n = count_layers(spec["layers"])
    if n > s.max_layers:
        return f"{n} layers (blocks' inner layers included) is over the cap of {s.max_layers}"
    try:
        _check_caps(spec, s, True)
    except ApiError as exc:
        return exc.msg
    # The page sends the parameters back with every trace: ~25 bytes a number as JSON
    if spec["param_count"] * 25 > s.max_body_bytes:
        return (
            f"{spec['param_count']:,} parameters are too many to send with each trace "
            f"(request cap {s.max_body_bytes:,} bytes)"
        )
    return None


def import_json(data: bytes, filename: str | None, s) -> bytes:
    """POST /api/models: the upload -> the GET /api/models/{name} format plus `report`."""
    from ..errors import ApiError
    from .serialize import dumps

    loc = ("body", "file")
    if len(data) > s.max_onnx_bytes:
        raise ApiError(loc, f"the file is larger than {s.max_onnx_bytes:,} bytes", "too_large", 413)
    stem = (filename or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    stem = stem[:-5] if stem.lower().endswith(".onnx") else stem
    try:
        result = convert(data, stem or "imported", max_params=s.max_trace_values)
    except OnnxImportError as exc:
        raise ApiError(loc, str(exc), exc.kind, exc.status) from None
    why = _web_caps(result.spec, s)
    if why:
        raise ApiError(
            loc, f"the network is too large to step through in the page: {why}", "cap", 413
        )
    out = {
        "name": result.name,
        "description": f"Imported from {stem + '.onnx' if stem else 'an ONNX file'}"
        + (f" ({result.report['producer']})" if result.report["producer"] else ""),
        "dataset": None,
        "test_accuracy": None,
        "network": result.spec,
        "params": result.params,
        "report": result.report,
    }
    return dumps(out)


# ---------------------------------------------------------------------------- the command line
def _cli(args) -> int:
    import sys
    from pathlib import Path

    from cnncore import Network, models

    src = Path(args.file)
    try:
        data = src.read_bytes()
        result = convert(data, args.name or src.stem)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OnnxImportError as exc:
        print(f"error: {src.name}: {exc}", file=sys.stderr)
        return 1
    name = _sanitize_name(args.name) if args.name else result.name
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net = Network.from_spec(result.spec, result.params)
    meta = {
        "description": f"Imported from {src.name}"
        + (f" ({result.report['producer']})" if result.report["producer"] else ""),
        "dataset": None,
        "test_accuracy": None,
        "import_report": result.report,
    }
    spec_path, weights_path = models.save(net, out / name, meta)
    print(f"{spec_path}, {weights_path}: {len(result.spec['layers'])} layers, ", end="")
    print(f"{result.spec['param_count']:,} parameters (serve with CNNVIZ_MODELS_DIR={out})")
    for note in result.report["notes"]:
        print(f"note: {note}")
    return 0


def add_arguments(sub) -> None:
    """`cnnviz import`."""
    p = sub.add_parser(
        "import",
        help="convert an .onnx file to a cnnviz model (<name>.json + <name>.npz)",
        description="Convert an ONNX model to the bundled-model format, so a deployment can "
        "serve it (CNNVIZ_MODELS_DIR=DIR). Unsupported graphs are refused with the node, its "
        "op type and why.",
    )
    p.add_argument("file", help="the .onnx file (weights inside; external data is refused)")
    p.add_argument("--out", required=True, help="directory to write <name>.json and .npz into")
    p.add_argument("--name", help="model name (default: the file's name)")
    p.set_defaults(func=_cli)
