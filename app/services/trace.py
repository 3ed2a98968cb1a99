"""POST /api/trace: choose the network, check input and target, run the engine's trace,
refuse overflow, serialize every tensor."""

from __future__ import annotations

import copy
import hashlib
import math
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import orjson

from cnncore import Network, SpecError, preprocess
from cnncore.blocks import Block, flatten_params
from cnncore.network import Trace

from ..errors import ApiError
from ..schemas import TraceRequest
from ..settings import Settings
from .catalog import get_scenario, load_model, scenario_network
from .changes import changes_b64, changes_fragment, from_changes, is_changes, wire_key
from .custom import custom_network, spec_error
from .predict import image_input
from .selection import OVERFLOW, Selection, apply, check_layers
from .serialize import ENCODINGS, dumps_trace, dumps_trace_pieces, pin_params
from .validate import depth, to_array


def _choose(req: TraceRequest) -> str:
    """Which of 'model', 'scenario' or 'network' the request uses (exactly one)."""
    chosen = [k for k in ("model", "scenario", "network") if getattr(req, k) is not None]
    if not chosen:
        raise ApiError(
            ("body",),
            "give exactly one of 'model', 'scenario' or 'network' to "
            "choose the network (none was given)",
            "choose_one",
        )
    if len(chosen) > 1:
        raise ApiError(
            ("body", chosen[1]),
            "give exactly one of 'model', 'scenario' or "
            f"'network' (got both '{chosen[0]}' and '{chosen[1]}')",
            "choose_one",
        )
    kind = chosen[0]
    # a model takes learned parameters (its own architecture), never a seed
    extras = ("params", "seed") if kind == "scenario" else ("seed",) if kind == "model" else ()
    for extra in extras:
        if extra in req.model_fields_set:
            allowed = "'network'" if extra == "seed" else "'network' or 'model'"
            raise ApiError(("body", extra), f"'{extra}' is only used with {allowed}", "not_allowed")
    if req.updated_params_as == "changes" and (kind != "model" or req.encoding != "base64"):
        raise ApiError(
            ("body", "updated_params_as"),
            "'changes' are changes to a bundled model's own parameters: use it with 'model' "
            'and "encoding": "base64"',
            "not_allowed",
        )
    return kind


def _input(value: Any, net: Network, s: Settings) -> np.ndarray:
    shape = net.input_shape
    if shape[0] == 1 and depth(value) == 2:  # [H][W] for a one-channel input
        shape = shape[1:]
    return to_array(value, shape, ("body", "input"), -s.max_abs_value, s.max_abs_value)


def _target(value: Any, net: Network, s: Settings) -> Any:
    loc = ("body", "target")
    lim = s.max_abs_value
    out_shape = tuple(net.spec["output_shape"])
    if isinstance(value, bool):
        raise ApiError(loc, "must be a class index or numbers, not true/false", "type")
    if net.loss_name == "cross_entropy" and not isinstance(value, list):
        if not isinstance(value, int):
            raise ApiError(
                loc,
                "for cross_entropy, give a class index (a whole number from 0 "
                f"to {out_shape[0] - 1}) or an array shaped {list(out_shape)}",
                "type",
            )
        if not 0 <= value < out_shape[0]:
            raise ApiError(
                loc, f"class index {value} is out of range: 0 to {out_shape[0] - 1}", "range"
            )
        return value
    if not isinstance(value, list):
        if math.prod(out_shape) != 1:
            raise ApiError(
                loc, f"must be an array shaped like the output {list(out_shape)}", "shape"
            )
        return to_array(value, (), loc, -lim, lim).reshape(out_shape)
    return to_array(value, out_shape, loc, -lim, lim)


def _network(req: TraceRequest, s: Settings) -> tuple[Network, Any, Any]:
    """The network, input and target the request asks for (a scenario fills in its own)."""
    kind = _choose(req)
    if kind == "model":
        net, _ = load_model(s, req.model, ("body", "model"))
        if req.params is not None:
            return _learned(net, req.params, s), req.input, req.target
        pin_params(net)
        return net, req.input, req.target
    if kind == "scenario":
        sc = get_scenario(req.scenario, ("body", "scenario"))
        return (
            scenario_network(req.scenario),
            sc.input if req.input is None else req.input,
            sc.target if req.target is None else req.target,
        )
    return custom_network(req, s), req.input, req.target


def _learned(model: Network, given: Any, s: Settings) -> Network:
    """A bundled model with parameters learned from its own: each array given in full (nested
    lists or base64) or as its changes to the model's own (`changes.py`)."""
    loc = ("body", "params")
    if len(given) != len(model.layers):
        raise ApiError(
            loc,
            f"params must have one entry per layer ({len(model.layers)}); use {{}} for "
            "layers without parameters",
            "shape",
        )
    lim = s.max_abs_value
    params = []
    for i, (own, p) in enumerate(zip(model.params, given, strict=True)):
        p = flatten_params(p)
        if set(p) != set(own):
            want = sorted(own) or "nothing: {}"
            raise ApiError((*loc, i), f"layer {i} takes {want}, got {sorted(p)}", "params")
        params.append(
            {
                k: from_changes(p[k], ref, (*loc, i, k), -lim, lim)
                if is_changes(p[k])
                else to_array(p[k], ref.shape, (*loc, i, k), -lim, lim)
                for k, ref in own.items()
            }
        )
    net = _with_params(model, params)
    net.own_params = model.params  # what `"updated_params_as": "changes"` are changes to
    return net


def _with_params(net: Network, params: list[dict[str, np.ndarray]]) -> Network:
    """`net` with other parameters, its own left as they are (a cached model's are read-only),
    without copying them first: a plain layer is copied shallowly, a block (whose setter
    writes into its inner layers) whole."""
    layers = [copy.deepcopy(la) if isinstance(la, Block) else copy.copy(la) for la in net.layers]
    for layer, p in zip(layers, params, strict=True):
        layer.params = p
    return Network(net.spec, layers)


def _limits(req: TraceRequest, s: Settings) -> None:
    """The limits Settings holds (the schema checks types and lower bounds)."""
    lr = req.learning_rate
    if lr is not None and lr > s.max_learning_rate:
        raise ApiError(
            ("body", "learning_rate"),
            f"must be at most {s.max_learning_rate:g}, got {lr:g}",
            "less_than_equal",
        )
    if req.seed > s.max_seed:
        raise ApiError(("body", "seed"), f"must be at most {s.max_seed}", "less_than_equal")


def _image(req: TraceRequest, net: Network, s: Settings) -> np.ndarray:
    """`image` -> the 28×28 input /api/predict would make of it (networks taking 1×28×28)."""
    loc = ("body", "image")
    if req.input is not None:
        raise ApiError(loc, "give either 'input' or 'image', not both", "choose_one")
    want = (1, preprocess.SIZE, preprocess.SIZE)
    if tuple(net.input_shape) != want:
        raise ApiError(
            loc,
            f"an image becomes a 1×{want[1]}×{want[2]} input, but this network takes "
            f"{'×'.join(map(str, net.input_shape))}; send 'input' instead",
            "shape",
        )
    return image_input(req.image, s)


PREDICTED = "predicted"


def _check_predicted(net: Network) -> str:
    """`"target": "predicted"`: the class the network predicts for x (argmax of its output),
    resolved from the forward pass the trace or step runs anyway (`_forward`)."""
    if not (net.is_classifier and net.loss_name == "cross_entropy"):
        raise ApiError(
            ("body", "target"),
            "'predicted' needs a classifier (softmax output, cross_entropy loss); give the "
            f"target as an array shaped like the output {net.spec['output_shape']}",
            "type",
        )
    return PREDICTED


def _prepare(
    req: TraceRequest, s: Settings
) -> tuple[Network, np.ndarray, Any, Selection, np.ndarray | None]:
    """The network, input, target and selection of a request, and the 28×28 made of its
    `image` (None without one)."""
    _limits(req, s)
    net, input_value, target_value = _network(req, s)
    image = None
    if req.image is not None:
        image = input_value = _image(req, net, s)
    if input_value is None:
        raise ApiError(
            ("body", "input"),
            f"input is required: a nested list shaped {list(net.input_shape)}",
            "missing",
        )
    if target_value is None:
        raise ApiError(
            ("body", "target"),
            "target is required: "
            + ("a class index or " if net.loss_name == "cross_entropy" else "")
            + f"an array shaped like the output {net.spec['output_shape']}",
            "missing",
        )
    x = image if image is not None else _input(input_value, net, s)
    if isinstance(target_value, str) and target_value == PREDICTED:
        target = _check_predicted(net)
    else:
        target = _target(target_value, net, s)
    sel = Selection.of(req)
    check_layers(sel, len(net.layers))
    return net, x, target, sel, image


def _softmax_ce(net: Network) -> bool:
    return net.loss_name == "cross_entropy" and net.is_classifier


def _forward(net: Network, x: np.ndarray, target: Any) -> tuple[Network, Any, list, Any, Any]:
    """`Network.trace`'s first half: the float64 network, its output and records for one
    sample, and the target resolved (`"predicted"`: the argmax of this very output, so it
    costs no forward pass of its own) with its array y."""
    x = np.asarray(x, dtype=np.float64).reshape(1, *net.input_shape)
    if not all(p.dtype == np.float64 for lp in net.params for p in lp.values()):
        net = net.astype(np.float64)
    a, records = net.forward(x)
    if isinstance(target, str):  # PREDICTED
        target = int(np.argmax(a[0]))
    y = net.encode_target(target if np.ndim(target) else [target], 1)
    return net, a, records, target, y


def _trace(net: Network, x: np.ndarray, target: Any) -> tuple[Trace, Any]:
    """`Network.trace(x, target)` (every tensor recorded) and the target it used; with
    `"predicted"`, its two halves around resolving the target from the forward pass."""
    try:
        if not isinstance(target, str):
            return net.trace(x, target), target
        net, a, records, target, y = _forward(net, x, target)
        loss = net.backward(records, y)
    except SpecError as exc:
        raise spec_error(exc, ("body",)) from None
    return Trace(net.spec, loss, a[0], records, net.layers, y[0]), target


def _start(net: Network, x: np.ndarray, target: Any) -> tuple[float, np.ndarray, list[dict], Any]:
    """The loss, output and parameter gradients where a learning step starts, and the target
    used: the forward and backward pass as training runs it (no dC/dx of the input, a max-pool
    after relu routed in one pass: the same gradients bit for bit, `Network.backward`).
    Nothing of it is sent but the loss and output, so the full trace is not needed."""
    try:
        net, a, records, target, y = _forward(net, x, target)
        loss = net.backward(records, y, input_grad=False)
    except SpecError as exc:
        raise spec_error(exc, ("body",)) from None
    return loss, a[0], [rec.grads() for rec in records], target


def _step(
    net: Network, grads: list[dict], x: np.ndarray, target: Any, lr: float
) -> tuple[Network, Any]:
    """One SGD step with `grads`; the new network and its trace on the same sample. The step
    is `Network.sgd_step`'s, p - lr * dC/dp, without its deep copy of the parameters it then
    replaces."""
    net2 = _with_params(
        net,
        [{k: v - lr * g[k] for k, v in p.items()} for p, g in zip(net.params, grads, strict=True)],
    )
    if not all(np.isfinite(v).all() for p in net2.params for v in p.values()):
        raise ApiError(("body", "learning_rate"), OVERFLOW, "overflow")
    tr2, _ = _trace(net2, x, target)
    if not math.isfinite(tr2.loss):
        raise ApiError(("body", "learning_rate"), OVERFLOW, "overflow")
    return net2, tr2


def _updated(req: TraceRequest, net: Network, net2: Network) -> tuple[list[dict], list | None]:
    """`updated_params` (of `net2`, one step from `net`) as the request asks: every value, or
    the changes to the model's own parameters (`net`'s when it is the model itself); with
    the latter, also their `wire_key` (what the next step sends back)."""
    if req.updated_params_as != "changes":
        return net2.params, None
    own = getattr(net, "own_params", None) or net.params
    out, key = [], []
    for p, o in zip(net2.params, own, strict=True):
        b64 = {k: changes_b64(v, o[k]) for k, v in p.items()}
        out.append({k: changes_fragment(p[k].shape, *b64[k]) for k in p})
        key.append([(k, *b64[k]) for k in sorted(p)])
    return out, key


# Where a learning step ends is where the next one starts: the page's next Apply sends the
# parameters it was answered (as changes), the same input and target. The trace after a step
# has the gradients there already (the same bit for bit as `_start` computes: `Network.backward`
# with or without the input's gradient), so each process keeps the last few steps' end points,
# keyed by a hash of the model, the parameters as sent, the input and the target. Only a
# shortcut: a request that misses computes the same numbers; nothing depends on which worker
# answers. Bounded: `_ENDS_KEEP` entries of ~1 MB (the digit model's gradients).
_ENDS: OrderedDict[bytes, tuple[float, np.ndarray, list[dict], Any]] = OrderedDict()
_ENDS_KEEP = 4
_ENDS_LOCK = threading.Lock()


def _end_key(model: str, wire: list, x: np.ndarray, target: Any) -> bytes:
    h = hashlib.blake2b(digest_size=20)
    h.update(model.encode("utf-8") + b"\0")
    for layer in wire:
        h.update(b"\1")
        for k, changed, data in layer:
            for part in (k.encode("utf-8"), changed, data):
                h.update(part)
                h.update(b"\0")
    h.update(np.ascontiguousarray(x, dtype="<f8").tobytes())
    if isinstance(target, (str, int)):
        h.update(repr(target).encode("utf-8"))
    else:
        t = np.ascontiguousarray(target, dtype="<f8")
        h.update(repr(t.shape).encode("utf-8") + t.tobytes())
    return h.digest()


def _remember_end(model: str, wire: list, x: np.ndarray, target: Any, tr2: Trace) -> None:
    """Keep the end point of a step (trace `tr2` with the resolved `target`) for the next."""
    end = (tr2.loss, tr2.output, [rec.grads() for rec in tr2.records], target)
    keys = [_end_key(model, wire, x, target)]
    if tr2.prediction == target:  # "predicted" there resolves to the same class
        keys.append(_end_key(model, wire, x, PREDICTED))
    with _ENDS_LOCK:
        for key in keys:
            _ENDS[key] = end
            _ENDS.move_to_end(key)
        while len(_ENDS) > _ENDS_KEEP:
            _ENDS.popitem(last=False)


def _recall_end(key: bytes | None) -> tuple[float, np.ndarray, list[dict], Any] | None:
    if key is None:
        return None
    with _ENDS_LOCK:
        return _ENDS.get(key)


def trace_json(req: TraceRequest, s: Settings) -> bytes:
    """The trace's JSON: the selected layers' forward and backward tensors, unrounded; arrays
    as nested lists, or as base64 of their float64 bytes with `"encoding": "base64"`."""
    return b"".join(trace_pieces(req, s))


def trace_pieces(req: TraceRequest, s: Settings) -> list[bytes]:
    """`trace_json`'s bytes in pieces, as `dumps_trace_pieces` gives them: sent one after
    the other (`routes.FastJSONPost`), they are never joined into one buffer."""
    net, x, target, sel, image = _prepare(req, s)
    # non-finite numbers are checked explicitly (only those returned) and reported as a 422
    with np.errstate(all="ignore"):
        tr, target = _trace(net, x, target)
        out = apply(tr.to_dict(), sel, req.encoding, _softmax_ce(net))
        if req.learning_rate is not None:
            grads = [rec.grads() for rec in tr.records]
            net2, tr2 = _step(net, grads, x, target, req.learning_rate)
            if "updated_params" in sel.include:
                out["updated_params"] = _updated(req, net, net2)[0]
            out["loss_after"] = tr2.loss
    if image is not None:
        out["input"] = image
    return dumps_trace_pieces(out, req.encoding)


def learn_json(req: TraceRequest, s: Settings) -> bytes:
    """POST /api/learn: one SGD step in one round trip. The loss and prediction before and
    after, the updated parameters, and the selected parts of the trace *after* the step (what
    the page shows next); the trace before the step is the one the client already has."""
    net, x, target, sel, image = _prepare(req, s)
    lr = req.learning_rate
    if lr is None:
        raise ApiError(("body", "learning_rate"), "learning_rate is required", "missing")
    # the previous step's end point, when this request starts there (see _ENDS)
    sent = wire_key(req.params) if req.model is not None else None
    key = _end_key(req.model, sent, x, target) if sent is not None else None
    with np.errstate(all="ignore"):
        loss, output, grads, target = _recall_end(key) or _start(net, x, target)
        if not (math.isfinite(loss) and np.isfinite(output).all()):
            raise ApiError(("body",), OVERFLOW, "overflow")
        net2, tr2 = _step(net, grads, x, target, lr)
        after = apply(tr2.to_dict(), sel, req.encoding, _softmax_ce(net2))
    updated, wire = _updated(req, net, net2)
    if wire is not None:
        _remember_end(req.model, wire, x, target, tr2)
    out: dict[str, Any] = {
        "learning_rate": lr,
        "loss_before": loss,
        "loss_after": tr2.loss,
        "output_before": output,
    }
    if tr2.prediction is not None:
        out["prediction_before"] = int(np.argmax(output))
        out["prediction_after"] = tr2.prediction
    if "updated_params" in sel.include:
        out["updated_params"] = updated
    out["trace"] = orjson.Fragment(dumps_trace(after, req.encoding))
    if image is not None:
        out["input"] = image
    return ENCODINGS[req.encoding][1](out)
