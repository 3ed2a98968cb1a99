"""cnncore.spec: invalid specs give messages that name the layer and the rule; valid specs are
normalized with the right shapes; bad params and targets are rejected with clear messages."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest

from cnncore.network import Network
from cnncore.spec import SpecError, normalize_spec
from cnncore.train import LENET_SPEC

LENET = LENET_SPEC


def _spec(*layers, input_shape=(1, 6, 6), loss=None):
    spec = {"input_shape": list(input_shape), "layers": list(layers)}
    if loss is not None:
        spec["loss"] = loss
    return spec


def _error(spec) -> SpecError:
    with pytest.raises(SpecError) as info:
        normalize_spec(spec)
    return info.value


def _conv(**kw):
    return {"type": "conv2d", "out_channels": 2, "kernel_size": 3, **kw}


# --------------------------------------------------------------------------- invalid specs

# (spec, layer index, layer type, words of the rule that must appear, location)
LAYER_ERRORS = [
    pytest.param(
        _spec(_conv(), {"type": "maxpool2d", "kernel_size": 2}, _conv()),
        2,
        "conv2d",
        ["kernel_size 3", "larger than the padded input", "height 2"],
        ("layers", 2, "kernel_size"),
        id="empty-output-after-shrinking",
    ),
    pytest.param(
        _spec(_conv(kernel_size=7)),
        0,
        "conv2d",
        ["kernel_size 7", "larger than the padded input height 6"],
        ("layers", 0, "kernel_size"),
        id="kernel-larger-than-input",
    ),
    pytest.param(
        _spec(_conv(kernel_size=[3, 9], padding=1)),
        0,
        "conv2d",
        ["kernel_size 9", "padded input width 8", "more padding"],
        ("layers", 0, "kernel_size"),
        id="kernel-larger-than-padded-width",
    ),
    pytest.param(
        _spec(_conv(), {"type": "dropout"}),
        1,
        "'dropout'",
        ["unknown type", "conv2d", "maxpool2d", "avgpool2d", "flatten", "dense"],
        ("layers", 1, "type"),
        id="unknown-type",
    ),
    pytest.param(
        _spec({"type": "conv2d", "out_channels": 2, "kernal_size": 3}),
        0,
        "conv2d",
        ["unknown key", "'kernal_size'", "kernel_size"],
        ("layers", 0, "kernal_size"),
        id="typo-kernal_size",
    ),
    pytest.param(
        _spec(
            _conv(activation="softmax"),
            {"type": "flatten"},
            {"type": "dense", "units": 2, "activation": "softmax"},
        ),
        0,
        "conv2d",
        ["softmax", "only allowed on the last layer"],
        ("layers", 0, "activation"),
        id="softmax-in-the-middle",
    ),
    pytest.param(
        _spec(_conv(activation="gelu")),
        0,
        "conv2d",
        ["unknown activation 'gelu'", "relu"],
        ("layers", 0, "activation"),
        id="unknown-activation",
    ),
    pytest.param(
        _spec(_conv(stride=2, padding="same")),
        0,
        "conv2d",
        ["padding 'same' needs stride 1 and an odd kernel_size", "stride [2, 2]"],
        ("layers", 0, "padding"),
        id="same-with-stride-2",
    ),
    pytest.param(
        _spec(_conv(kernel_size=2, padding="same")),
        0,
        "conv2d",
        ["padding 'same' needs stride 1 and an odd kernel_size", "kernel_size [2, 2]"],
        ("layers", 0, "padding"),
        id="same-with-even-kernel",
    ),
    pytest.param(
        _spec(_conv(kernel_size=[3, 4], padding="same")),
        0,
        "conv2d",
        ["padding 'same' needs stride 1 and an odd kernel_size"],
        ("layers", 0, "padding"),
        id="same-with-one-even-side",
    ),
    pytest.param(
        _spec({"type": "maxpool2d", "kernel_size": 3, "padding": "same"}),
        0,
        "maxpool2d",
        ["'same' is only for conv2d"],
        ("layers", 0, "padding"),
        id="same-on-pool",
    ),
    pytest.param(
        _spec(_conv(padding="full")),
        0,
        "conv2d",
        ["'padding' must be", "'valid'", "'same'"],
        ("layers", 0, "padding"),
        id="unknown-padding-word",
    ),
    pytest.param(
        _spec({"type": "maxpool2d", "kernel_size": 2, "padding": 2}),
        0,
        "maxpool2d",
        ["pool padding [2, 2]", "at most half the kernel_size [2, 2]"],
        ("layers", 0, "padding"),
        id="maxpool-padding-over-half",
    ),
    pytest.param(
        _spec({"type": "avgpool2d", "kernel_size": [4, 3], "padding": [2, 2]}),
        0,
        "avgpool2d",
        ["pool padding [2, 2]", "at most half the kernel_size [4, 3]"],
        ("layers", 0, "padding"),
        id="avgpool-padding-over-half-one-side",
    ),
    pytest.param(
        _spec(_conv(), {"type": "dense", "units": 3}),
        1,
        "dense",
        ["needs a flat vector", "shape [2, 4, 4]", "add a flatten layer"],
        ("layers", 1),
        id="dense-without-flatten",
    ),
    pytest.param(
        _spec({"type": "flatten"}, _conv()),
        1,
        "conv2d",
        ["[channels, height, width]", "shape [36]", "before the flatten"],
        ("layers", 1),
        id="conv-after-flatten",
    ),
    pytest.param(
        _spec({"type": "flatten"}, {"type": "maxpool2d", "kernel_size": 2}),
        1,
        "maxpool2d",
        ["[channels, height, width]", "shape [36]"],
        ("layers", 1),
        id="pool-after-flatten",
    ),
    pytest.param(
        _spec({"type": "conv2d", "kernel_size": 3}),
        0,
        "conv2d",
        ["'out_channels' is required"],
        ("layers", 0, "out_channels"),
        id="missing-out_channels",
    ),
    pytest.param(
        _spec({"type": "conv2d", "out_channels": 2}),
        0,
        "conv2d",
        ["'kernel_size' is required"],
        ("layers", 0, "kernel_size"),
        id="missing-kernel_size",
    ),
    pytest.param(
        _spec(_conv(out_channels=2.0)),
        0,
        "conv2d",
        ["'out_channels' must be a positive whole number", "2.0"],
        ("layers", 0, "out_channels"),
        id="float-out_channels",
    ),
    pytest.param(
        _spec(_conv(out_channels=True)),
        0,
        "conv2d",
        ["'out_channels' must be a positive whole number", "True"],
        ("layers", 0, "out_channels"),
        id="bool-out_channels",
    ),
    pytest.param(
        _spec(_conv(out_channels=0)),
        0,
        "conv2d",
        ["'out_channels' must be a positive whole number", "0"],
        ("layers", 0, "out_channels"),
        id="zero-out_channels",
    ),
    pytest.param(
        _spec({"type": "flatten"}, {"type": "dense", "units": -3}),
        1,
        "dense",
        ["'units' must be a positive whole number", "-3"],
        ("layers", 1, "units"),
        id="negative-units",
    ),
    pytest.param(
        _spec(_conv(kernel_size=2.5)),
        0,
        "conv2d",
        ["'kernel_size' must be an int or a list [h, w] of ints", "2.5"],
        ("layers", 0, "kernel_size"),
        id="float-kernel",
    ),
    pytest.param(
        _spec(_conv(kernel_size=[3, True])),
        0,
        "conv2d",
        ["'kernel_size' must be an int or a list [h, w] of ints"],
        ("layers", 0, "kernel_size"),
        id="bool-in-kernel-pair",
    ),
    pytest.param(
        _spec(_conv(kernel_size=[3, 3, 3])),
        0,
        "conv2d",
        ["'kernel_size' must be an int or a list [h, w]"],
        ("layers", 0, "kernel_size"),
        id="kernel-triple",
    ),
    pytest.param(
        _spec(_conv(kernel_size=0)),
        0,
        "conv2d",
        ["'kernel_size' must be at least 1"],
        ("layers", 0, "kernel_size"),
        id="zero-kernel",
    ),
    pytest.param(
        _spec(_conv(stride=0)),
        0,
        "conv2d",
        ["'stride' must be at least 1"],
        ("layers", 0, "stride"),
        id="zero-stride",
    ),
    pytest.param(
        _spec(_conv(stride=[1, -1])),
        0,
        "conv2d",
        ["'stride' must be at least 1", "[1, -1]"],
        ("layers", 0, "stride"),
        id="negative-stride",
    ),
    pytest.param(
        _spec(_conv(padding=-1)),
        0,
        "conv2d",
        ["'padding' must be at least 0", "[-1, -1]"],
        ("layers", 0, "padding"),
        id="negative-padding",
    ),
    pytest.param(
        _spec(_conv(padding=False)),
        0,
        "conv2d",
        ["'padding' must be an int or a list"],
        ("layers", 0, "padding"),
        id="bool-padding",
    ),
]


@pytest.mark.parametrize("spec,index,type_,words,location", LAYER_ERRORS)
def test_invalid_layer_names_the_layer_and_the_rule(spec, index, type_, words, location):
    err = _error(spec)
    msg = str(err)
    assert re.match(rf"layer {index}[ :]", msg), msg
    assert type_ in msg
    for word in words:
        assert word in msg, f"{word!r} not in {msg!r}"
    assert err.location == location


def test_cross_entropy_without_softmax():
    err = _error(_spec(_conv(activation="sigmoid"), loss="cross_entropy"))
    msg = str(err)
    assert "cross_entropy" in msg and "softmax" in msg and "last layer" in msg
    assert err.location == ("loss",)


def test_unknown_loss():
    err = _error(_spec(_conv(), loss="hinge"))
    assert "unknown loss 'hinge'" in str(err) and "mse" in str(err) and "cross_entropy" in str(err)
    assert err.location == ("loss",)


@pytest.mark.parametrize(
    "spec,words,location",
    [
        pytest.param([], ["must be a JSON object"], (), id="not-an-object"),
        pytest.param(_spec(), ["layers must be a non-empty list"], ("layers",), id="no-layers"),
        pytest.param(
            {"input_shape": [1, 6, 6]},
            ["layers must be a non-empty list"],
            ("layers",),
            id="missing-layers",
        ),
        pytest.param(
            {"input_shape": [1, 6, 6], "layers": {"type": "flatten"}},
            ["layers must be a non-empty list"],
            ("layers",),
            id="layers-not-list",
        ),
        pytest.param(
            _spec("conv2d"), ["layer 0", "must be an object"], ("layers", 0), id="layer-not-object"
        ),
        pytest.param(
            {**_spec(_conv()), "optimizer": "adam"},
            ["unknown key", "'optimizer'"],
            ("optimizer",),
            id="unknown-top-level-key",
        ),
    ],
)
def test_invalid_spec_structure(spec, words, location):
    err = _error(spec)
    for word in words:
        assert word in str(err), f"{word!r} not in {str(err)!r}"
    assert err.location == location


@pytest.mark.parametrize(
    "shape",
    [None, [6, 6], [1, 6, 6, 1], [0, 6, 6], [1, -6, 6], [1, 6.0, 6], [True, 6, 6], "1x6x6"],
)
def test_bad_input_shape(shape):
    spec = _spec(_conv())
    spec["input_shape"] = shape
    err = _error(spec)
    assert "input_shape must be [channels, height, width] of positive whole numbers" in str(err)
    assert repr(shape) in str(err)
    assert err.location == ("input_shape",)


# --------------------------------------------------------------------------- valid specs


def test_int_and_pair_forms_normalize_the_same():
    a = normalize_spec(_spec(_conv(kernel_size=3, stride=1, padding=1)))
    b = normalize_spec(_spec(_conv(kernel_size=[3, 3], stride=[1, 1], padding=[1, 1])))
    assert a == b
    layer = a["layers"][0]
    assert layer["kernel_size"] == [3, 3] and layer["stride"] == [1, 1]
    assert layer["padding"] == [1, 1]


def test_valid_and_same_padding():
    valid = normalize_spec(_spec(_conv(kernel_size=[3, 5], padding="valid"), input_shape=(2, 7, 9)))
    assert valid["layers"][0]["padding"] == [0, 0]
    assert valid["layers"][0]["output_shape"] == [2, 5, 5]
    same = normalize_spec(_spec(_conv(kernel_size=[3, 5], padding="same"), input_shape=(2, 7, 9)))
    assert same["layers"][0]["padding"] == [1, 2]
    assert same["layers"][0]["output_shape"] == [2, 7, 9]  # same keeps the input's size


def test_pool_stride_defaults_to_kernel_size_and_conv_stride_to_one():
    norm = normalize_spec(
        _spec(
            {"type": "maxpool2d", "kernel_size": [2, 3]},
            {"type": "avgpool2d", "kernel_size": 2, "stride": 1},
            _conv(kernel_size=1),
            input_shape=(3, 9, 9),
        )
    )
    pool, avg, conv = norm["layers"]
    assert pool["stride"] == [2, 3] and pool["padding"] == [0, 0]
    assert pool["output_shape"] == [3, 4, 3]
    assert avg["stride"] == [1, 1] and avg["output_shape"] == [3, 3, 2]  # overlapping windows
    assert conv["stride"] == [1, 1] and conv["output_shape"] == [2, 3, 2]


@pytest.mark.parametrize(
    "h,k,s,p",
    [
        (28, 5, 1, 0),
        (7, 3, 2, 0),
        (6, 3, 2, 0),
        (5, 3, 2, 1),
        (9, 4, 3, 2),
        (10, 2, 3, 1),
        (3, 3, 1, 0),
        (1, 3, 1, 1),
    ],
)
def test_shape_inference_follows_the_formula(h, k, s, p):
    norm = normalize_spec(
        _spec(
            _conv(out_channels=4, kernel_size=[k, 1], stride=[s, 1], padding=[p, 0]),
            input_shape=(3, h, 5),
        )
    )
    expected = math.floor((h + 2 * p - k) / s) + 1
    assert norm["layers"][0]["output_shape"] == [4, expected, 5]
    assert norm["output_shape"] == [4, expected, 5]


def test_lenet_shapes_param_counts_and_default_loss():
    spec = copy.deepcopy(LENET)
    del spec["loss"]  # softmax last -> cross_entropy by default
    norm = normalize_spec(spec)
    shapes = [layer["output_shape"] for layer in norm["layers"]]
    assert shapes == [[8, 24, 24], [8, 12, 12], [16, 8, 8], [16, 4, 4], [256], [10]]
    assert [layer["input_shape"] for layer in norm["layers"]][1:] == shapes[:-1]
    counts = [layer["param_count"] for layer in norm["layers"]]
    assert counts == [8 * (25 + 1), 0, 16 * (8 * 25 + 1), 0, 0, 10 * (256 + 1)]
    assert norm["param_count"] == 208 + 3216 + 2570
    assert norm["loss"] == "cross_entropy"
    assert norm["layers"][0]["multiply_adds"] == 8 * 24 * 24 * 25
    assert norm["layers"][-1]["multiply_adds"] == 2560
    net = Network.from_spec(spec)
    assert sum(v.size for p in net.params for v in p.values()) == norm["param_count"]
    assert net.multiply_adds() == sum(layer["multiply_adds"] for layer in norm["layers"])
    # no softmax -> mse by default
    assert normalize_spec(_spec(_conv()))["loss"] == "mse"


@pytest.mark.parametrize(
    "spec",
    [
        LENET,
        _spec(
            _conv(padding="same", stride=1),
            {"type": "avgpool2d", "kernel_size": 3, "stride": 1, "padding": 1},
        ),
        _spec(
            {"type": "maxpool2d", "kernel_size": [2, 3], "padding": [1, 1]},
            {"type": "flatten"},
            {"type": "dense", "units": 3, "activation": "tanh"},
        ),
    ],
)
def test_normalized_spec_renormalizes_to_itself(spec):
    norm = normalize_spec(spec)
    assert normalize_spec(norm) == norm
    assert normalize_spec(copy.deepcopy(norm)) == norm
    assert spec == normalize_spec(copy.deepcopy(spec)) or spec is not norm  # input not mutated
    before = copy.deepcopy(spec)
    normalize_spec(spec)
    assert spec == before


# --------------------------------------------------------------------------- params and targets


def _small_net():
    spec = _spec(
        _conv(activation="relu"),
        {"type": "flatten"},
        {"type": "dense", "units": 3, "activation": "softmax"},
    )
    return Network.from_spec(spec, seed=0)


def _good_params(net):
    return [{k: v.tolist() for k, v in p.items()} for p in net.params]


def test_load_params_accepts_lists_and_empty_dicts():
    net = _small_net()
    params = _good_params(net)
    params[0]["b"] = [0.5, -0.5]
    params[1] = None  # a layer without parameters may be None or {}
    net.load_params(params)
    np.testing.assert_array_equal(net.params[0]["b"], [0.5, -0.5])
    assert net.params[0]["w"].dtype == np.float64


@pytest.mark.parametrize(
    "mutate,words,location",
    [
        pytest.param(lambda p: p[:2], ["one entry per layer (3)"], ("params",), id="too-few"),
        pytest.param(lambda p: {"0": p[0]}, ["one entry per layer"], ("params",), id="not-a-list"),
        pytest.param(
            lambda p: [{"w": p[0]["w"]}, {}, p[2]],
            ["params[0] (conv2d)", "['b', 'w']"],
            ("params", 0),
            id="missing-key",
        ),
        pytest.param(
            lambda p: [{**p[0], "bias": [0]}, {}, p[2]],
            ["params[0] (conv2d)"],
            ("params", 0),
            id="extra-key",
        ),
        pytest.param(
            lambda p: [p[0], {"w": [1.0]}, p[2]],
            ["params[1] (flatten)", "nothing"],
            ("params", 1),
            id="params-on-flatten",
        ),
        pytest.param(
            lambda p: [p[0], {}, {**p[2], "w": np.zeros((3, 31)).tolist()}],
            ["params[2].w (dense)", "shape [3, 31]", "needs [3, 32]"],
            ("params", 2, "w"),
            id="wrong-shape",
        ),
        pytest.param(
            lambda p: [{**p[0], "b": [1.0, float("nan")]}, {}, p[2]],
            ["params[0].b (conv2d)", "NaN or infinity"],
            ("params", 0, "b"),
            id="nan",
        ),
        pytest.param(
            lambda p: [p[0], {}, {**p[2], "b": [1.0, float("inf"), 0.0]}],
            ["params[2].b (dense)", "NaN or infinity"],
            ("params", 2, "b"),
            id="inf",
        ),
        pytest.param(
            lambda p: [{**p[0], "b": [1.0, [2.0, 3.0]]}, {}, p[2]],
            ["params[0].b (conv2d)", "not a regular array of numbers"],
            ("params", 0, "b"),
            id="ragged",
        ),
        pytest.param(
            lambda p: [{**p[0], "b": ["a", "b"]}, {}, p[2]],
            ["params[0].b (conv2d)", "not a regular array of numbers"],
            ("params", 0, "b"),
            id="strings",
        ),
    ],
)
def test_load_params_errors(mutate, words, location):
    net = _small_net()
    before = [{k: v.copy() for k, v in p.items()} for p in net.params]
    with pytest.raises(SpecError) as info:
        net.load_params(mutate(_good_params(net)))
    for word in words:
        assert word in str(info.value), f"{word!r} not in {str(info.value)!r}"
    assert info.value.location == location
    for old, new in zip(before, net.params, strict=True):  # nothing half-loaded
        for k in old:
            np.testing.assert_array_equal(old[k], new[k])


def test_from_spec_with_params_and_seeded_init():
    net = _small_net()
    again = Network.from_spec(net.spec, params=_good_params(net))
    for a, b in zip(net.params, again.params, strict=True):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    other = Network.from_spec(net.spec, seed=1)
    assert not np.array_equal(other.params[0]["w"], net.params[0]["w"])
    same = Network.from_spec(net.spec, seed=0)
    np.testing.assert_array_equal(same.params[0]["w"], net.params[0]["w"])


def test_encode_target_valid_forms():
    net = _small_net()
    np.testing.assert_array_equal(net.encode_target(2, 1), [[0, 0, 1]])
    np.testing.assert_array_equal(net.encode_target([1, 0], 2), [[0, 1, 0], [1, 0, 0]])
    soft = net.encode_target([0.2, 0.3, 0.5], 1)
    np.testing.assert_array_equal(soft, [[0.2, 0.3, 0.5]])
    assert net.encode_target(np.array([2]), 1, dtype=np.float32).dtype == np.float32


@pytest.mark.parametrize(
    "target,n,words",
    [
        pytest.param(3, 1, ["target class must be between 0 and 2"], id="index-too-big"),
        pytest.param(-1, 1, ["target class must be between 0 and 2"], id="index-negative"),
        pytest.param([0, 5], 2, ["target class must be between 0 and 2"], id="batch-index-bad"),
        pytest.param([0.5, 0.5], 1, ["shaped like the output [3]", "class index"], id="short"),
        pytest.param(np.zeros((1, 4)), 1, ["shaped like the output [3]"], id="wide"),
    ],
)
def test_encode_target_errors(target, n, words):
    with pytest.raises(SpecError) as info:
        _small_net().encode_target(target, n)
    for word in words:
        assert word in str(info.value)
    assert info.value.location == ("target",)


def test_encode_target_for_a_regression_output_is_not_a_class_index():
    net = Network.from_spec(_spec(_conv(), {"type": "flatten"}, {"type": "dense", "units": 3}))
    with pytest.raises(SpecError) as info:
        net.encode_target([1, 2], 1)
    assert "shaped like the output [3]" in str(info.value)
    assert "class index" not in str(info.value)


def test_class_index_target_for_a_3d_softmax_output_is_rejected():
    """softmax may end a conv layer (output [C, H, W]); a class index there is ambiguous.

    It must not be one-hot encoded along the channel axis only (shape (1, C)), which then
    broadcasts against the (1, C, H, W) output and gives a wrong loss and gradient silently.
    """
    net = Network.from_spec(
        _spec(_conv(out_channels=1, activation="softmax"), loss="cross_entropy")
    )
    with pytest.raises(SpecError) as info:
        net.encode_target(0, 1)
    assert "shaped like the output [1, 4, 4]" in str(info.value)
    one_hot = np.zeros((1, 4, 4))
    one_hot[0, 1, 2] = 1.0
    trace = net.trace(np.ones((1, 6, 6)), one_hot)
    assert trace.target.shape == (1, 4, 4)
    np.testing.assert_allclose(trace.records[0].dC_dz[0], trace.output - one_hot, atol=1e-15)
    assert trace.loss == pytest.approx(-np.log(trace.output[0, 1, 2]))
