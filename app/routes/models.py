"""GET /api/models and /api/models/{name}: the bundled, trained networks."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from .. import services
from ..caching import matches as etag_matches
from ..schemas import ModelDetail, ModelSummary
from . import ApiRoute, JSONBytes, SettingsDep, errors

router = APIRouter(prefix="/api/models", tags=["models"], route_class=ApiRoute)

_SPEC_EXAMPLE = {
    "input_shape": [1, 28, 28],
    "layers": [
        {
            "type": "conv2d",
            "out_channels": 8,
            "kernel_size": [5, 5],
            "stride": [1, 1],
            "padding": [0, 0],
            "in_channels": 1,
            "activation": "relu",
            "input_shape": [1, 28, 28],
            "output_shape": [8, 24, 24],
            "param_count": 208,
            "multiply_adds": 115200,
        },
        "...",
    ],
    "loss": "cross_entropy",
    "output_shape": [10],
    "param_count": 5994,
}
_SUMMARY_EXAMPLE = {
    "name": "digits",
    "description": "LeNet-style digit classifier",
    "dataset": "MNIST",
    "test_accuracy": 0.98,
    "network": _SPEC_EXAMPLE,
}


@router.get(
    "",
    response_model=list[ModelSummary],
    summary="List the bundled models",
    responses={200: {"content": {"application/json": {"example": [_SUMMARY_EXAMPLE]}}}},
)
def list_models(s: SettingsDep) -> JSONBytes:
    """Each bundled model: name, description, dataset, measured test accuracy, and its network
    spec with every layer's input/output shape and parameter count."""
    return JSONBytes(services.models_json(s))


@router.get(
    "/{name}",
    response_model=ModelDetail,
    summary="One model, with its parameters",
    responses={
        **errors(404),
        200: {
            "content": {
                "application/json": {
                    "example": {
                        **_SUMMARY_EXAMPLE,
                        "params": [{"w": [[[[0.1, "..."]]]], "b": [0.0, "..."]}, {}, "..."],
                    }
                }
            }
        },
    },
)
def get_model(
    name: Annotated[str, Path(max_length=64, examples=["digits"])],
    s: SettingsDep,
    request: Request,
    encoding: Annotated[
        Literal["json", "base64"],
        Query(
            description="'base64': each parameter array as {dtype, shape, data} (exact "
            "float64, about half the bytes of JSON once gzipped), as in POST /api/trace"
        ),
    ] = "json",
) -> Response:
    """As in the list, plus `params`: per layer `{"w", "b"}` in PyTorch's layout (conv w is
    (out_channels, in_channels, kH, kW), dense w is (units, in_features)); `{}` for layers
    without parameters.

    Cacheable: the answer has an `ETag` and `Cache-Control: no-cache`; a request with
    `If-None-Match` of the current ETag gets `304 Not Modified` without a body, so the
    browser downloads the parameters once."""
    body, etag = services.model_json_etag(s, name, encoding)
    headers = {"ETag": etag, "Cache-Control": CACHE}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return JSONBytes(body, headers=headers)


CACHE = "no-cache"
