"""Request and response schemas, named by role.

Requests are validated by these models (strict: no "1" for 1, no true for 1, no NaN).
Nested number arrays (inputs, parameters, images) are typed loosely here and checked against
the shape the network needs in the service layer, which knows that shape.

Large responses (traces, model parameters) are serialized directly with orjson; their models
here document the format in the OpenAPI schema and are not used to validate the response.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, WithJsonSchema

# ----------------------------------------------------------------------------- JSON schemas
_NUMBER_ARRAY_SCHEMA: dict[str, Any] = {
    "type": "array",
    "description": "A nested array of numbers (row-major, like NumPy's tolist()).",
    "items": {"anyOf": [{"type": "number"}, {"type": "array", "items": {}}]},
}
NumberArray = Annotated[Any, WithJsonSchema(_NUMBER_ARRAY_SCHEMA)]

_PAIR = {
    "anyOf": [
        {"type": "integer", "minimum": 1},
        {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2, "maxItems": 2},
    ]
}
_LAYER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One layer. conv2d: out_channels, kernel_size, stride (1), padding (0), "
    "activation; maxpool2d/avgpool2d: kernel_size, stride (= kernel_size), padding (0); "
    "flatten; dense: units, activation. Sizes are an int or [h, w].",
    "required": ["type"],
    "properties": {
        "type": {
            "type": "string",
            "enum": ["conv2d", "maxpool2d", "avgpool2d", "flatten", "dense"],
        },
        "out_channels": {"type": "integer", "minimum": 1},
        "units": {"type": "integer", "minimum": 1},
        "kernel_size": _PAIR,
        "stride": _PAIR,
        "padding": {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 0},
                    "minItems": 2,
                    "maxItems": 2,
                },
                {"type": "string", "enum": ["valid", "same"]},
            ]
        },
        "activation": {
            "type": "string",
            "enum": ["identity", "relu", "sigmoid", "tanh", "softmax"],
        },
    },
}
_SPEC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A network spec: input_shape [C, H, W], layers, loss (default "
    "cross_entropy after softmax, mse otherwise). Responses add each layer's input_shape, "
    "output_shape, param_count and multiply_adds.",
    "required": ["input_shape", "layers"],
    "properties": {
        "input_shape": {
            "type": "array",
            "items": {"type": "integer", "minimum": 1},
            "minItems": 3,
            "maxItems": 3,
        },
        "layers": {"type": "array", "items": _LAYER_SCHEMA, "minItems": 1},
        "loss": {"type": "string", "enum": ["mse", "cross_entropy"]},
    },
}
NetworkSpec = Annotated[dict[str, Any], WithJsonSchema(_SPEC_SCHEMA)]

# ----------------------------------------------------------------------------- examples
SCENARIO_1_TRACE = {"scenario": "conv-dense"}
CUSTOM_TRACE_EXAMPLE = {
    "network": {
        "input_shape": [1, 3, 3],
        "layers": [
            {"type": "conv2d", "out_channels": 1, "kernel_size": 2},
            {"type": "flatten"},
            {"type": "dense", "units": 1},
        ],
        "loss": "mse",
    },
    "params": [
        {"w": [[[[0.1, 0.2], [0.3, 0.4]]]], "b": [0.0]},
        {},
        {"w": [[0.5, -0.5, 0.25, 1.0]], "b": [0.1]},
    ],
    "input": [[1, 2, 3], [4, 5, 6], [7, 8, 9]],
    "target": [1.0],
    "learning_rate": 0.01,
}


# ----------------------------------------------------------------------------- health
class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"
    version: str = Field(description="cnnviz's version")
    engine: str = Field(description="cnncore's version")
    models: list[str] = Field(description="bundled models that are installed")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"status": "ok", "version": "0.1.0", "engine": "0.1.0", "models": ["digits"]}
            ]
        }
    )


# ----------------------------------------------------------------------------- errors
class ErrorItem(BaseModel):
    loc: list[str | int] = Field(
        description="path to the offending field, e.g. "
        "['body', 'network', 'layers', 2, 'kernel_size']"
    )
    msg: str = Field(description="the rule that was broken, in words")
    type: str = Field(description="a stable code, e.g. 'spec_error', 'shape', 'too_large'")


class ErrorResponse(BaseModel):
    detail: list[ErrorItem]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": [
                        {
                            "loc": ["body", "network", "layers", 0, "kernel_size"],
                            "msg": "layer 0 (conv2d): kernel_size 5 is larger than the "
                            "padded input height 3 (= 3 + 2·0); use a smaller kernel or "
                            "more padding",
                            "type": "spec_error",
                        }
                    ]
                }
            ]
        }
    )


# ----------------------------------------------------------------------------- models
class ModelSummary(BaseModel):
    name: str
    description: str | None = None
    dataset: str | dict[str, Any] | None = Field(
        None, description="the training data: a name, or an object with name and sizes"
    )
    test_accuracy: float | None = None
    network: dict[str, Any] = Field(
        description="the normalized spec: every layer's "
        "input_shape, output_shape, param_count, multiply_adds"
    )

    model_config = ConfigDict(extra="allow")


class ModelDetail(ModelSummary):
    params: list[dict[str, Any]] = Field(
        description="per layer {'w', 'b'} ({} for layers without parameters), PyTorch layout"
    )


# ----------------------------------------------------------------------------- scenarios
class Text(BaseModel):
    en: str
    zh: str


class ScenarioSummary(BaseModel):
    id: str
    title: Text
    note: Text

    model_config = ConfigDict(extra="allow")


class ScenarioDetail(ScenarioSummary):
    spec: dict[str, Any] = Field(description="the raw network spec")
    network: dict[str, Any] = Field(description="the normalized spec with every shape")
    params: list[dict[str, Any]]
    input: list[Any] = Field(description="C×H×W nested list")
    target: Any = Field(description="a class index or an array shaped like the output")


# ----------------------------------------------------------------------------- trace
class TraceRequest(BaseModel):
    """Exactly one of `model`, `scenario` or `network` chooses the network."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        json_schema_extra={"examples": [SCENARIO_1_TRACE, CUSTOM_TRACE_EXAMPLE]},
    )

    model: str | None = Field(None, max_length=64, description="a bundled model, e.g. 'digits'")
    scenario: str | None = Field(
        None, max_length=64, description="a scenario id, e.g. 'conv-dense'"
    )
    network: NetworkSpec | None = Field(None, description="a network spec of your own")
    params: list[dict[str, NumberArray]] | None = Field(
        None,
        description="with `network`: per layer {'w', 'b'} ({} for layers without "
        "parameters); default: seeded initialisation (He for relu, Xavier otherwise)",
    )
    seed: StrictInt = Field(
        0,
        ge=0,
        le=2**32 - 1,
        description="with `network`: the seed of the initialisation when `params` is not given",
    )
    input: NumberArray | None = Field(
        None,
        description="nested list shaped like the network's input_shape [C, H, W]; "
        "[H, W] is accepted when C = 1. Optional for a scenario.",
    )
    target: Annotated[
        Any,
        WithJsonSchema(
            {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "number"}, _NUMBER_ARRAY_SCHEMA]}
        ),
    ] = Field(
        None,
        description="a class index (cross_entropy) or an array shaped like the output "
        "(mse; a number when the output has one value). Optional for a scenario.",
    )
    learning_rate: StrictFloat | None = Field(
        None,
        gt=0,
        le=10,
        description="if given, one SGD step: the response adds `updated_params` and `loss_after`",
    )
    encoding: Literal["json", "base64"] = Field(
        "json",
        description="how the response writes arrays. 'json' (default): nested lists of "
        "numbers. 'base64': every array (tensors, params, argmax, output, target, "
        "updated_params) as {'dtype': 'float64' (argmax: 'int64'), 'shape': [...], "
        "'data': base64 of its little-endian C-order bytes}, exact float64 and smaller and "
        "faster to write; decode with NumPy: np.frombuffer(base64.b64decode(d['data']), "
        "'<f8').reshape(d['shape']). Scalars (loss, prediction, loss_after, shapes) stay "
        "numbers.",
    )


class EncodedArray(BaseModel):
    """An array with `"encoding": "base64"`."""

    dtype: Literal["float64", "int64"] = Field(
        description="'float64' ('<f8'), or 'int64' ('<i8') for max-pool argmax"
    )
    shape: list[int] = Field(description="the array's shape; [] for a 0-d array")
    data: str = Field(
        description="base64 (standard alphabet, padded) of the little-endian, "
        "C-order (row-major) bytes"
    )


EncodedOrList = list[Any] | EncodedArray


class LayerTrace(BaseModel):
    index: int
    type: str
    input_shape: list[int]
    output_shape: list[int]
    params: dict[str, Any] = Field(description="{'w', 'b'} or {}")
    forward: dict[str, Any] = Field(description="a_prev, z, a")
    backward: dict[str, Any] = Field(
        description="dC_da, dC_dz, dC_db, dC_dw, dC_da_prev "
        "(dC_db and dC_dw are null for layers without parameters)"
    )
    argmax: EncodedOrList | None = Field(
        None,
        description="max-pool only: (C, H_out, W_out, 2), "
        "the input (row, col) each output cell came from",
    )


class TraceResponse(BaseModel):
    """Arrays are nested lists, or `EncodedArray` objects with `"encoding": "base64"`."""

    network: dict[str, Any] = Field(description="the normalized spec with every shape")
    loss: float
    output: EncodedOrList
    target: EncodedOrList = Field(
        description="the target as an array shaped like the output (a class index becomes one-hot)"
    )
    prediction: int | None = Field(None, description="classifiers only: argmax of the output")
    layers: list[LayerTrace]
    updated_params: list[dict[str, Any]] | None = Field(
        None, description="with learning_rate: parameters after one SGD step"
    )
    loss_after: float | None = Field(
        None,
        description="with learning_rate: the loss with updated_params on the same input and target",
    )


# ----------------------------------------------------------------------------- predict
class PredictRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {
                    "model": "digits",
                    "image": [
                        [0, 0, 0, 0, 0],
                        [0, 0, 1, 0, 0],
                        [0, 1, 1, 0, 0],
                        [0, 0, 1, 0, 0],
                        [0, 1, 1, 1, 0],
                    ],
                }
            ]
        },
    )

    model: str = Field("digits", max_length=64, description="a bundled classifier model")
    image: Annotated[
        Any,
        WithJsonSchema(
            {
                "type": "array",
                "minItems": 1,
                "maxItems": 512,
                "items": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 512,
                    "items": {"type": "number", "minimum": 0, "maximum": 1},
                },
            }
        ),
    ] = Field(description="H×W grayscale, values in [0, 1], ink = 1, 1×1 up to 512×512")


class PredictResponse(BaseModel):
    input: list[list[float]] = Field(description="the 28×28 MNIST-like input the model saw")
    probabilities: list[float]
    prediction: int
