"""The service layer: turns validated requests into engine calls and JSON bytes.

Handlers stay a few lines long; everything here is synchronous NumPy work (handlers run it in
the threadpool) and raises `ApiError` for anything the client can fix. Responses are orjson
bytes with the engine's float64 values unrounded.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
from pydantic import ConfigDict, Field, Strict, TypeAdapter, ValidationError

import cnncore
from cnncore import Network, SpecError, models, normalize_spec, preprocess

from .errors import ApiError, Loc
from .schemas import PredictRequest, TraceRequest
from .settings import Settings, app_version

_ORJSON_OPTS = orjson.OPT_SERIALIZE_NUMPY


def _default(obj: Any) -> Any:
    """orjson fallback: non-contiguous arrays and NumPy scalars."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=_ORJSON_OPTS, default=_default)


# Serialized parameters of the bundled models, which are cached and read-only: id(array) ->
# (array, its JSON). Holding the array keeps its id from being reused.
_PINNED: dict[int, tuple[np.ndarray, Any]] = {}
_HAS_FRAGMENT = hasattr(orjson, "Fragment")


def _pin_params(net: Network) -> None:
    if not _HAS_FRAGMENT:
        return
    for p in net.params:
        for a in p.values():
            if id(a) not in _PINNED:
                _PINNED[id(a)] = (a, orjson.Fragment(dumps(a)))


def dumps_trace(out: dict[str, Any]) -> bytes:
    """`dumps` for a trace, with the same bytes, faster: each array is serialized once even
    where the trace repeats it (a layer's a_prev is the previous layer's a; its dC_da_prev
    is the previous layer's dC_da), and a bundled model's parameters come pre-serialized."""
    if not _HAS_FRAGMENT:
        return dumps(out)
    memo: dict[tuple, Any] = {}

    def frag(a: Any) -> Any:
        if not isinstance(a, np.ndarray):
            return a
        hit = _PINNED.get(id(a))
        if hit is not None and hit[0] is a:
            return hit[1]
        key = (a.__array_interface__["data"][0], a.shape, a.strides, a.dtype.str)
        f = memo.get(key)
        if f is None:
            f = memo[key] = orjson.Fragment(dumps(a))
        return f

    out = dict(out)
    layers = []
    for layer in out["layers"]:
        layer = dict(layer)
        for part in ("params", "forward", "backward"):
            layer[part] = {k: frag(v) for k, v in layer[part].items()}
        if "argmax" in layer:
            layer["argmax"] = frag(layer["argmax"])
        layers.append(layer)
    out["layers"] = layers
    return dumps(out)


# ============================================================================ arrays
@lru_cache(maxsize=32)
def _numbers(depth: int, lo: float, hi: float) -> TypeAdapter:
    """A strict validator for a `depth`-deep nested list of numbers in [lo, hi]."""
    t: Any = Annotated[float, Strict(), Field(ge=lo, le=hi)]
    for _ in range(depth):
        t = list[t]
    return TypeAdapter(t, config=ConfigDict(allow_inf_nan=False))


def _depth(value: Any) -> int:
    d = 0
    while isinstance(value, list) and value:
        value, d = value[0], d + 1
    return d


def _check_shape(value: Any, shape: tuple[int, ...], loc: Loc, full: tuple[int, ...]) -> None:
    if not isinstance(value, list):
        raise ApiError(
            loc,
            f"must be a list of {shape[0]} (the whole array shaped "
            f"{list(full)}), got {type(value).__name__}",
            "shape",
        )
    if len(value) != shape[0]:
        raise ApiError(
            loc,
            f"has {len(value)} entries but needs {shape[0]} (the whole array "
            f"must be shaped {list(full)}; rows of different lengths are not "
            "allowed)",
            "shape",
        )
    if len(shape) > 1:
        for i, v in enumerate(value):
            _check_shape(v, shape[1:], (*loc, i), full)


def to_array(value: Any, shape: tuple[int, ...], loc: Loc, lo: float, hi: float) -> np.ndarray:
    """A JSON nested list -> float64 array of exactly `shape`; every element a finite number
    in [lo, hi] (not a bool, not a string). Errors name the element's path."""
    shape = tuple(int(s) for s in shape)
    if shape == ():
        value, shape, scalar = [value], (1,), True
    else:
        scalar = False
    _check_shape(value, shape, loc, shape)
    try:
        clean = _numbers(len(shape), lo, hi).validate_python(value)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        raise ApiError((*loc, *err["loc"]), err["msg"], err["type"]) from None
    arr = np.array(clean, dtype=np.float64)
    return arr.reshape(()) if scalar else arr


# ============================================================================ models
def _models_dir(settings: Settings) -> Path:
    return settings.models_dir or models.MODELS_DIR


def model_names(settings: Settings) -> list[str]:
    if settings.models_dir is None:
        return models.available()
    d = settings.models_dir
    return sorted(p.stem for p in d.glob("*.json") if p.with_suffix(".npz").exists())


@lru_cache(maxsize=16)
def _load_from(directory: Path, name: str) -> tuple[Network, dict]:
    return models.load_file(directory / name)


def load_model(settings: Settings, name: str, loc: Loc) -> tuple[Network, dict]:
    names = model_names(settings)
    if name not in names:
        raise ApiError(
            loc,
            f"unknown model {name!r}; available: "
            f"{', '.join(names) or 'none (no model is installed yet)'}",
            "unknown_model",
            404 if loc and loc[0] == "path" else 422,
        )
    if settings.models_dir is None:
        return models.load(name)
    return _load_from(settings.models_dir, name)


def _model_summary(name: str, net: Network, meta: dict) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name}
    out.update({k: v for k, v in meta.items() if k not in ("name", "network", "params")})
    out.setdefault("description", None)
    out.setdefault("dataset", None)
    out.setdefault("test_accuracy", None)
    out["network"] = net.spec
    return out


def models_json(settings: Settings) -> bytes:
    items = []
    for name in model_names(settings):
        net, meta = load_model(settings, name, ("path", "name"))
        items.append(_model_summary(name, net, meta))
    return dumps(items)


def model_json(settings: Settings, name: str) -> bytes:
    net, meta = load_model(settings, name, ("path", "name"))
    out = _model_summary(name, net, meta)
    out["params"] = net.params
    return dumps(out)


# ============================================================================ scenarios
def _scenarios() -> dict[str, Any]:
    if importlib.util.find_spec("cnncore.scenarios") is None:
        return {}
    return importlib.import_module("cnncore.scenarios").SCENARIOS


def get_scenario(sid: str, loc: Loc) -> Any:
    scenarios = _scenarios()
    if sid not in scenarios:
        raise ApiError(
            loc,
            f"unknown scenario {sid!r}; available: {', '.join(scenarios) or 'none'}",
            "unknown_scenario",
            404 if loc and loc[0] == "path" else 422,
        )
    return scenarios[sid]


@lru_cache(maxsize=64)
def _scenario_network(sid: str) -> Network:
    return _scenarios()[sid].network()


def scenarios_json() -> bytes:
    return dumps([{"id": s.id, "title": s.title, "note": s.note} for s in _scenarios().values()])


def scenario_json(sid: str) -> bytes:
    s = get_scenario(sid, ("path", "id"))
    out = dict(s.to_dict()) if hasattr(s, "to_dict") else {}
    for key in ("id", "title", "note", "spec", "params", "input", "target"):
        out.setdefault(key, getattr(s, key))
    out["network"] = _scenario_network(sid).spec
    return dumps(out)


# ============================================================================ trace
def _spec_error(exc: SpecError, prefix: Loc) -> ApiError:
    loc = tuple(exc.location)
    if loc and loc[0] in ("params", "target", "input"):
        prefix = ("body",)
    return ApiError((*prefix, *loc), str(exc), "spec_error")


def _trace_values(spec: dict, learning_rate: bool) -> int:
    """How many numbers a trace of this spec returns (what the response-size cap counts)."""
    total = 2 * math.prod(spec["output_shape"])
    for layer in spec["layers"]:
        n_in, n_out = math.prod(layer["input_shape"]), math.prod(layer["output_shape"])
        total += 2 * n_in + 4 * n_out + (3 if learning_rate else 2) * layer["param_count"]
        if layer["type"] == "maxpool2d":
            total += 2 * n_out
    return total


def _check_caps(spec: dict, s: Settings, learning_rate: bool) -> None:
    loc = ("body", "network")
    cap = s.max_input_shape
    shape = spec["input_shape"]
    if any(v > c for v, c in zip(shape, cap, strict=True)):
        raise ApiError(
            (*loc, "input_shape"),
            f"input_shape {shape} is over the cap: at most "
            f"{cap[0]} channels and {cap[1]}×{cap[2]} pixels",
            "cap",
        )
    for i, layer in enumerate(spec["layers"]):
        c = layer.get("out_channels")
        if c is not None and c > s.max_channels:
            raise ApiError(
                (*loc, "layers", i, "out_channels"),
                f"layer {i} (conv2d): out_channels {c} is over the cap of {s.max_channels}",
                "cap",
            )
    madds = sum(layer["multiply_adds"] for layer in spec["layers"])
    if madds > s.max_multiply_adds:
        raise ApiError(
            loc,
            f"the network needs {madds:,} multiply-adds per sample; the cap "
            f"is {s.max_multiply_adds:,}: use fewer or smaller layers",
            "cap",
        )
    values = _trace_values(spec, learning_rate)
    if values > s.max_trace_values:
        raise ApiError(
            loc,
            f"a trace of this network holds {values:,} numbers; the cap is "
            f"{s.max_trace_values:,}: use fewer channels, units or pixels",
            "cap",
        )


def _custom_network(req: TraceRequest, s: Settings) -> Network:
    raw = req.network
    layers = raw.get("layers") if isinstance(raw, dict) else None
    if isinstance(layers, list) and len(layers) > s.max_layers:
        raise ApiError(
            ("body", "network", "layers"),
            f"{len(layers)} layers is over the cap of {s.max_layers}",
            "cap",
        )
    try:
        spec = normalize_spec(raw)
    except SpecError as exc:
        raise _spec_error(exc, ("body", "network")) from None
    _check_caps(spec, s, req.learning_rate is not None)
    net = Network.from_spec(spec, seed=req.seed)
    if req.params is not None:
        if len(req.params) != len(net.layers):
            raise ApiError(
                ("body", "params"),
                f"params must have one entry per layer "
                f"({len(net.layers)}); use {{}} for layers without parameters",
                "shape",
            )
        params = []
        for i, (layer, p) in enumerate(zip(net.layers, req.params, strict=True)):
            if set(p) != set(layer.params):
                want = sorted(layer.params) or "nothing: {}"
                raise ApiError(
                    ("body", "params", i),
                    f"layer {i} ({layer.type}) takes {want}, got {sorted(p)}",
                    "params",
                )
            params.append(
                {
                    k: to_array(
                        p[k], ref.shape, ("body", "params", i, k), -s.max_abs_value, s.max_abs_value
                    )
                    for k, ref in layer.params.items()
                }
            )
        net.load_params(params)
    return net


def _input(value: Any, net: Network, s: Settings) -> np.ndarray:
    shape = net.input_shape
    if shape[0] == 1 and _depth(value) == 2:
        shape = shape[1:]
    return to_array(value, shape, ("body", "input"), -s.max_abs_value, s.max_abs_value)


def _target(value: Any, net: Network, s: Settings) -> Any:
    loc = ("body", "target")
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
        return to_array(value, (), loc, -s.max_abs_value, s.max_abs_value).reshape(out_shape)
    return to_array(value, out_shape, loc, -s.max_abs_value, s.max_abs_value)


def _all_finite(*arrays: Any) -> bool:
    return all(a is None or bool(np.isfinite(a).all()) for a in arrays)


_OVERFLOW = (
    "the computation overflowed (a value became infinite or NaN); use smaller input "
    "or parameter values, or a smaller learning_rate"
)


def _trace_finite(tr: Any) -> bool:
    if not math.isfinite(tr.loss) or not _all_finite(tr.output):
        return False
    return all(
        _all_finite(r.a_prev, r.z, r.a, r.dC_da, r.dC_dz, r.dC_dw, r.dC_db, r.dC_da_prev)
        for r in tr.records
    )


def choose(req: TraceRequest) -> str:
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


def trace(req: TraceRequest, s: Settings) -> bytes:
    kind = choose(req)
    input_value, target_value = req.input, req.target
    if kind == "model":
        net, _ = load_model(s, req.model, ("body", "model"))
        _pin_params(net)
    elif kind == "scenario":
        sc = get_scenario(req.scenario, ("body", "scenario"))
        net = _scenario_network(req.scenario)
        input_value = sc.input if input_value is None else input_value
        target_value = sc.target if target_value is None else target_value
    else:
        net = _custom_network(req, s)
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
    with np.errstate(all="ignore"):
        try:
            tr = net.trace(x, target)
        except SpecError as exc:
            raise _spec_error(exc, ("body",)) from None
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
    return dumps_trace(out)


# ============================================================================ predict
def _classifier(name: str, s: Settings, loc: Loc) -> Network:
    net, _ = load_model(s, name, loc)
    if net.input_shape != (1, preprocess.SIZE, preprocess.SIZE) or not net.is_classifier:
        raise ApiError(loc, f"model {name!r} is not a 28×28 image classifier", "unknown_model")
    return net


def _only_numbers(raw: bytes, payload: dict) -> bool:
    """True when the JSON text can hold nothing but numbers and lists besides the top-level
    keys and string values: no true/false/null and no other quotes (orjson already refused
    NaN and Infinity). A scan of the bytes at memchr speed, so a valid drawing skips the
    per-element validation; anything else takes the strict path, which names the element."""
    quotes = 2 * len(payload) + 2 * sum(isinstance(v, str) for v in payload.values())
    return (
        raw.count(b'"') == quotes
        and b"true" not in raw
        and b"false" not in raw
        and b"null" not in raw
    )


def _image(value: Any, s: Settings, fast: bool = False) -> np.ndarray:
    loc = ("body", "image")
    if not isinstance(value, list) or not value or not isinstance(value[0], list):
        raise ApiError(
            loc, "must be a non-empty list of rows (H×W grayscale, values in [0, 1])", "shape"
        )
    h, w = len(value), len(value[0])
    side = s.max_image_side
    if not (1 <= h <= side and 1 <= w <= side):
        raise ApiError(loc, f"image is {h}×{w}; it must be 1×1 up to {side}×{side}", "cap")
    if fast:
        try:
            arr = np.array(value, dtype=np.float64)
        except (ValueError, TypeError):
            arr = None
        if arr is not None and arr.shape == (h, w) and arr.min() >= 0.0 and arr.max() <= 1.0:
            return arr
    return to_array(value, (h, w), loc, 0.0, 1.0)


def parse_predict(raw: bytes) -> tuple[PredictRequest, bool]:
    """Body bytes -> the validated request, and whether the image may take the fast path."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            ("body",),
            f"the body is not valid JSON ({exc}); NaN and Infinity are not JSON",
            "json_invalid",
        ) from None
    try:
        req = PredictRequest.model_validate(payload)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_input=False)[0]
        raise ApiError(("body", *err["loc"]), err["msg"], err["type"]) from None
    return req, _only_numbers(raw, payload)


def _predict(net: Network, x28: np.ndarray) -> bytes:
    with np.errstate(all="ignore"):
        probs = net.predict(x28.reshape(1, 1, *x28.shape))[0]
    return dumps({"input": x28, "probabilities": probs, "prediction": int(np.argmax(probs))})


def predict_json(raw: bytes, s: Settings) -> bytes:
    """A JSON body {"model", "image"} -> the prediction's JSON."""
    req, fast = parse_predict(raw)
    net = _classifier(req.model, s, ("body", "model"))
    x28 = preprocess.to_mnist(_image(req.image, s, fast))
    return _predict(net, x28)


def predict_upload(model: str, data: bytes, s: Settings) -> bytes:
    net = _classifier(model, s, ("body", "model"))
    side = s.max_image_side
    try:
        ink = preprocess.image_from_bytes(data, max_pixels=side * side)
    except ValueError as exc:
        raise ApiError(("body", "file"), str(exc), "image") from None
    if ink.shape[0] > side or ink.shape[1] > side:
        raise ApiError(
            ("body", "file"),
            f"image is {ink.shape[0]}×{ink.shape[1]}; at most {side}×{side}",
            "cap",
        )
    return _predict(net, preprocess.to_mnist(ink))


# ============================================================================ health
def health(s: Settings) -> dict[str, Any]:
    return {
        "status": "ok",
        "version": app_version(),
        "engine": cnncore.__version__,
        "models": model_names(s),
    }
