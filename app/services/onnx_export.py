"""A cnnviz network -> an ONNX model (checked with onnx.checker) that computes the same numbers.

Each layer becomes the standard operators PyTorch exports for it: conv2d -> Conv (+ Relu,
Sigmoid or Tanh), maxpool2d -> MaxPool, avgpool2d -> AveragePool (count_include_pad=1, the
engine's and PyTorch's default), flatten -> Flatten (axis 1), dense -> Gemm (transB=1, the
weight kept in PyTorch's (units, in_features) layout), softmax -> Softmax (axis 1). The input
is `input` [batch, C, H, W] with a symbolic batch axis; the output is `output`.
"""

from __future__ import annotations

import numpy as np

from cnncore import Network

OPSET = 17
ACT_OPS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax"}


def to_onnx(net: Network, name: str = "cnnviz", dtype: str = "float32", doc: str = ""):
    """The network as an onnx.ModelProto (weights in `dtype`: float32 or float64)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    np_dtype = np.dtype(dtype)
    elem = TensorProto.FLOAT if dtype == "float32" else TensorProto.DOUBLE
    nodes, inits = [], []
    cur = "input"
    for i, (spec, layer) in enumerate(zip(net.spec["layers"], net.layers, strict=True)):
        t, z = spec["type"], f"layer{i}.z"
        if t == "conv2d":
            w, b = f"layer{i}.w", f"layer{i}.b"
            inits += [
                numpy_helper.from_array(layer.params["w"].astype(np_dtype), w),
                numpy_helper.from_array(layer.params["b"].astype(np_dtype), b),
            ]
            ph, pw = spec["padding"]
            nodes.append(
                helper.make_node(
                    "Conv", [cur, w, b], [z], name=f"layer{i}.conv",
                    kernel_shape=spec["kernel_size"], strides=spec["stride"],
                    pads=[ph, pw, ph, pw], dilations=[1, 1], group=1,
                )
            )  # fmt: skip
        elif t in ("maxpool2d", "avgpool2d"):
            ph, pw = spec["padding"]
            extra = {"count_include_pad": 1} if t == "avgpool2d" else {}
            nodes.append(
                helper.make_node(
                    "MaxPool" if t == "maxpool2d" else "AveragePool", [cur], [z],
                    name=f"layer{i}.pool", kernel_shape=spec["kernel_size"],
                    strides=spec["stride"], pads=[ph, pw, ph, pw], ceil_mode=0, **extra,
                )
            )  # fmt: skip
        elif t == "flatten":
            nodes.append(helper.make_node("Flatten", [cur], [z], name=f"layer{i}.flatten", axis=1))
        elif t == "dense":
            w, b = f"layer{i}.w", f"layer{i}.b"
            inits += [
                numpy_helper.from_array(layer.params["w"].astype(np_dtype), w),
                numpy_helper.from_array(layer.params["b"].astype(np_dtype), b),
            ]
            nodes.append(
                helper.make_node("Gemm", [cur, w, b], [z], name=f"layer{i}.dense", transB=1)
            )
        else:
            raise ValueError(f"layer {i}: type {t!r} has no ONNX export")
        cur = z
        act = spec.get("activation", "identity")
        if act != "identity":
            a = f"layer{i}.a"
            kw = {"axis": 1} if act == "softmax" else {}
            nodes.append(helper.make_node(ACT_OPS[act], [cur], [a], name=f"layer{i}.{act}", **kw))
            cur = a
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
