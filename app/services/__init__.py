"""The service layer: validated requests -> engine calls -> JSON bytes.

Route handlers stay a few lines long and call only what is exported here. Everything is
synchronous NumPy work (handlers run it off the event loop) and raises `ApiError` for
anything the client can fix. Responses are orjson bytes with the engine's float64 values
unrounded.

    serialize   orjson dumps; the trace serializer
    validate    nested lists -> checked float64 arrays
    catalog     bundled models, scenarios, health
    custom      a client's own network: spec, caps, parameters
    selection   what a trace response carries (include, layers, dedupe, norms)
    trace       POST /api/trace, POST /api/learn
    predict     POST /api/predict
"""

from .catalog import (
    health,
    model_json,
    model_json_etag,
    models_json,
    scenario_json,
    scenarios_json,
)
from .predict import predict_json, predict_upload
from .trace import learn_json, trace_json, trace_pieces

__all__ = [
    "health",
    "learn_json",
    "model_json",
    "model_json_etag",
    "models_json",
    "predict_json",
    "predict_upload",
    "scenario_json",
    "scenarios_json",
    "trace_json",
    "trace_pieces",
]
