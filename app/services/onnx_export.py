"""A cnnviz network -> an ONNX model (checked with onnx.checker) that computes the same numbers.

Each layer becomes the standard operators PyTorch exports for it: conv2d -> Conv (+ Relu,
Sigmoid or Tanh), maxpool2d -> MaxPool, avgpool2d -> AveragePool (count_include_pad=1, the
engine's and PyTorch's default), flatten -> Flatten (axis 1), dense -> Gemm (transB=1, the
weight kept in PyTorch's (units, in_features) layout), softmax -> Softmax (axis 1). The input
is `input` [batch, C, H, W] with a symbolic batch axis; the output is `output`. A residual
block becomes its layers, its projection (a Conv) or the input itself, an Add and the block's
activation; a concat block its branches and a Concat along axis 1.
"""

from __future__ import annotations

import numpy as np

from cnncore import Network

OPSET = 17
ACT_OPS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax"}


def _sub(p: dict, prefix: str) -> dict:
    """A block's flat dotted params ("layers.0.w") -> one inner layer's ({"w": ...})."""
    return {k[len(prefix) :]: v for k, v in p.items() if k.startswith(prefix)}


def to_onnx(net: Network, name: str = "cnnviz", dtype: str = "float32", doc: str = ""):
    """The network as an onnx.ModelProto (weights in `dtype`: float32 or float64)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    np_dtype = np.dtype(dtype)
    elem = TensorProto.FLOAT if dtype == "float32" else TensorProto.DOUBLE
    nodes, inits = [], []

    def param(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value).astype(np_dtype), name))
        return name

    def emit(spec: dict, p: dict, cur: str, tag: str) -> str:
        """One layer (or block) of `spec` with params `p` reading `cur`; returns its output."""
        t, z = spec["type"], f"{tag}.z"
        if t == "conv2d":
            ph, pw = spec["padding"]
            nodes.append(
                helper.make_node(
                    "Conv", [cur, param(f"{tag}.w", p["w"]), param(f"{tag}.b", p["b"])], [z],
                    name=f"{tag}.conv", kernel_shape=spec["kernel_size"],
                    strides=spec["stride"], pads=[ph, pw, ph, pw], dilations=[1, 1], group=1,
                )
            )  # fmt: skip
        elif t in ("maxpool2d", "avgpool2d"):
            ph, pw = spec["padding"]
            extra = {"count_include_pad": 1} if t == "avgpool2d" else {}
            nodes.append(
                helper.make_node(
                    "MaxPool" if t == "maxpool2d" else "AveragePool", [cur], [z],
                    name=f"{tag}.pool", kernel_shape=spec["kernel_size"],
                    strides=spec["stride"], pads=[ph, pw, ph, pw], ceil_mode=0, **extra,
                )
            )  # fmt: skip
        elif t == "flatten":
            nodes.append(helper.make_node("Flatten", [cur], [z], name=f"{tag}.flatten", axis=1))
        elif t == "dense":
            w, b = param(f"{tag}.w", p["w"]), param(f"{tag}.b", p["b"])
            nodes.append(helper.make_node("Gemm", [cur, w, b], [z], name=f"{tag}.dense", transB=1))
        elif t == "residual":
            f = cur
            for j, inner in enumerate(spec["layers"]):
                f = emit(inner, _sub(p, f"layers.{j}."), f, f"{tag}.F{j}")
            skip = cur
            if spec.get("projection"):
                skip = emit(spec["projection"], _sub(p, "projection."), cur, f"{tag}.projection")
            nodes.append(helper.make_node("Add", [f, skip], [z], name=f"{tag}.add"))
        elif t == "concat":
            ends = []
            for b, chain in enumerate(spec["branches"]):
                v = cur
                for j, inner in enumerate(chain):
                    v = emit(inner, _sub(p, f"branches.{b}.{j}."), v, f"{tag}.branch{b}.{j}")
                ends.append(v)
            nodes.append(helper.make_node("Concat", ends, [z], name=f"{tag}.concat", axis=1))
        else:
            raise ValueError(f"{tag}: type {t!r} has no ONNX export")
        act = spec.get("activation", "identity")
        if act == "identity":
            return z
        kw = {"axis": 1} if act == "softmax" else {}
        nodes.append(helper.make_node(ACT_OPS[act], [z], [f"{tag}.a"], name=f"{tag}.{act}", **kw))
        return f"{tag}.a"

    cur = "input"
    for i, (spec, layer) in enumerate(zip(net.spec["layers"], net.layers, strict=True)):
        cur = emit(spec, layer.params, cur, f"layer{i}")
    # the last node writes the graph's output
    last = nodes[-1]
    last.output[0] = "output"
    c, h, w_ = net.spec["input_shape"]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input", elem, ["batch", c, h, w_])],
        [helper.make_tensor_value_info("output", elem, ["batch", *net.spec["output_shape"]])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="cnnviz",
        doc_string=doc,
    )
    model.ir_version = 8  # onnxruntime reads IR 8 and up; opset 17 needs IR >= 8
    onnx.checker.check_model(model, full_check=True)
    return model


def onnx_bytes(net: Network, name: str = "cnnviz", dtype: str = "float32", doc: str = "") -> bytes:
    return to_onnx(net, name, dtype, doc).SerializeToString()


def model_onnx(settings, name: str) -> bytes:
    """GET /api/models/{name}/onnx: a bundled model as ONNX bytes (float32 weights)."""
    from .catalog import load_model

    net, meta = load_model(settings, name, ("path", "name"))
    return onnx_bytes(net, name, "float32", str(meta.get("description") or ""))


# ---------------------------------------------------------------------------- the command line
def load_source(source: str, params_path: str | None = None):
    """A network for `cnnviz export`: a bundled model's name, `<base>.json` + `<base>.npz`
    (the bundled format), or one JSON with `network` (or `spec`) and `params` (what Train
    mode exports). `params_path` (.npz or .json) overrides the parameters."""
    import json
    from pathlib import Path

    from cnncore import models

    path = Path(source)
    if not path.suffix and not path.exists() and source in models.available():
        net, meta = models.load(source)
        return net.copy(), source, str(meta.get("description") or "")
    if path.suffix == ".npz":
        path = path.with_suffix(".json")
    if not path.is_file():
        raise ValueError(f"{source}: no such model name or file")
    doc = json.loads(path.read_text())
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a JSON object")
    spec = doc.get("network") or doc.get("spec")
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: has no 'network' or 'spec'")
    net = Network.from_spec(spec)
    params = doc.get("params")
    npz = Path(params_path) if params_path else path.with_suffix(".npz")
    if params_path and npz.suffix == ".json":
        params = json.loads(npz.read_text())
        params = params.get("params") if isinstance(params, dict) else params
    elif params_path or (params is None and npz.is_file()):
        with np.load(npz, allow_pickle=False) as z:
            params = [
                {k: z[f"{i}.{k}"].astype(np.float64) for k in layer.params}
                for i, layer in enumerate(net.layers)
            ]
    if params is None:
        raise ValueError(f"{path}: no parameters (no 'params' and no {npz.name})")
    net.load_params(params)
    return net, str(doc.get("name") or path.stem), str(doc.get("description") or "")


def _cli(args) -> int:
    import sys
    from pathlib import Path

    from cnncore import SpecError

    try:
        net, name, doc = load_source(args.source, args.params)
        data = onnx_bytes(net, name, args.dtype, doc)
    except (ValueError, KeyError, OSError, SpecError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out or f"{name}.onnx")
    out.write_bytes(data)
    print(
        f"{out}: {len(data):,} bytes, ONNX opset {OPSET}, {args.dtype} weights (onnx.checker: ok)"
    )
    return 0


def add_arguments(sub) -> None:
    """`cnnviz export`."""
    p = sub.add_parser(
        "export",
        help="write a network as an .onnx file",
        description="Export a bundled model (by name), a model's <base>.json + .npz, or a JSON "
        "with 'network' and 'params' (as Train mode exports) to ONNX, checked by onnx.checker.",
    )
    p.add_argument("source", help="model name (e.g. digits), model .json, or network+params .json")
    p.add_argument("--params", help="parameters to use instead: a .npz (keys '<layer>.w') or .json")
    p.add_argument("--out", help="the .onnx file to write (default: <name>.onnx)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.set_defaults(func=_cli)
