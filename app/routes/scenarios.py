"""GET /api/scenarios and /api/scenarios/{id}: the articles' worked examples."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from cnncore.scenarios import get

from .. import services
from ..schemas import ScenarioDetail, ScenarioSummary
from . import ApiRoute, JSONBytes, errors

router = APIRouter(prefix="/api/scenarios", tags=["scenarios"], route_class=ApiRoute)

# The OpenAPI examples are the first scenario itself, so the docs can never drift from it.
_EXAMPLE = get("conv-dense").to_dict()
_SUMMARY_EXAMPLE = {k: _EXAMPLE[k] for k in ("id", "title", "note")}
_DETAIL_EXAMPLE = {
    **_EXAMPLE,
    "network": {"input_shape": _EXAMPLE["spec"]["input_shape"], "layers": ["..."], "loss": "mse"},
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
                    "example": _DETAIL_EXAMPLE,
                }
            }
        },
    },
)
def get_scenario(id: Annotated[str, Path(max_length=64, examples=["conv-dense"])]) -> JSONBytes:
    """The scenario's network spec (raw, and normalized with every shape), its explicit
    parameters, input and target: POST `{"scenario": id}` to /api/trace to run it."""
    return JSONBytes(services.scenario_json(id))
