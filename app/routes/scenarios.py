"""GET /api/scenarios and /api/scenarios/{id}: the articles' worked examples."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from .. import services
from ..schemas import ScenarioDetail, ScenarioSummary
from . import ApiRoute, JSONBytes, errors

router = APIRouter(prefix="/api/scenarios", tags=["scenarios"], route_class=ApiRoute)

_SUMMARY_EXAMPLE = {
    "id": "conv-dense",
    "title": {"en": "One conv filter, then a dense output", "zh": "一个卷积核，后接一个全连接输出"},
    "note": {
        "en": "A 2×2 filter slides over the 3×3 input and gives four values; ...",
        "zh": "2×2 卷积核在 3×3 输入上滑动，得到 4 个值；...",
    },
}


@router.get(
    "",
    response_model=list[ScenarioSummary],
    summary="List the worked examples",
    responses={200: {"content": {"application/json": {"example": [_SUMMARY_EXAMPLE]}}}},
)
def list_scenarios() -> JSONBytes:
    """Each scenario's id, and its title and note in English (`en`) and Chinese (`zh`)."""
    return JSONBytes(services.scenarios_json())


@router.get(
    "/{id}",
    response_model=ScenarioDetail,
    summary="One worked example",
    responses={
        **errors(404),
        200: {
            "content": {
                "application/json": {
                    "example": {
                        **_SUMMARY_EXAMPLE,
                        "spec": {
                            "input_shape": [1, 3, 3],
                            "layers": [
                                {"type": "conv2d", "out_channels": 1, "kernel_size": 2},
                                {"type": "flatten"},
                                {"type": "dense", "units": 1},
                            ],
                            "loss": "mse",
                        },
                        "network": {"input_shape": [1, 3, 3], "layers": ["..."], "loss": "mse"},
                        "params": [
                            {"w": [[[[1, -1], [2, 0]]]], "b": [1]},
                            {},
                            {"w": [[1, -1, 1, 2]], "b": [-1]},
                        ],
                        "input": [[[1, 2, 0], [3, 1, 2], [0, 1, 3]]],
                        "target": [5],
                    }
                }
            }
        },
    },
)
def get_scenario(id: Annotated[str, Path(max_length=64, examples=["conv-dense"])]) -> JSONBytes:
    """The scenario's network spec (raw, and normalized with every shape), its explicit
    parameters, input and target: POST `{"scenario": id}` to /api/trace to run it."""
    return JSONBytes(services.scenario_json(id))
