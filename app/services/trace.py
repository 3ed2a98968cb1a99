"""POST /api/trace: choose the network, check input and target, run the engine's trace,
refuse overflow, serialize every tensor."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnncore import Network, SpecError

from ..errors import ApiError
from ..schemas import TraceRequest
from ..settings import Settings
from .catalog import get_scenario, load_model, scenario_network
from .custom import custom_network, spec_error
from .serialize import dumps_trace, pin_params
from .validate import depth, to_array

_OVERFLOW = (
    "the computation overflowed (a value became infinite or NaN); use smaller input "
    "or parameter values, or a smaller learning_rate"
)


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
    if kind != "network":
        for extra in ("params", "seed"):
            if extra in req.model_fields_set:
                raise ApiError(
                    ("body", extra), f"'{extra}' is only used with 'network'", "not_allowed"
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


def _all_finite(*arrays: Any) -> bool:
    return all(a is None or bool(np.isfinite(a).all()) for a in arrays)


def _trace_finite(tr: Any) -> bool:
    if not math.isfinite(tr.loss) or not _all_finite(tr.output):
        return False
    # a layer's a_prev and dC_da_prev are the neighbouring layer's a and dC_da: check once
    arrays = {
        id(a): a
        for r in tr.records
        for a in (r.a_prev, r.z, r.a, r.dC_da, r.dC_dz, r.dC_dw, r.dC_db, r.dC_da_prev)
    }
    return _all_finite(*arrays.values())


def _network(req: TraceRequest, s: Settings) -> tuple[Network, Any, Any]:
    """The network, input and target the request asks for (a scenario fills in its own)."""
    kind = _choose(req)
    if kind == "model":
        net, _ = load_model(s, req.model, ("body", "model"))
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


def trace_json(req: TraceRequest, s: Settings) -> bytes:
    """The trace's JSON: every layer's forward and backward tensors, unrounded; arrays as
    nested lists, or as base64 of their float64 bytes with `"encoding": "base64"`."""
    net, input_value, target_value = _network(req, s)
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
    x = _input(input_value, net, s)
    target = _target(target_value, net, s)
    # overflow is checked explicitly below, and reported as a 422 naming the cause
    with np.errstate(all="ignore"):
        try:
            tr = net.trace(x, target)
        except SpecError as exc:
            raise spec_error(exc, ("body",)) from None
        if not _trace_finite(tr):
            raise ApiError(("body",), _OVERFLOW, "overflow")
        out = tr.to_dict()
        if req.learning_rate is not None:
            net2 = net.sgd_step([rec.grads() for rec in tr.records], req.learning_rate)
            loss_after = net2.trace(x, target).loss
            if not (
                math.isfinite(loss_after)
                and _all_finite(*(v for p in net2.params for v in p.values()))
            ):
                raise ApiError(("body", "learning_rate"), _OVERFLOW, "overflow")
            out["updated_params"] = net2.params
            out["loss_after"] = loss_after
    return dumps_trace(out, req.encoding)
