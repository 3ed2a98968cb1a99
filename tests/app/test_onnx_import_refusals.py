"""POST /api/models: what cannot be imported is a clear 4xx naming the node, op type and why.

Hostile files (not protobuf, truncated, huge declared tensors, external data, cycles, a
million nodes, shapes that disagree) are refused quickly without a 5xx; so is every op the
engine does not have.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from app.main import create_app  # noqa: E402
from app.services.onnx_import import MAX_NODES, OnnxImportError, convert  # noqa: E402
from app.settings import Settings  # noqa: E402
from tests.app.api_helpers import assert_error  # noqa: E402

F = TensorProto.FLOAT


@pytest.fixture(scope="module")
def client():
    from fastapi.testclient import TestClient

    return TestClient(create_app(Settings()))


def raw_tensor(name, dims, raw: bytes):
    """A float TensorProto whose declared dims need not match its bytes (as a hostile file)."""
    t = TensorProto()
    t.name, t.data_type, t.raw_data = name, F, raw
    t.dims.extend(dims)
    return t


def init(name, arr, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(arr, dtype=dtype), name)


def model_bytes(nodes, inits=(), inputs=None, outputs=None, opset=17, in_shape=(1, 1, 6, 6)):
    inputs = inputs or [helper.make_tensor_value_info("x", F, list(in_shape))]
    outputs = outputs or [helper.make_tensor_value_info("y", F, None)]
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m.SerializeToString()


def conv_then(op_nodes, out="y", **conv_attrs):
    """x (1×1×6×6) -> Conv 2@3×3 -> op_nodes... ; weights as initializers."""
    rng = np.random.default_rng(0)
    attrs = {"kernel_shape": [3, 3], **conv_attrs}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv1", **attrs)]
    inits = [init("w", rng.normal(size=(2, 1, 3, 3))), init("b", [0.1, -0.2])]
    return nodes + op_nodes, inits


def refused(client, data: bytes, status: int, *words: str) -> str:
    r = client.post("/api/models", files={"file": ("m.onnx", data)})
    item = assert_error(r, status, "body", "file")
    for w in words:
        assert w in item["msg"], (w, item["msg"])
    return item["msg"]


def valid_small() -> bytes:
    nodes, inits = conv_then(
        [
            helper.make_node("Relu", ["c"], ["r"], name="relu1"),
            helper.make_node("Flatten", ["r"], ["f"], name="flat", axis=1),
            helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1),
        ]
    )
    rng = np.random.default_rng(1)
    inits += [init("fw", rng.normal(size=(3, 32))), init("fb", [0, 1, 2])]
    return model_bytes(nodes, inits)


def test_small_valid_model_imports(client):
    r = client.post("/api/models", files={"file": ("small net.onnx", valid_small())})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "small-net"
    assert [layer["type"] for layer in body["network"]["layers"]] == ["conv2d", "flatten", "dense"]
    assert body["network"]["layers"][0]["activation"] == "relu"
    assert body["network"]["loss"] == "mse"
    assert [n["op_type"] for n in body["report"]["nodes"]] == ["Conv", "Relu", "Flatten", "Gemm"]
    # the page traces it with POST /api/trace {network, params}
    t = client.post(
        "/api/trace",
        json={
            "network": body["network"],
            "params": body["params"],
            "input": np.zeros((6, 6)).tolist(),
            "target": [0.0, 0.0, 0.0],
        },
    )
    assert t.status_code == 200, t.text
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(valid_small(), providers=["CPUExecutionProvider"])
    (want,) = sess.run(None, {"x": np.zeros((1, 1, 6, 6), np.float32)})
    np.testing.assert_allclose(t.json()["output"], want[0], atol=1e-6)


# ------------------------------------------------------------------ hostile files
def test_not_protobuf(client):
    refused(client, b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, 422, "not a valid ONNX model")
    refused(client, b"hello, this is text", 422, "ONNX")


def test_empty_file(client):
    refused(client, b"", 422, "empty")


def test_truncated(client):
    data = valid_small()
    for cut in (len(data) // 3, len(data) // 2, len(data) - 1):
        refused(client, data[:cut], 422, "ONNX model")


def test_random_mutations_never_500(client):
    """Flipped bytes and cuts of a valid file: always a 200 or a 4xx, never a 5xx."""
    data = bytearray(valid_small())
    rng = np.random.default_rng(0)
    for _ in range(150):
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 6))):
            b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
        if rng.random() < 0.3:
            b = b[: int(rng.integers(1, len(b)))]
        r = client.post("/api/models", files={"file": ("m.onnx", bytes(b))})
        assert r.status_code == 200 or 400 <= r.status_code < 500, (r.status_code, r.text)


def test_huge_declared_tensor(client):
    """dims declare 10^12 values: refused before any allocation (no data behind it)."""
    w = raw_tensor("w", [10**6, 10**6, 1, 1], b"")
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv1", kernel_shape=[1, 1])]
    t0 = time.perf_counter()
    refused(client, model_bytes(nodes, [w]), 413, "conv1", "declares", "cap")
    assert time.perf_counter() - t0 < 5


def test_declared_shape_disagrees_with_bytes(client):
    w = raw_tensor("w", [4, 1, 3, 3], b"\x00" * 16)
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv1", kernel_shape=[3, 3])]
    refused(client, model_bytes(nodes, [w]), 422, "conv1", "holds 16 bytes")


def test_external_data_is_never_read(client, tmp_path):
    secret = tmp_path / "weights.bin"
    secret.write_bytes(np.ones(18, np.float32).tobytes())
    w = raw_tensor("w", [2, 1, 3, 3], b"")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", str(secret)), ("offset", "0"), ("length", "72")):
        e = w.external_data.add()
        e.key, e.value = k, v
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv1", kernel_shape=[3, 3])]
    refused(client, model_bytes(nodes, [w]), 422, "external file", "never reads")


def test_cycle(client):
    nodes = [
        helper.make_node("Relu", ["x2"], ["a"], name="r1"),
        helper.make_node("Relu", ["a"], ["b"], name="r2"),
        helper.make_node("Add", ["x", "b"], ["x2"], name="add"),
        helper.make_node("Identity", ["b"], ["y"], name="out"),
    ]
    refused(client, model_bytes(nodes), 422, "cycle")


def test_million_nodes_refused_quickly(client):
    """10^6 minimal nodes (2 bytes each in the wire format, 2 MB): refused by the wire scan
    before protobuf builds them (which would take ~150 MB and a second)."""

    def varint(n):
        out = bytearray()
        while True:
            b, n = n & 0x7F, n >> 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)

    graph = b"\x0a\x00" * 1_000_000
    data = b"\x08\x08" + b"\x3a" + varint(len(graph)) + graph
    t0 = time.perf_counter()
    msg = refused(client, data, 413, "nodes")
    assert f"{MAX_NODES:,}" in msg
    assert time.perf_counter() - t0 < 2


def test_many_strings_refused(client):
    """A node with 10^6 empty input names (another way to make protobuf allocate)."""
    node = helper.make_node("Relu", ["x"] + [""] * 300_000, ["y"], name="r")
    refused(client, model_bytes([node]), 413, "messages and names")


def test_upload_over_the_cap(client):
    big = b"\x00" * (Settings().max_onnx_bytes + 10)
    r = client.post("/api/models", files={"file": ("m.onnx", big)})
    assert r.status_code == 413


def test_not_multipart_and_missing_field(client):
    r = client.post("/api/models", json={"file": "x"})
    assert_error(r, 415, "header", "content-type")
    r = client.post("/api/models", files={"other": ("m.onnx", b"123")})
    assert_error(r, 422, "body", "file")


# ------------------------------------------------------------------ graph structure
def test_two_inputs(client):
    inputs = [
        helper.make_tensor_value_info("x", F, [1, 1, 6, 6]),
        helper.make_tensor_value_info("x2", F, [1, 1, 6, 6]),
    ]
    nodes = [helper.make_node("Add", ["x", "x2"], ["y"], name="add")]
    refused(client, model_bytes(nodes, inputs=inputs), 422, "exactly one input")


def test_two_outputs(client):
    outputs = [helper.make_tensor_value_info(n, F, None) for n in ("y", "z")]
    nodes = [
        helper.make_node("Relu", ["x"], ["y"], name="r"),
        helper.make_node("Relu", ["x"], ["z"]),
    ]
    refused(client, model_bytes(nodes, outputs=outputs), 422, "exactly one output")


def test_input_not_nchw(client):
    inputs = [helper.make_tensor_value_info("x", F, [1, 36])]
    refused(
        client, model_bytes([helper.make_node("Relu", ["x"], ["y"])], inputs=inputs), 422, "NCHW"
    )


def test_dynamic_image_size(client):
    inputs = [helper.make_tensor_value_info("x", F, ["N", 1, "H", "W"])]
    nodes, inits = conv_then([helper.make_node("Identity", ["c"], ["y"])])
    refused(client, model_bytes(nodes, inits, inputs=inputs), 422, "fixed")


def test_opset_out_of_range(client):
    nodes, inits = conv_then([helper.make_node("Identity", ["c"], ["y"])])
    refused(client, model_bytes(nodes, inits, opset=9), 422, "opset 9", "11 to 23")


def test_custom_domain(client):
    node = helper.make_node("Foo", ["x"], ["y"], name="foo", domain="com.example")
    refused(client, model_bytes([node]), 422, "Foo at node 'foo'", "com.example")


def test_undefined_input(client):
    node = helper.make_node("Relu", ["nothing"], ["y"], name="r")
    refused(client, model_bytes([node]), 422, "'nothing'")


def test_value_produced_twice(client):
    nodes = [
        helper.make_node("Relu", ["x"], ["y"], name="a"),
        helper.make_node("Relu", ["x"], ["y"], name="b"),
    ]
    refused(client, model_bytes(nodes), 422, "produced twice")


def test_side_branch_not_on_path(client):
    nodes, inits = conv_then([helper.make_node("Identity", ["c"], ["y"], name="id")])
    nodes.append(helper.make_node("Relu", ["w"], ["junk"], name="stray"))
    refused(client, model_bytes(nodes, inits), 422, "Relu at node 'stray'", "not on the path")


# ------------------------------------------------------------------ unsupported ops
@pytest.mark.parametrize(
    ("node", "words"),
    [
        (
            helper.make_node("LeakyRelu", ["c"], ["y"], name="lrelu"),
            ("LeakyRelu at node 'lrelu'", "not supported"),
        ),
        (helper.make_node("Elu", ["c"], ["y"], name="elu"), ("Elu at node 'elu'", "not supported")),
        (
            helper.make_node("Pad", ["c", "pads"], ["y"], name="pad"),
            ("Pad at node 'pad'", "padding"),
        ),
        (
            helper.make_node("Shape", ["c"], ["y"], name="shape"),
            ("Shape at node 'shape'", "fixed input size"),
        ),
    ],
)
def test_unsupported_op(client, node, words):
    nodes, inits = conv_then([node])
    inits.append(numpy_helper.from_array(np.zeros(8, np.int64), "pads"))
    refused(client, model_bytes(nodes, inits), 422, *words)


def test_batchnorm_not_after_conv(client):
    nodes, inits = conv_then(
        [
            helper.make_node(
                "MaxPool", ["c"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]
            ),
            helper.make_node("BatchNormalization", ["p", "s", "bb", "m", "v"], ["y"], name="bn1"),
        ]
    )
    inits += [init(n, np.ones(2)) for n in ("s", "bb", "m", "v")]
    refused(client, model_bytes(nodes, inits), 422, "BatchNormalization at node 'bn1'", "fold")


def test_batchnorm_training_mode(client):
    node = helper.make_node(
        "BatchNormalization", ["c", "s", "bb", "m", "v"], ["y"], name="bn1", training_mode=1
    )
    nodes, inits = conv_then([node])
    inits += [init(n, np.ones(2)) for n in ("s", "bb", "m", "v")]
    refused(client, model_bytes(nodes, inits), 422, "bn1", "eval()")


def test_grouped_conv(client):
    inputs = [helper.make_tensor_value_info("x", F, [1, 2, 6, 6])]
    w = init("w", np.ones((2, 1, 3, 3)))
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="dw", kernel_shape=[3, 3], group=2)
    refused(client, model_bytes([node], [w], inputs=inputs), 422, "Conv at node 'dw'", "group")


def test_dilated_conv(client):
    nodes, inits = conv_then([helper.make_node("Identity", ["c"], ["y"])], dilations=[2, 2])
    refused(client, model_bytes(nodes, inits), 422, "Conv at node 'conv1'", "dilations")


def test_asymmetric_pads(client):
    nodes, inits = conv_then([helper.make_node("Identity", ["c"], ["y"])], pads=[1, 0, 0, 0])
    refused(client, model_bytes(nodes, inits), 422, "Conv at node 'conv1'", "symmetric")


def test_conv_1d(client):
    inputs = [helper.make_tensor_value_info("x", F, [1, 1, 6])]
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="c1d", kernel_shape=[3])
    refused(
        client, model_bytes([node], [init("w", np.ones((1, 1, 3)))], inputs=inputs), 422, "NCHW"
    )


def test_conv_weight_channels_disagree(client):
    w = init("w", np.ones((2, 3, 3, 3)))
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv1", kernel_shape=[3, 3])
    refused(client, model_bytes([node], [w]), 422, "Conv at node 'conv1'", "shapes don't agree")


def test_declared_output_shape_disagrees(client):
    nodes, inits = conv_then([helper.make_node("Identity", ["c"], ["y"], name="id")])
    outputs = [helper.make_tensor_value_info("y", F, [1, 2, 5, 5])]
    refused(client, model_bytes(nodes, inits, outputs=outputs), 422, "shapes don't agree")


def test_gemm_weight_disagrees(client):
    nodes, inits = conv_then(
        [
            helper.make_node("Flatten", ["c"], ["f"], name="flat"),
            helper.make_node("Gemm", ["f", "fw"], ["y"], name="fc", transB=1),
        ]
    )
    inits.append(init("fw", np.ones((3, 31))))
    refused(client, model_bytes(nodes, inits), 422, "Gemm at node 'fc'", "shapes don't agree")


def test_dense_before_flatten(client):
    nodes, inits = conv_then([helper.make_node("Gemm", ["c", "fw"], ["y"], name="fc", transB=1)])
    inits.append(init("fw", np.ones((3, 32))))
    refused(client, model_bytes(nodes, inits), 422, "Gemm at node 'fc'", "flat vector")


def test_residual_add(client):
    nodes, inits = conv_then(
        [
            helper.make_node("Relu", ["c"], ["r"], name="relu"),
            helper.make_node("Add", ["r", "c"], ["y"], name="skip"),
        ]
    )
    # F would be the Relu alone: an activation without a layer of its own
    refused(client, model_bytes(nodes, inits), 422, "Relu at node 'relu'", "activation")


def test_concat(client):
    nodes, inits = conv_then([helper.make_node("Concat", ["c", "c"], ["y"], name="cat", axis=1)])
    refused(client, model_bytes(nodes, inits), 422, "Concat")


def test_avgpool_excluding_padding(client):
    node = helper.make_node(
        "AveragePool",
        ["c"],
        ["y"],
        name="avg",
        kernel_shape=[3, 3],
        pads=[1, 1, 1, 1],
        count_include_pad=0,
    )
    nodes, inits = conv_then([node])
    refused(
        client, model_bytes(nodes, inits), 422, "AveragePool at node 'avg'", "count_include_pad"
    )


def test_ceil_mode_that_changes_the_size(client):
    node = helper.make_node(
        "MaxPool", ["c"], ["y"], name="mp", kernel_shape=[3, 3], strides=[3, 3], ceil_mode=1
    )
    nodes, inits = conv_then([node])
    refused(client, model_bytes(nodes, inits), 422, "MaxPool at node 'mp'", "ceil_mode")


def test_activation_without_a_layer(client):
    refused(
        client,
        model_bytes([helper.make_node("Relu", ["x"], ["y"], name="r0")]),
        422,
        "Relu at node 'r0'",
        "follows the input",
    )


def test_softmax_not_last(client):
    nodes, inits = conv_then(
        [
            helper.make_node("Flatten", ["c"], ["f"], name="flat"),
            helper.make_node("Gemm", ["f", "fw"], ["g"], name="fc", transB=1),
            helper.make_node("Softmax", ["g"], ["s"], name="sm", axis=1),
            helper.make_node("Relu", ["s"], ["y"], name="after"),
        ]
    )
    inits.append(init("fw", np.ones((3, 32))))
    refused(client, model_bytes(nodes, inits), 422, "Relu at node 'after'", "last")


def test_softmax_over_channels(client):
    node = helper.make_node("Softmax", ["c"], ["y"], name="sm", axis=1)
    nodes, inits = conv_then([node])
    refused(client, model_bytes(nodes, inits), 422, "Softmax at node 'sm'", "flat vector")


def test_reshape_not_to_a_vector(client):
    nodes, inits = conv_then([helper.make_node("Reshape", ["c", "shape"], ["y"], name="rs")])
    inits.append(numpy_helper.from_array(np.array([1, 2, 2, 8], np.int64), "shape"))
    refused(client, model_bytes(nodes, inits), 422, "Reshape at node 'rs'", "vector")


def test_weight_computed_in_graph(client):
    nodes = [
        helper.make_node("Relu", ["w0"], ["w"], name="wrelu"),
        helper.make_node("Conv", ["x", "w"], ["y"], name="conv1", kernel_shape=[3, 3]),
    ]
    refused(client, model_bytes(nodes, [init("w0", np.ones((2, 1, 3, 3)))]), 422, "conv1")


def test_nan_weights(client):
    w = init("w", np.full((2, 1, 3, 3), np.nan))
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv1", kernel_shape=[3, 3])
    refused(client, model_bytes([node], [w]), 422, "conv1", "NaN")


def test_too_large_for_the_page(client):
    """Importable, but over the custom-network caps the page's traces go through."""
    inputs = [helper.make_tensor_value_info("x", F, [1, 1, 100, 100])]
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv1", kernel_shape=[3, 3])
    refused(
        client, model_bytes([node], [init("w", np.ones((2, 1, 3, 3)))], inputs=inputs), 413, "cap"
    )


def test_error_class_carries_status():
    with pytest.raises(OnnxImportError) as exc:
        convert(b"\x00\x01\x02")
    assert exc.value.status == 422


@pytest.mark.parametrize("opset", [11, 12, 13, 18, 21, 23])
def test_opset_range_hand_built(opset):
    """A hand-built net at each end of the range: Softmax's default axis changed at 13
    (1 before, -1 after); both mean the class axis of a [batch, classes] vector."""
    ort = pytest.importorskip("onnxruntime")
    nodes, inits = conv_then(
        [
            helper.make_node("Relu", ["c"], ["r"], name="relu1"),
            helper.make_node("Flatten", ["r"], ["f"], name="flat"),
            helper.make_node("MatMul", ["f", "fw"], ["m"], name="mm"),
            helper.make_node("Add", ["m", "fb"], ["g"], name="bias"),
            helper.make_node("Softmax", ["g"], ["y"], name="sm"),
        ]
    )
    rng = np.random.default_rng(2)
    inits += [init("fw", rng.normal(size=(32, 3))), init("fb", [0.5, -1, 0])]
    data = model_bytes(nodes, inits, opset=opset)
    got = convert(data)
    assert got.report["opset"] == opset
    assert got.spec["layers"][-1]["activation"] == "softmax"
    from cnncore import Network

    net = Network.from_spec(got.spec, got.params)
    x = rng.normal(size=(1, 1, 6, 6)).astype(np.float32)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (want,) = sess.run(None, {"x": x})
    np.testing.assert_allclose(net.predict(x.astype(np.float64)), want, atol=1e-6)


def test_parts_protobuf_would_build_unchecked_are_refused(client):
    """Training info, local functions and sparse tensors are refused by the wire scan (their
    contents are not counted, so they are never handed to protobuf)."""
    m = onnx.load_from_string(valid_small())
    m.training_info.add().algorithm.node.extend(
        [helper.make_node("Relu", ["a"], ["b"]) for _ in range(10)]
    )
    refused(client, m.SerializeToString(), 422, "training_info")
    m = onnx.load_from_string(valid_small())
    f = m.functions.add()
    f.name, f.domain = "f", "local"
    refused(client, m.SerializeToString(), 422, "local functions")
