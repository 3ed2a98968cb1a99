"""The convolution identities the articles teach, checked with SciPy on the real engine's trace.

- forward:    z_f = sum_c correlate2d(a_prev_pad_c, w_fc, "valid") (every s-th cell) + b_f
- dC/da_prev: sum_f convolve2d(dilated dC/dz_f, w_fc, "full"), zero-extended to the padded
              size where no window reached, then cropped by the padding
- dC/dw:      correlate2d(a_prev_pad_c, dilated dC/dz_f, "valid") (its top-left kH x kW)
- dC/db:      sum of dC/dz_f
"Dilated" inserts stride - 1 zeros between the entries of dC/dz (nothing at stride 1).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import convolve2d, correlate2d

from cnncore.network import Network

ATOL = 1e-12

# (C_in, C_out, kernel, stride, padding, H, W)
CONFIGS = [
    (1, 1, [2, 2], 1, 0, 3, 3),
    (3, 2, [3, 3], 1, 0, 6, 5),
    (3, 2, [3, 2], 1, 1, 5, 6),
    (2, 3, [3, 3], 1, 2, 5, 5),
    (2, 2, [3, 3], 2, 0, 8, 7),  # (8 - 3) / 2 not whole: the last row is in no window
    (3, 2, [2, 3], 2, 1, 7, 8),
    (1, 2, [4, 4], 3, 2, 9, 10),
    (2, 2, [3, 3], [2, 1], [1, 0], 7, 6),
]


def _net(c_in, c_out, kernel, stride, padding, h, w, seed=0):
    spec = {
        "input_shape": [c_in, h, w],
        "layers": [
            {
                "type": "conv2d",
                "out_channels": c_out,
                "kernel_size": kernel,
                "stride": stride,
                "padding": padding,
                "activation": "tanh",
            },
            {"type": "conv2d", "out_channels": 2, "kernel_size": 2, "activation": "sigmoid"},
            {"type": "flatten"},
            {"type": "dense", "units": 3, "activation": "softmax"},
        ],
        "loss": "cross_entropy",
    }
    net = Network.from_spec(spec, seed=seed)
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if "b" in layer.params:
            layer.params["b"] = rng.normal(size=layer.params["b"].shape)
    return net, rng.normal(size=(c_in, h, w)), 1


def _dilate(g, stride):
    sh, sw = stride
    out = np.zeros(((g.shape[0] - 1) * sh + 1, (g.shape[1] - 1) * sw + 1))
    out[::sh, ::sw] = g
    return out


def _pad(a, padding):
    ph, pw = padding
    return np.pad(a, ((ph, ph), (pw, pw)))


def _conv_layers(trace):
    d = trace.to_dict()
    for layer, spec in zip(d["layers"], d["network"]["layers"], strict=True):
        if layer["type"] == "conv2d":
            yield layer, spec


def _check_identities(layer, spec):
    w, b = layer["params"]["w"], layer["params"]["b"]
    a_prev, z = layer["forward"]["a_prev"], layer["forward"]["z"]
    dz = layer["backward"]["dC_dz"]
    c_out, c_in, kh, kw = w.shape
    (sh, sw), (ph, pw) = spec["stride"], spec["padding"]
    h, wd = a_prev.shape[1:]
    a_pad = [_pad(a_prev[c], (ph, pw)) for c in range(c_in)]

    # forward: valid correlation summed over input channels, every s-th position, plus bias
    for f in range(c_out):
        full = sum(correlate2d(a_pad[c], w[f, c], "valid") for c in range(c_in))
        np.testing.assert_allclose(z[f], full[::sh, ::sw] + b[f], rtol=0, atol=ATOL)

    # dC/da_prev: full convolution of the dilated dC/dz with w, extended, then cropped
    dx = np.zeros((c_in, h + 2 * ph, wd + 2 * pw))
    for c in range(c_in):
        part = sum(convolve2d(_dilate(dz[f], (sh, sw)), w[f, c], "full") for f in range(c_out))
        dx[c, : part.shape[0], : part.shape[1]] = part
    dx = dx[:, ph : ph + h, pw : pw + wd]
    np.testing.assert_allclose(layer["backward"]["dC_da_prev"], dx, rtol=0, atol=ATOL)

    # dC/dw: a_prev (padded) correlated with the dilated dC/dz; dC/db: sum of dC/dz
    for f in range(c_out):
        for c in range(c_in):
            dw = correlate2d(a_pad[c], _dilate(dz[f], (sh, sw)), "valid")[:kh, :kw]
            np.testing.assert_allclose(layer["backward"]["dC_dw"][f, c], dw, rtol=0, atol=ATOL)
    np.testing.assert_allclose(layer["backward"]["dC_db"], dz.sum(axis=(1, 2)), rtol=0, atol=ATOL)


@pytest.mark.parametrize(
    "config", CONFIGS, ids=lambda c: "cin{}-cout{}-k{}-s{}-p{}-{}x{}".format(*c)
)
def test_scipy_identities_on_the_engine_trace(config):
    net, x, target = _net(*config)
    trace = net.trace(x, target)
    layers = list(_conv_layers(trace))
    assert len(layers) == 2
    for layer, spec in layers:
        assert np.max(np.abs(layer["backward"]["dC_dz"])) > 1e-6  # a non-trivial gradient
        _check_identities(layer, spec)


def test_identities_detect_a_wrong_gradient():
    """The checker can fail: rot180 on the wrong side (a correlation instead of a convolution)."""
    net, x, target = _net(3, 2, [3, 3], 1, 1, 5, 6)
    layer, spec = next(_conv_layers(net.trace(x, target)))
    wrong = dict(layer, backward=dict(layer["backward"]))
    w, dz = layer["params"]["w"], layer["backward"]["dC_dz"]
    wrong["backward"]["dC_da_prev"] = np.stack(
        [
            sum(correlate2d(dz[f], w[f, c], "full") for f in range(w.shape[0]))[1:-1, 1:-1]
            for c in range(w.shape[1])
        ]
    )
    with pytest.raises(AssertionError):
        _check_identities(wrong, spec)


def test_article_identities_correlation_convolution_full():
    """Article 7's numbers: the engine's forward is the correlation, rot180 gives the
    convolution, and dC/da_prev is the full correlation when the engine holds rot180(w)."""
    x = np.arange(1.0, 10.0).reshape(3, 3)
    k = np.array([[10.0, 20.0], [30.0, 40.0]])
    assert correlate2d(x, k, "valid").tolist() == [[370, 470], [670, 770]]
    assert convolve2d(x, k, "valid").tolist() == [[230, 330], [530, 630]]
    full = [[40, 110, 180, 90], [180, 370, 470, 210], [360, 670, 770, 330], [140, 230, 260, 90]]
    assert correlate2d(x, k, "full").tolist() == full

    def conv_net(h, kernel):
        spec = {
            "input_shape": [1, h, h],
            "layers": [
                {"type": "conv2d", "out_channels": 1, "kernel_size": 2, "activation": "identity"}
            ],
            "loss": "mse",
        }
        return Network.from_spec(spec, params=[{"w": kernel.reshape(1, 1, 2, 2), "b": [0.0]}])

    assert conv_net(3, k).trace(x[None], np.zeros((1, 2, 2))).output[0].tolist() == [
        [370, 470],
        [670, 770],
    ]
    assert conv_net(3, k[::-1, ::-1]).trace(x[None], np.zeros((1, 2, 2))).output[0].tolist() == [
        [230, 330],
        [530, 630],
    ]
    # With mse, zero input and target -x: dC/dz = z - y = x, so dC/da_prev = x (full-conv) w.
    tr = conv_net(4, k[::-1, ::-1]).trace(np.zeros((1, 4, 4)), -x[None])
    np.testing.assert_array_equal(tr.records[0].dC_dz[0, 0], x)
    assert tr.records[0].dC_da_prev[0, 0].tolist() == full
