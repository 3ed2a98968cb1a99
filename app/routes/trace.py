"""POST /api/trace: one sample's forward and backward pass, every tensor, unrounded."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Body

from .. import services
from ..schemas import CUSTOM_TRACE_EXAMPLE, TraceRequest, TraceResponse
from ..settings import Settings
from . import ApiRoute, JSONBytes, SettingsDep, errors, run_compute

router = APIRouter(prefix="/api", tags=["trace"], route_class=ApiRoute)


def _example() -> dict:
    """A real response, computed once from the custom-network request example."""
    try:
        return orjson.loads(services.trace_json(TraceRequest(**CUSTOM_TRACE_EXAMPLE), Settings()))
    except Exception:  # the docs must never stop the server from starting
        return {"network": {}, "loss": 0.0, "output": [0.0], "target": [0.0], "layers": []}


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
        "value": {"model": "digits", "input": [[0.0] * 28 for _ in range(28)], "target": 3},
    },
    "base64": {
        "summary": "Scenario 1 with every array as base64 of its float64 bytes",
        "value": {"scenario": "conv-dense", "encoding": "base64"},
    },
}


@router.post(
    "/trace",
    response_model=TraceResponse,
    summary="Trace forward and backward",
    responses={**errors(413, 422), 200: {"content": {"application/json": {"example": _example()}}}},
)
async def trace(
    req: Annotated[TraceRequest, Body(openapi_examples=_REQUEST_EXAMPLES)], s: SettingsDep
) -> JSONBytes:
    """Choose the network with exactly one of `model`, `scenario` or `network` (+ optional
    `params`, `seed`); give `input` and `target` (a scenario has its own). Returns the
    normalized `network`, `loss`, `output`, `target`, `prediction` (classifiers) and per layer
    `forward` {a_prev, z, a} and `backward` {dC_da, dC_dz, dC_db, dC_dw, dC_da_prev} (plus
    `argmax` for max-pool). With `learning_rate`: `updated_params` after one SGD step and
    `loss_after`, the loss with them on the same input. With `"encoding": "base64"` every
    array is `{"dtype": "float64" (argmax: "int64"), "shape": [...], "data": "<base64 of the
    little-endian C-order bytes>"}` instead of nested lists: the exact float64 values,
    cheaper to write and to parse."""
    return JSONBytes(await run_compute(services.trace_json, req, s))
