"""POST /api/trace: one sample's forward and backward pass, every tensor (or the selected
ones), unrounded. POST /api/learn: one SGD step in one round trip."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body

from .. import services
from ..schemas import CUSTOM_TRACE_EXAMPLE, LearnRequest, LearnResponse, TraceRequest, TraceResponse
from ..settings import Settings
from . import ApiRoute, FastJSONPost, JSONBytes, SettingsDep, errors, run_compute

router = APIRouter(prefix="/api", tags=["trace"], route_class=ApiRoute)


def fill_examples(schema: dict[str, Any], settings: Settings) -> None:
    """Real responses as the OpenAPI examples, computed when the schema is first asked for
    (never at import time, never stopping the server from starting)."""
    for path, body in (
        ("/api/trace", CUSTOM_TRACE_EXAMPLE),
        ("/api/learn", _LEARN_EXAMPLES["custom"]["value"]),
    ):
        try:
            fn = services.trace_json if path == "/api/trace" else services.learn_json
            model = TraceRequest if path == "/api/trace" else LearnRequest
            example = orjson.loads(fn(model(**body), settings))
        except Exception:  # an example must never break the docs
            continue
        op = schema.get("paths", {}).get(path, {}).get("post", {})
        content = op.get("responses", {}).get("200", {}).setdefault("content", {})
        content.setdefault("application/json", {})["example"] = example


def fast_routes(s: Settings) -> dict[str, FastJSONPost]:
    """The routes below and POST /api/predict, served without FastAPI's request machinery
    when the request is a plain JSON one (`FastJSONPost`; the same model, service and
    answers)."""
    return {
        "/api/trace": FastJSONPost(TraceRequest, services.trace_pieces, s),
        "/api/learn": FastJSONPost(LearnRequest, services.learn_json, s),
        # POST /api/predict's JSON drawings (routes/predict.py: the service parses the body)
        "/api/predict": FastJSONPost(None, services.predict_json, s),
    }


_BLANK = [[0.0] * 28 for _ in range(28)]
_REQUEST_EXAMPLES = {
    "scenario": {
        "summary": "Scenario 1 (a gradient you can check by hand)",
        "value": {"scenario": "conv-dense"},
    },
    "custom": {
        "summary": "Your own network, parameters, input and target, one SGD step",
        "value": CUSTOM_TRACE_EXAMPLE,
    },
    "model": {
        "summary": "The digit model on a blank 28×28 input, target class 3",
        "value": {"model": "digits", "input": _BLANK, "target": 3},
    },
    "base64": {
        "summary": "Scenario 1 with every array as base64 of its float64 bytes",
        "value": {"scenario": "conv-dense", "encoding": "base64"},
    },
    "overview": {
        "summary": "What the page asks for: every layer's a and dC_da, layer 2 in full, "
        "nothing twice, no parameters (it has them from GET /api/models/digits)",
        "value": {
            "model": "digits",
            "input": _BLANK,
            "target": 3,
            "include": ["forward", "backward", "argmax"],
            "layers": [2],
            "every_layer": ["a", "dC_da"],
            "dedupe": True,
            "encoding": "base64",
        },
    },
    "norms": {
        "summary": "Only the loss, output and each layer's norms (a gradient-size strip)",
        "value": {"scenario": "conv-dense", "include": []},
    },
    "drawing": {
        "summary": "A drawing (as POST /api/predict takes it) traced in one request, the "
        "target being the predicted class; the answer's `input` is the 28×28 it became",
        "value": {
            "model": "digits",
            "image": [
                [1.0 if 2 <= j <= 3 and 1 <= i <= 6 else 0.0 for j in range(6)] for i in range(8)
            ],
            "target": "predicted",
            "include": ["forward", "backward", "argmax"],
            "dedupe": True,
            "encoding": "base64",
        },
    },
}

_LEARN_EXAMPLES = {
    "custom": {
        "summary": "Your own network: one SGD step, everything after it",
        "value": CUSTOM_TRACE_EXAMPLE,
    },
    "model": {
        "summary": "The digit model: one step; the trace after it without parameters, "
        "deduplicated, as base64",
        "value": {
            "model": "digits",
            "input": _BLANK,
            "target": 3,
            "learning_rate": 0.05,
            "include": ["forward", "backward", "argmax", "updated_params"],
            "every_layer": ["a", "dC_da"],
            "layers": [0],
            "dedupe": True,
            "encoding": "base64",
        },
    },
}


@router.post(
    "/trace",
    response_model=TraceResponse,
    summary="Trace forward and backward",
    responses={**errors(413, 422)},
)
async def trace(
    req: Annotated[TraceRequest, Body(openapi_examples=_REQUEST_EXAMPLES)], s: SettingsDep
) -> JSONBytes:
    """Choose the network with exactly one of `model`, `scenario` or `network` (+ optional
    `params`, `seed`); give `input` and `target` (a scenario has its own), or instead of
    `input` a drawing as `image` (networks taking 1×28×28: made the 28×28 /api/predict makes,
    returned as `input`), and `"target": "predicted"` for the class the network predicts
    (classifiers). Returns the
    normalized `network`, `loss`, `output`, `target`, `prediction` (classifiers) and per layer
    `forward` {a_prev, z, a} and `backward` {dC_da, dC_dz, dC_db, dC_dw, dC_da_prev} (plus
    `argmax` for max-pool), and `norms` {a, dC_da, dC_dw}. With `learning_rate`:
    `updated_params` after one SGD step and `loss_after`, the loss with them on the same input.
    With `"encoding": "base64"` every array is `{"dtype": "float64" (argmax: "int64"),
    "shape": [...], "data": "<base64 of the little-endian C-order bytes>"}` instead of nested
    lists: the exact float64 values, cheaper to write and to parse.

    Without `include`, `layers`, `every_layer`, `exclude` or `dedupe` the trace is complete and
    self-contained; with them it carries only what the caller asks for (see docs/api.md)."""
    return JSONBytes(await run_compute(services.trace_json, req, s))


@router.post(
    "/learn",
    response_model=LearnResponse,
    summary="Apply one SGD step (one round trip)",
    responses={**errors(413, 415, 422)},
)
async def learn(
    req: Annotated[LearnRequest, Body(openapi_examples=_LEARN_EXAMPLES)], s: SettingsDep
) -> JSONBytes:
    """The body of POST /api/trace with a required `learning_rate`. One SGD step from the
    parameters given (a named model's own, or `params`, which may be the base64-encoded
    `updated_params` of the previous answer, exact). Returns `loss_before`, `loss_after`,
    `output_before`, `prediction_before`/`prediction_after` (classifiers), `updated_params`
    (unless `include` leaves them out) and `trace`: the trace *after* the step, cut to the
    selection (`include`, `layers`, `every_layer`, `exclude`, `dedupe`) like POST /api/trace.
    The body may be sent gzip-compressed (`Content-Encoding: gzip`)."""
    return JSONBytes(await run_compute(services.learn_json, req, s))
