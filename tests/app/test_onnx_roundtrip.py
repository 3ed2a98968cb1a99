"""PyTorch -> torch.onnx.export -> cnnviz import: the trace equals PyTorch's forward and autograd.

Random supported architectures (strides, paddings, non-square kernels, max/avg pools, dense
layers, activations, BatchNormalization, Dropout, Softmax/LogSoftmax) are exported with the
legacy TorchScript exporter at opsets 11, 13, 17 and 20 and with PyTorch's default (dynamo)
exporter, imported, and traced by cnnviz. In float64 the output, the loss, every parameter
gradient and the input gradient agree with PyTorch to 1e-10; float32 exports are compared with
the float64 PyTorch model holding the same float32 weights (1e-10) and with the float32 model
at float32 precision.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from app.services.onnx_import import convert  # noqa: E402
from cnncore import Network  # noqa: E402
from tests.torch_oracle import torch_trace  # noqa: E402


class Flat(nn.Module):
    """x.view(x.size(0), -1), the other common way to flatten (exported as Reshape)."""

    def forward(self, x):
        return x.view(x.size(0), -1)


def random_net(rng: np.random.Generator, bn: bool = False):
    """A random PyTorch network the engine supports, its input shape and whether it has BN."""
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(9, 17)), int(rng.integers(9, 17))
    shape = [c, h, w]
    mods: list = []
    acts = [None, nn.ReLU, nn.Sigmoid, nn.Tanh]
    for _ in range(int(rng.integers(1, 3))):
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        ph, pw = int(rng.integers(0, kh)), int(rng.integers(0, kw))
        out_h, out_w = (shape[1] + 2 * ph - kh) // sh + 1, (shape[2] + 2 * pw - kw) // sw + 1
        if out_h < 2 or out_w < 2:
            continue
        oc = int(rng.integers(1, 5))
        mods.append(
            nn.Conv2d(shape[0], oc, (kh, kw), (sh, sw), (ph, pw), bias=bool(rng.random() < 0.8))
        )
        shape = [oc, out_h, out_w]
        if bn:
            b = nn.BatchNorm2d(oc)
            with torch.no_grad():
                b.running_mean.uniform_(-0.5, 0.5)
                b.running_var.uniform_(0.5, 2.0)
                b.weight.uniform_(0.5, 1.5)
                b.bias.uniform_(-0.3, 0.3)
            mods.append(b)
        act = acts[int(rng.integers(0, 4))]
        if act is not None:
            mods.append(act())
        if rng.random() < 0.7 and min(shape[1:]) >= 2:
            k = (
                int(rng.integers(1, min(3, shape[1]) + 1)),
                int(rng.integers(1, min(3, shape[2]) + 1)),
            )
            s = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
            p = (int(rng.integers(0, k[0] // 2 + 1)), int(rng.integers(0, k[1] // 2 + 1)))
            pool = nn.MaxPool2d(k, s, p) if rng.random() < 0.5 else nn.AvgPool2d(k, s, p)
            mods.append(pool)
            shape = [
                shape[0],
                (shape[1] + 2 * p[0] - k[0]) // s[0] + 1,
                (shape[2] + 2 * p[1] - k[1]) // s[1] + 1,
            ]
    mods.append(nn.Flatten() if rng.random() < 0.5 else Flat())
    n = shape[0] * shape[1] * shape[2]
    if rng.random() < 0.5:
        mods.append(nn.Dropout(0.3))
    for _ in range(int(rng.integers(0, 2))):
        units = int(rng.integers(2, 9))
        mods += [nn.Linear(n, units, bias=bool(rng.random() < 0.8))]
        act = acts[int(rng.integers(1, 4))]
        mods.append(act())
        n = units
    mods.append(nn.Linear(n, int(rng.integers(2, 6))))
    head = ["softmax", "log_softmax", None][int(rng.integers(0, 3))]
    if head == "softmax":
        mods.append(nn.Softmax(dim=1))
    elif head == "log_softmax":
        mods.append(nn.LogSoftmax(dim=1))
    return nn.Sequential(*mods).eval(), [c, h, w], head


def export(model, x, dynamo: bool, opset: int | None = None) -> bytes:
    f = io.BytesIO()
    kw = {} if opset is None else {"opset_version": opset}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            prog = torch.onnx.export(model, (x,), dynamo=True, verbose=False, **kw)
            return prog.model_proto.SerializeToString()
        torch.onnx.export(model, (x,), f, dynamo=False, **kw)
    return f.getvalue()


def check_against_torch(model, head, data: bytes, x: torch.Tensor, tol: float, has_bn: bool):
    """Import `data`, trace x, compare with the float64 `model` (same weights) in PyTorch."""
    imported = convert(data)
    net = Network.from_spec(imported.spec, imported.params)
    model = model.double()
    xd = x.double().clone().requires_grad_(True)
    out = model(xd)
    probs = out.exp() if head == "log_softmax" else out
    k = out.shape[1]
    target = 1 % k
    if head is None:
        y = torch.zeros_like(out)
        y[0, target] = 1.0
        loss = 0.5 * ((out - y) ** 2).sum()
        assert imported.spec["loss"] == "mse"
        tr = net.trace(xd.detach().numpy()[0], y.detach().numpy()[0])
    else:
        loss = -torch.log(probs[0, target])
        assert imported.spec["loss"] == "cross_entropy"
        tr = net.trace(xd.detach().numpy()[0], target)
    loss.backward()
    np.testing.assert_allclose(tr.output, probs.detach().numpy()[0], rtol=0, atol=tol)
    lv = float(loss.detach())
    assert abs(tr.loss - lv) <= tol * max(1.0, abs(lv))
    np.testing.assert_allclose(tr.records[0].dC_da_prev[0], xd.grad.numpy()[0], rtol=0, atol=tol)
    if not has_bn:  # with BN folded, cnnviz's weights are the folded ones
        with_params = [m for m in model if isinstance(m, nn.Conv2d | nn.Linear)]
        cn_layers = [i for i, layer in enumerate(net.layers) if layer.params]
        assert len(with_params) == len(cn_layers)
        for m, i in zip(with_params, cn_layers, strict=True):
            np.testing.assert_allclose(tr.records[i].dC_dw, m.weight.grad.numpy(), atol=tol, rtol=0)
            if m.bias is not None:
                np.testing.assert_allclose(
                    tr.records[i].dC_db, m.bias.grad.numpy(), atol=tol, rtol=0
                )
    # every intermediate tensor against the same network in PyTorch (the engine's oracle)
    y1 = tr.target
    t_loss, t_layers = torch_trace(net, xd.detach().numpy()[0], y1)
    assert abs(t_loss - tr.loss) <= 1e-10 * max(1.0, abs(t_loss))
    for rec, ref in zip(tr.records, t_layers, strict=True):
        for key in ("z", "a", "dC_dz"):
            np.testing.assert_allclose(getattr(rec, key)[0], ref[key], atol=1e-10, rtol=0)
    return imported


CASES = [(seed, False, op) for seed, op in zip(range(12), [11, 13, 17, 20] * 3, strict=True)]


@pytest.mark.parametrize(("seed", "dynamo", "opset"), CASES)
def test_float64_legacy_exporter_round_trip(seed, dynamo, opset):
    torch.manual_seed(seed)
    model, shape, head = random_net(np.random.default_rng(seed))
    model = model.double()
    x = torch.randn(1, *shape, dtype=torch.float64)
    data = export(model, x, dynamo=False, opset=opset)
    imported = check_against_torch(model, head, data, x, 1e-10, has_bn=False)
    assert imported.report["opset"] == opset


@pytest.mark.parametrize("seed", [100, 101, 102, 103])
def test_float64_default_exporter_round_trip(seed):
    """torch.onnx.export's default (the dynamo exporter, opset 20 with torch 2.13)."""
    torch.manual_seed(seed)
    model, shape, head = random_net(np.random.default_rng(seed))
    model = model.double()
    x = torch.randn(1, *shape, dtype=torch.float64)
    data = export(model, x, dynamo=True)
    check_against_torch(model, head, data, x, 1e-10, has_bn=False)


@pytest.mark.parametrize(("seed", "dynamo"), [(200, False), (201, False), (202, True)])
def test_batchnorm_is_folded(seed, dynamo):
    """BN after each conv (eval mode): exported folded or not, the numbers agree."""
    torch.manual_seed(seed)
    model, shape, head = random_net(np.random.default_rng(seed), bn=True)
    model = model.double()
    x = torch.randn(1, *shape, dtype=torch.float64)
    data = export(model, x, dynamo=dynamo)
    check_against_torch(model, head, data, x, 1e-10, has_bn=True)


def test_unfolded_batchnorm_node_is_folded_by_cnnviz():
    """do_constant_folding=False keeps BatchNormalization in the graph; cnnviz folds it."""
    torch.manual_seed(5)
    model, shape, head = random_net(np.random.default_rng(5), bn=True)
    model = model.double()
    x = torch.randn(1, *shape, dtype=torch.float64)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), f, dynamo=False, do_constant_folding=False)
    imported = check_against_torch(model, head, f.getvalue(), x, 1e-10, has_bn=True)
    ops = [n["op_type"] for n in imported.report["nodes"]]
    assert "BatchNormalization" in ops
    assert any("folded" in note for note in imported.report["notes"])


@pytest.mark.parametrize(("seed", "dynamo"), [(300, False), (301, True), (302, False)])
def test_float32_export(seed, dynamo):
    """float32 weights: exact in float64 against the same weights; float32 at its precision."""
    torch.manual_seed(seed)
    model, shape, head = random_net(np.random.default_rng(seed))
    x = torch.randn(1, *shape)
    out32 = model(x).detach().numpy()[0]
    data = export(model, x, dynamo=dynamo)
    imported = convert(data)
    for p in imported.params:
        for v in p.values():
            assert v.dtype == np.float64
    net = Network.from_spec(imported.spec, imported.params)
    probs = net.predict(x.double().numpy())[0]
    expect = np.exp(out32) if head == "log_softmax" else out32
    np.testing.assert_allclose(probs, expect, atol=2e-5, rtol=1e-4)
    import copy

    check_against_torch(copy.deepcopy(model), head, data, x, 1e-10, has_bn=False)


def test_relu_after_max_pool_is_moved_before_it():
    """F.relu(F.max_pool2d(conv(x), 2)), as in PyTorch's MNIST example: relu and max commute."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 3, 3)
            self.fc = nn.Linear(3 * 4 * 4, 4)

        def forward(self, x):
            x = torch.relu(torch.max_pool2d(self.conv(x), 2))
            return torch.log_softmax(self.fc(torch.flatten(x, 1)), dim=1)

    torch.manual_seed(0)
    model = Net().double().eval()
    x = torch.randn(1, 1, 10, 10, dtype=torch.float64)
    data = export(model, x, dynamo=False)
    imported = convert(data)
    assert imported.spec["layers"][0]["activation"] == "relu"
    assert any("commute" in n for n in imported.report["notes"])
    net = Network.from_spec(imported.spec, imported.params)
    xd = x.clone().requires_grad_(True)
    out = model(xd)
    loss = -out[0, 2]
    loss.backward()
    tr = net.trace(x.numpy()[0], 2)
    np.testing.assert_allclose(tr.output, out.exp().detach().numpy()[0], atol=1e-12)
    np.testing.assert_allclose(tr.records[0].dC_dw, model.conv.weight.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(tr.records[0].dC_da_prev[0], xd.grad.numpy()[0], atol=1e-10)


@pytest.mark.parametrize("opset", [11, 13, 20])
def test_dynamic_batch_view_flatten(opset):
    """x.view(x.size(0), -1) with a dynamic batch axis exports Shape, Gather, Unsqueeze,
    Concat, Reshape: cnnviz evaluates that shape arithmetic (batch 1) and flattens."""
    torch.manual_seed(opset)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3), nn.ReLU(), nn.MaxPool2d(2), Flat(), nn.Linear(3 * 3 * 3, 4),
        nn.Softmax(dim=1),
    ).double().eval()  # fmt: skip
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x,), f, dynamo=False, opset_version=opset, input_names=["x"],
            dynamic_axes={"x": {0: "batch"}},
        )  # fmt: skip
    imported = check_against_torch(model, "softmax", f.getvalue(), x, 1e-10, has_bn=False)
    ops = [n["op_type"] for n in imported.report["nodes"]]
    assert "Shape" in ops and "Reshape" in ops
    assert [layer["type"] for layer in imported.spec["layers"]] == [
        "conv2d", "maxpool2d", "flatten", "dense"
    ]  # fmt: skip


def test_dynamic_batch_default_exporter():
    torch.manual_seed(9)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), Flat(), nn.Linear(2 * 6 * 6, 3))
    model = model.double().eval()
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(
            model, (x,), dynamo=True, verbose=False,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )  # fmt: skip
    check_against_torch(model, None, prog.model_proto.SerializeToString(), x, 1e-10, False)


def test_the_documented_ten_lines(tmp_path, monkeypatch):
    """The PyTorch -> cnnviz snippet of docs/api.md (and the README) runs and imports."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for doc in ("docs/api.md", "README.md"):
        text = (root / doc).read_text(encoding="utf-8")
        start = re.search(r"^#+ .*ONNX", text, re.M).start()  # the ONNX section
        code = re.findall(r"```python\n(.*?)```", text[start:], re.S)[0]
        assert len(code.strip().splitlines()) <= 10, doc
        monkeypatch.chdir(tmp_path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(code, doc, "exec"), {})
        imported = convert((tmp_path / "my_net.onnx").read_bytes())
        assert imported.spec["input_shape"] == [1, 28, 28]
        assert imported.spec["loss"] == "cross_entropy"
