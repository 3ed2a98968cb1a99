"""Export: GET /api/models/{name}/onnx and `cnnviz export` give a valid ONNX model (onnx.checker)
that onnxruntime runs to the engine's numbers; `cnnviz import` writes the bundled format."""

from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from app.cli import main as cli  # noqa: E402
from app.main import create_app  # noqa: E402
from app.services.onnx_export import onnx_bytes  # noqa: E402
from app.services.onnx_import import convert  # noqa: E402
from app.settings import Settings  # noqa: E402
from cnncore import Network, data, models  # noqa: E402
from tests.app.api_helpers import assert_error  # noqa: E402


@pytest.fixture(scope="module")
def client():
    from fastapi.testclient import TestClient

    return TestClient(create_app(Settings()))


def run_ort(blob: bytes, x: np.ndarray) -> np.ndarray:
    """onnxruntime for float32; onnx's reference evaluator for float64 (onnxruntime's CPU
    provider has no float64 Conv)."""
    if x.dtype == np.float64:
        from onnx.reference import ReferenceEvaluator

        (out,) = ReferenceEvaluator(onnx.load_from_string(blob)).run(None, {"input": x})
        return out
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"input": x})
    return out


def test_digit_model_onnx_equals_cnnviz_on_test_digits(client):
    r = client.get("/api/models/digits/onnx")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    assert 'filename="digits.onnx"' in r.headers["content-disposition"]
    model = onnx.load_from_string(r.content)
    onnx.checker.check_model(model, full_check=True)
    net, _ = models.load("digits")
    split = data.load_split()
    x = split.x_test[:500].astype(np.float32)
    got = run_ort(r.content, x)
    want = net.predict(x.astype(np.float64))
    assert got.shape == want.shape == (500, 10)
    assert np.max(np.abs(got - want)) <= 1e-6
    assert np.array_equal(got.argmax(1), want.argmax(1))


def test_unknown_model_is_404(client):
    assert_error(client.get("/api/models/nope/onnx"), 404, "path", "name")


SPECS = [
    {
        "input_shape": [2, 11, 9],
        "layers": [
            {"type": "conv2d", "out_channels": 3, "kernel_size": [3, 2], "stride": [2, 1],
             "padding": [1, 0], "activation": "tanh"},
            {"type": "avgpool2d", "kernel_size": [3, 2], "stride": [1, 2], "padding": [1, 1]},
            {"type": "conv2d", "out_channels": 2, "kernel_size": 1, "activation": "sigmoid"},
            {"type": "maxpool2d", "kernel_size": 2, "stride": 1, "padding": 1},
            {"type": "flatten"},
            {"type": "dense", "units": 5, "activation": "relu"},
            {"type": "dense", "units": 3, "activation": "softmax"},
        ],
    },
    {
        "input_shape": [1, 6, 6],
        "layers": [
            {"type": "conv2d", "out_channels": 2, "kernel_size": 3},
            {"type": "flatten"},
            {"type": "dense", "units": 2, "activation": "sigmoid"},
        ],
        "loss": "mse",
    },
]  # fmt: skip


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_layer_type_exports_and_round_trips(spec, dtype):
    net = Network.from_spec(spec, seed=3)
    for layer in net.layers:  # non-zero biases, so a lost bias shows
        if "b" in layer.params:
            layer.params["b"] = np.linspace(-0.5, 0.5, layer.params["b"].size)
    blob = onnx_bytes(net, "t", dtype)
    onnx.checker.check_model(onnx.load_from_string(blob), full_check=True)
    x = np.random.default_rng(0).normal(size=(4, *spec["input_shape"]))
    got = run_ort(blob, x.astype(dtype))
    want = net.predict(x.astype(dtype).astype(np.float64))
    np.testing.assert_allclose(got, want, atol=1e-12 if dtype == "float64" else 1e-6, rtol=0)
    # and back: the same spec and (at the exported precision) the same parameters
    back = convert(blob)
    assert [{k: v for k, v in layer.items()} for layer in back.spec["layers"]] == net.spec["layers"]
    for p, q in zip(back.params, net.params, strict=True):
        for k in q:
            np.testing.assert_array_equal(p[k], q[k].astype(dtype).astype(np.float64))


def test_cli_export_and_import_give_the_bundled_format(tmp_path, capsys):
    out = tmp_path / "digits.onnx"
    assert cli(["export", "digits", "--out", str(out)]) == 0
    onnx.checker.check_model(onnx.load_from_string(out.read_bytes()), full_check=True)
    assert cli(["import", str(out), "--out", str(tmp_path / "models"), "--name", "mine"]) == 0
    net, meta = models.load_file(tmp_path / "models" / "mine")
    ref, _ = models.load("digits")
    assert net.spec == ref.spec
    for p, q in zip(net.params, ref.params, strict=True):
        for k in q:
            np.testing.assert_array_equal(p[k], q[k])
    assert meta["import_report"]["layers"] == 7
    # a deployment serves it: CNNVIZ_MODELS_DIR
    from fastapi.testclient import TestClient

    c = TestClient(create_app(Settings(models_dir=tmp_path / "models")))
    assert [m["name"] for m in c.get("/api/models").json()] == ["mine"]


def test_cli_exports_train_mode_parameters(tmp_path):
    """Train mode's export: one JSON with `network` and `params` (nested lists)."""
    spec = SPECS[1]
    net = Network.from_spec(spec, seed=7)
    doc = {
        "name": "trained",
        "network": net.spec,
        "params": [{k: v.tolist() for k, v in p.items()} for p in net.params],
    }
    src = tmp_path / "trained.json"
    src.write_text(json.dumps(doc))
    out = tmp_path / "trained.onnx"
    assert cli(["export", str(src), "--out", str(out), "--dtype", "float64"]) == 0
    x = np.random.default_rng(1).normal(size=(2, 1, 6, 6))
    np.testing.assert_allclose(run_ort(out.read_bytes(), x), net.predict(x), atol=1e-12, rtol=0)


def test_cli_errors_are_messages(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    assert cli(["import", str(bad), "--out", str(tmp_path)]) == 1
    assert "not a valid ONNX model" in capsys.readouterr().err
    assert cli(["export", "no-such-model", "--out", str(tmp_path / "x.onnx")]) == 1
    assert "no such model" in capsys.readouterr().err
