"""POST /api/predict: a drawing or a PNG/JPEG -> the MNIST-like input, probabilities, class."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile

from .. import services
from ..errors import ApiError
from ..schemas import PredictRequest, PredictResponse
from ..settings import MAX_IMAGE_SIDE, Settings
from . import ApiRoute, JSONBytes, SettingsDep, errors, multipart_file, run_compute

router = APIRouter(prefix="/api", tags=["predict"], route_class=ApiRoute)

_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": PredictRequest.model_json_schema()},
        **multipart_file(
            f"a PNG or JPEG, at most {MAX_IMAGE_SIDE}×{MAX_IMAGE_SIDE} pixels",
            model={"type": "string", "default": "digits", "maxLength": 64},
        ),
    },
}
_EXAMPLE = {
    "input": [[0.0] * 28 for _ in range(28)],
    "probabilities": [0.01, 0.9, 0.01, 0.01, 0.01, 0.01, 0.01, 0.02, 0.01, 0.01],
    "prediction": 1,
}


async def _upload(request: Request, s: Settings) -> tuple[str, bytes]:
    """The multipart form's `model` and `file`, the file read up to the upload cap."""
    async with request.form(max_files=1, max_fields=4) as form:
        model, file = form.get("model", "digits"), form.get("file")
        if not isinstance(model, str):
            raise ApiError(("body", "model"), "must be a text field", "type")
        if not isinstance(file, UploadFile):
            raise ApiError(
                ("body", "file"), "a PNG or JPEG file field named 'file' is required", "missing"
            )
        data = await file.read(s.max_upload_bytes + 1)
    if len(data) > s.max_upload_bytes:
        raise ApiError(
            ("body", "file"),
            f"the upload is larger than {s.max_upload_bytes} bytes",
            "too_large",
            413,
        )
    return model, data


@router.post(
    "/predict",
    response_model=PredictResponse,
    summary="Classify a drawing or a picture",
    openapi_extra={"requestBody": _REQUEST_BODY},
    responses={
        **errors(413, 415, 422),
        200: {"content": {"application/json": {"example": _EXAMPLE}}},
    },
)
async def predict(request: Request, s: SettingsDep) -> JSONBytes:
    """JSON `{"model": "digits", "image": H×W values in [0, 1], ink = 1}` (each side up to
    Settings.max_image_side), or a multipart upload of a PNG/JPEG in field `file`. The server
    makes it an MNIST-like 28×28 (crop, scale to 20 px, centre of mass at the centre) and
    returns that `input`, the 10 `probabilities` and the `prediction`."""
    ctype = request.headers.get("content-type", "application/json").lower()
    if ctype.startswith("multipart/form-data"):
        model, data = await _upload(request, s)
        return JSONBytes(await run_compute(services.predict_upload, model, data, s))
    if not (ctype.startswith("application/json") or "+json" in ctype.split(";")[0]):
        raise ApiError(
            ("header", "content-type"),
            "send application/json or multipart/form-data",
            "unsupported_media_type",
            415,
        )
    raw = await request.body()
    return JSONBytes(await run_compute(services.predict_json, raw, s))
