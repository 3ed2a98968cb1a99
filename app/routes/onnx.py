"""POST /api/models (import an .onnx) and GET /api/models/{name}/onnx (export one)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response

from ..errors import ApiError
from ..services import onnx_export, onnx_import
from ..settings import Settings
from . import ApiRoute, JSONBytes, SettingsDep, errors, multipart_file, run_compute

router = APIRouter(prefix="/api/models", tags=["models"], route_class=ApiRoute)

_REQUEST_BODY = {
    "required": True,
    "content": multipart_file("an .onnx model (at most 3 MiB, weights inside)"),
}
_EXAMPLE = {
    "name": "my_net",
    "description": "Imported from my_net.onnx (pytorch 2.13.0)",
    "dataset": None,
    "test_accuracy": None,
    "network": {"input_shape": [1, 28, 28], "layers": ["..."], "loss": "cross_entropy"},
    "params": [{"w": [[[[0.1, "..."]]]], "b": [0.0, "..."]}, {}, "..."],
    "report": {
        "format": "onnx",
        "ir_version": 10,
        "opset": 20,
        "producer": "pytorch 2.13.0",
        "input": {"name": "x", "shape": [1, 1, 28, 28]},
        "output": {"name": "softmax", "shape": [1, 10]},
        "nodes": [
            {"index": 0, "name": "node_Conv_0", "op_type": "Conv", "layer": 0, "as": "conv2d"},
            "...",
        ],
        "notes": [],
        "layers": 7,
        "param_count": 127530,
    },
}


async def _read_upload(request: Request, s: Settings) -> tuple[str | None, bytes]:
    ctype = request.headers.get("content-type", "").lower()
    if not ctype.startswith("multipart/form-data"):
        raise ApiError(
            ("header", "content-type"),
            "send multipart/form-data with the .onnx file in the field 'file'",
            "unsupported_media_type",
            415,
        )
    async with request.form(max_files=1, max_fields=2) as form:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise ApiError(
                ("body", "file"), "an .onnx file field named 'file' is required", "missing"
            )
        data = await file.read(s.max_onnx_bytes + 1)
        filename = file.filename
    if len(data) > s.max_onnx_bytes:
        raise ApiError(
            ("body", "file"),
            f"the file is larger than {s.max_onnx_bytes:,} bytes",
            "too_large",
            413,
        )
    return filename, data


@router.post(
    "",
    summary="Import an ONNX model",
    openapi_extra={"requestBody": _REQUEST_BODY},
    responses={
        **errors(413, 415, 422),
        200: {"content": {"application/json": {"example": _EXAMPLE}}},
    },
)
async def import_onnx(request: Request, s: SettingsDep) -> JSONBytes:
    """Upload an `.onnx` file (multipart field `file`). The graph is checked and converted to
    a cnnviz network: the answer has the format of `GET /api/models/{name}` (`network`,
    `params` in PyTorch's layout) plus `report`: every node, the layer it became and notes
    (folded BatchNormalization, moved activations). Stateless: nothing is kept; trace it with
    `POST /api/trace {"network", "params", "input", "target"}`. What cannot be imported is a
    4xx naming the node, its op type and why."""
    filename, data = await _read_upload(request, s)
    return JSONBytes(await run_compute(onnx_import.import_json, data, filename, s))


@router.get(
    "/{name}/onnx",
    summary="Export a model as ONNX",
    response_class=Response,
    responses={**errors(404), 200: {"content": {"application/octet-stream": {}}}},
)
async def export_onnx(
    name: Annotated[str, Path(max_length=64, examples=["digits"])], s: SettingsDep
) -> Response:
    """The bundled model as an ONNX file (opset 17, float32 weights, input `input` of shape
    [batch, C, H, W], output `output`), checked with onnx.checker; onnxruntime computes the
    engine's numbers with it."""
    data = await run_compute(onnx_export.model_onnx, s, name)
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"content-disposition": f'attachment; filename="{name}.onnx"'},
    )
