"""Residual Add and channel Concat: PyTorch ResNet- and Inception-style blocks, exported to
ONNX, become cnnviz's `residual` and `concat` blocks with the same numbers (forward, loss,
every parameter gradient and the input gradient, float64 to 1e-10); cnnviz's blocks export
to ONNX and back; joins cnnviz cannot express are refused naming the node."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
nn = torch.nn

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from app.services.onnx_export import onnx_bytes  # noqa: E402
from app.services.onnx_import import OnnxImportError, convert  # noqa: E402
from cnncore import Network  # noqa: E402


class Basic(nn.Module):
    """ResNet's basic block: relu(conv2(relu(conv1(x))) + shortcut(x))."""

    def __init__(self, cin, cout, stride, bn=False):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1)
        self.c2 = nn.Conv2d(cout, cout, (3, 1), 1, (1, 0))
        self.bn = nn.BatchNorm2d(cout) if bn else nn.Identity()
        self.proj = nn.Conv2d(cin, cout, 1, stride) if (stride != 1 or cin != cout) else None

    def forward(self, x):
        y = self.bn(self.c2(torch.tanh(self.c1(x))))
        return torch.relu(y + (self.proj(x) if self.proj is not None else x))


class Inception(nn.Module):
    def __init__(self, cin, nested=False):
        super().__init__()
        self.a = nn.Conv2d(cin, 2, 1)
        self.b1 = nn.Conv2d(cin, 3, 3, padding=1)
        self.b2 = Basic(3, 3, 1) if nested else nn.Conv2d(3, 2, (1, 3), padding=(0, 1))

    def forward(self, x):
        return torch.cat([torch.relu(self.a(x)), self.b2(torch.sigmoid(self.b1(x)))], 1)


def make(nested=False, bn=False):
    return nn.Sequential(
        nn.Conv2d(1, 3, 3),
        nn.ReLU(),
        Basic(3, 3, 1, bn),
        Basic(3, 4, 2, bn),
        Inception(4, nested),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear((2 + (3 if nested else 2)) * 2 * 2, 3),
        nn.LogSoftmax(1),
    )


def export(model, x, dynamo):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            return torch.onnx.export(model, (x,), dynamo=True, verbose=False).model_proto
        f = io.BytesIO()
        torch.onnx.export(model, (x,), f, dynamo=False)
        return onnx.load_from_string(f.getvalue())


def cnnviz_order(spec_layers, grads):
    """The (w, b) gradients in execution order: a block's F, then its projection; branches in
    order."""
    out = []

    def walk(spec, g, prefix=""):
        t = spec["type"]
        if t == "residual":
            for j, inner in enumerate(spec["layers"]):
                walk(inner, g, f"{prefix}layers.{j}.")
            if spec.get("projection"):
                walk(spec["projection"], g, f"{prefix}projection.")
        elif t == "concat":
            for b, chain in enumerate(spec["branches"]):
                for j, inner in enumerate(chain):
                    walk(inner, g, f"{prefix}branches.{b}.{j}.")
        elif t in ("conv2d", "dense"):
            out.append((g[prefix + "w"], g[prefix + "b"]))

    for spec, g in zip(spec_layers, grads, strict=True):
        walk(spec, g)
    return out


@pytest.mark.parametrize(("dynamo", "nested"), [(False, False), (True, False), (False, True)])
def test_blocks_round_trip_against_autograd(dynamo, nested):
    torch.manual_seed(3)
    model = make(nested).double().eval()
    x = torch.randn(1, 1, 10, 10, dtype=torch.float64)
    imported = convert(export(model, x, dynamo).SerializeToString())
    types = [layer["type"] for layer in imported.spec["layers"]]
    assert types == ["conv2d", "residual", "residual", "concat", "maxpool2d", "flatten", "dense"]
    assert imported.spec["layers"][1]["projection"] is None
    assert imported.spec["layers"][2]["projection"]["kernel_size"] == [1, 1]
    assert imported.spec["layers"][1]["activation"] == "relu"
    if nested:
        assert imported.spec["layers"][3]["branches"][1][1]["type"] == "residual"
    net = Network.from_spec(imported.spec, imported.params)

    # PyTorch: loss -log p[target], gradients of every weight in execution order
    order = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: order.append(m))
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    xd = x.clone().requires_grad_(True)
    out = model(xd)
    for h in hooks:
        h.remove()
    loss = -out[0, 2]
    loss.backward()

    tr = net.trace(x.numpy()[0], 2)
    np.testing.assert_allclose(tr.output, out.exp().detach().numpy()[0], atol=1e-12, rtol=0)
    assert abs(tr.loss - float(loss.detach())) < 1e-10
    np.testing.assert_allclose(tr.records[0].dC_da_prev[0], xd.grad.numpy()[0], atol=1e-10)
    _, grads = net.loss_and_grads(x.numpy(), np.array([2]))
    ours = cnnviz_order(imported.spec["layers"], grads)
    assert len(ours) == len(order)
    for (gw, gb), m in zip(ours, order, strict=True):
        np.testing.assert_allclose(gw, m.weight.grad.numpy(), atol=1e-10, rtol=0)
        np.testing.assert_allclose(gb, m.bias.grad.numpy(), atol=1e-10, rtol=0)


def test_batchnorm_inside_a_residual_block():
    torch.manual_seed(4)
    model = make(bn=True)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
    model = model.double().eval()
    x = torch.randn(1, 1, 10, 10, dtype=torch.float64)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), f, dynamo=False, do_constant_folding=False)
    imported = convert(f.getvalue())
    net = Network.from_spec(imported.spec, imported.params)
    want = model(x).exp().detach().numpy()
    np.testing.assert_allclose(net.predict(x.numpy()), want, atol=1e-12, rtol=0)


def test_cnnviz_blocks_export_and_import_back():
    ort = pytest.importorskip("onnxruntime")
    spec = {
        "input_shape": [2, 8, 8],
        "layers": [
            {
                "type": "residual",
                "layers": [
                    {"type": "conv2d", "out_channels": 3, "kernel_size": 3, "stride": 2,
                     "padding": 1, "activation": "relu"},
                    {"type": "conv2d", "out_channels": 3, "kernel_size": 3, "padding": 1},
                ],
                "projection": {"type": "conv2d", "kernel_size": 1, "stride": 2},
                "activation": "tanh",
            },
            {
                "type": "concat",
                "branches": [
                    [{"type": "conv2d", "out_channels": 1, "kernel_size": 1}],
                    [{"type": "maxpool2d", "kernel_size": 3, "stride": 1, "padding": 1},
                     {"type": "conv2d", "out_channels": 2, "kernel_size": 1,
                      "activation": "sigmoid"}],
                ],
            },
            {"type": "flatten"},
            {"type": "dense", "units": 4, "activation": "softmax"},
        ],
    }  # fmt: skip
    net = Network.from_spec(spec, seed=5)
    blob = onnx_bytes(net, "blocks", "float32")
    onnx.checker.check_model(onnx.load_from_string(blob), full_check=True)
    x = np.random.default_rng(0).normal(size=(3, 2, 8, 8)).astype(np.float32)
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"input": x})
    np.testing.assert_allclose(got, net.predict(x.astype(np.float64)), atol=1e-6)
    back = convert(onnx_bytes(net, "blocks", "float64"))
    assert back.spec["layers"] == net.spec["layers"]
    again = Network.from_spec(back.spec, back.params)
    np.testing.assert_array_equal(
        again.predict(x.astype(np.float64)), net.predict(x.astype(np.float64))
    )


# ------------------------------------------------------------------ joins cnnviz refuses
F = TensorProto.FLOAT


def graph(nodes, inits, out_shape=None):
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", F, [1, 2, 6, 6])],
        [helper.make_tensor_value_info("y", F, out_shape)],
        initializer=inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


def w(name, shape):
    return numpy_helper.from_array(np.ones(shape, np.float32), name)


def conv(i, o, name, pads=1):
    return helper.make_node("Conv", [i, "w3"], [o], name=name, kernel_shape=[3, 3], pads=[pads] * 4)


def refused(data, *words):
    with pytest.raises(OnnxImportError) as exc:
        convert(data)
    for word in words:
        assert word in str(exc.value), (word, str(exc.value))


def test_add_of_two_deep_branches():
    nodes = [
        conv("x", "a1", "a1"), conv("a1", "a2", "a2"),
        conv("x", "b1", "b1"), conv("b1", "b2", "b2"),
        helper.make_node("Add", ["a2", "b2"], ["y"], name="join"),
    ]  # fmt: skip
    refused(graph(nodes, [w("w3", (2, 2, 3, 3))]), "Add at node 'join'", "projection")


def test_x_plus_x():
    nodes = [helper.make_node("Add", ["x", "x"], ["y"], name="double")]
    refused(graph(nodes, []), "double")


def test_concat_along_height():
    nodes = [
        conv("x", "a", "a"), conv("x", "b", "b"),
        helper.make_node("Concat", ["a", "b"], ["y"], name="cat", axis=2),
    ]  # fmt: skip
    refused(graph(nodes, [w("w3", (2, 2, 3, 3))]), "Concat at node 'cat'", "axis=2")


def test_concat_with_the_input_itself():
    nodes = [conv("x", "a", "a"), helper.make_node("Concat", ["x", "a"], ["y"], name="cat", axis=1)]
    refused(graph(nodes, [w("w3", (2, 2, 3, 3))]), "Concat at node 'cat'", "needs a layer")


def test_concat_of_different_sizes():
    nodes = [
        conv("x", "a", "a", pads=1), conv("x", "b", "b", pads=0),
        helper.make_node("Concat", ["a", "b"], ["y"], name="cat", axis=1),
    ]  # fmt: skip
    refused(graph(nodes, [w("w3", (2, 2, 3, 3))]), "Concat at node 'cat'", "shapes don't agree")


def test_branches_joined_by_another_op():
    nodes = [
        conv("x", "a", "a"), conv("x", "b", "b"),
        helper.make_node("Mul", ["a", "b"], ["y"], name="gate"),
    ]  # fmt: skip
    refused(graph(nodes, [w("w3", (2, 2, 3, 3))]), "Mul at node 'gate'", "Add", "Concat")


def test_upload_and_trace_a_resnet_block():
    """Through the API: POST /api/models, then POST /api/trace with the answer."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    torch.manual_seed(8)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3), Basic(3, 4, 2), nn.Flatten(), nn.Linear(4 * 4 * 4, 3), nn.Softmax(1)
    ).eval()
    x = torch.randn(1, 1, 10, 10)
    c = TestClient(create_app(Settings()))
    r = c.post(
        "/api/models", files={"file": ("resnet.onnx", export(model, x, False).SerializeToString())}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["network"]["layers"][1]["type"] == "residual"
    t = c.post(
        "/api/trace",
        json={
            "network": body["network"],
            "params": body["params"],
            "input": x.numpy()[0].tolist(),
            "target": 1,
        },
    )
    assert t.status_code == 200, t.text
    want = model.double()(x.double()).detach().numpy()[0]
    np.testing.assert_allclose(t.json()["output"], want, atol=1e-12)


def test_too_many_branch_points():
    """100 residual-style forks in a row: refused at the 65th, quickly."""
    import time

    nodes, cur = [], "x"
    for k in range(100):
        nodes += [conv(cur, f"c{k}", f"c{k}"), helper.make_node("Add", [f"c{k}", cur], [f"a{k}"])]
        cur = f"a{k}"
    nodes.append(helper.make_node("Identity", [cur], ["y"]))
    t0 = time.perf_counter()
    with pytest.raises(OnnxImportError) as exc:
        convert(graph(nodes, [w("w3", (2, 2, 3, 3))]))
    assert exc.value.status == 413 and "branches more than 64" in str(exc.value)
    assert time.perf_counter() - t0 < 5
