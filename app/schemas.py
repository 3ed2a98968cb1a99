"""Request and response schemas, named by role.

Requests are validated by these models (strict: no "1" for 1, no true for 1, no NaN).
Nested number arrays (inputs, parameters, images) are typed loosely here and checked against
the shape the network needs in the service layer, which knows that shape.

Large responses (traces, model parameters) are serialized directly with orjson; their models
here document the format in the OpenAPI schema and are not used to validate the response.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    WithJsonSchema,
)

from cnncore.registry import layer_json_schema, spec_json_schema

from .settings import MAX_IMAGE_SIDE

# ----------------------------------------------------------------------------- JSON schemas
_NUMBER_ARRAY_SCHEMA: dict[str, Any] = {
    "type": "array",
    "description": "A nested array of numbers (row-major, like NumPy's tolist()).",
    "items": {"anyOf": [{"type": "number"}, {"type": "array", "items": {}}]},
}
NumberArray = Annotated[Any, WithJsonSchema(_NUMBER_ARRAY_SCHEMA)]
_IMAGE_SCHEMA: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "maxItems": MAX_IMAGE_SIDE,
    "items": {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_IMAGE_SIDE,
        "items": {"type": "number", "minimum": 0, "maximum": 1},
    },
}

# One layer's schema (its type enum and every type's fields) and the spec's are built from
# cnncore's layer registry, never copied: a new layer type appears here by itself.
_LAYER_SCHEMA: dict[str, Any] = layer_json_schema()
_SPEC_SCHEMA: dict[str, Any] = spec_json_schema()
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
    limits: dict[str, int | list[int]] | None = Field(
        None,
        description="the caps a custom network meets (max_layers, max_channels, "
        "max_multiply_adds, max_trace_values, max_input_shape), to show before they are hit",
    )

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
        "parameters); default: seeded initialisation (He for relu, Xavier otherwise). Each "
        "array is a nested list, or the exact float64 values as {'dtype': 'float64', "
        "'shape': [...], 'data': base64 of the little-endian C-order bytes} (the base64 "
        "encoding of the responses: send back `updated_params` as received). With "
        "`model`: parameters learned from the model's own (same shapes); an array may also "
        "be its changes to the model's own, {'dtype', 'shape', 'changed': base64 bitmask, "
        "'data': base64 of the changed values}, as `updated_params_as: 'changes'` answers.",
    )
    seed: StrictInt = Field(
        0,
        ge=0,
        description="with `network`: the seed of the initialisation when `params` is not "
        "given (at most Settings.max_seed, 2**32 - 1 by default)",
    )
    input: NumberArray | None = Field(
        None,
        description="nested list shaped like the network's input_shape [C, H, W]; "
        "[H, W] is accepted when C = 1. Optional for a scenario.",
    )
    target: Annotated[
        Any,
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "integer", "minimum": 0},
                    {"type": "number"},
                    _NUMBER_ARRAY_SCHEMA,
                    {"type": "string", "enum": ["predicted"]},
                ]
            }
        ),
    ] = Field(
        None,
        description="a class index (cross_entropy) or an array shaped like the output "
        "(mse; a number when the output has one value). Optional for a scenario. "
        "'predicted' (a classifier with cross_entropy): the class the network predicts for "
        "this input with these parameters, so a drawing needs no /api/predict first.",
    )
    image: Annotated[Any, WithJsonSchema(_IMAGE_SCHEMA)] = Field(
        None,
        description="instead of `input`, for a network whose input is 1×28×28: a drawing "
        "as POST /api/predict takes it (H×W grayscale, values in [0, 1], ink = 1, each side "
        "up to Settings.max_image_side). The server makes it the MNIST-like 28×28 (as "
        "/api/predict does), traces that, and returns it as `input`: one request from the "
        "end of a stroke to its trace.",
    )
    learning_rate: StrictFloat | None = Field(
        None,
        gt=0,
        description="if given, one SGD step: the response adds `updated_params` and "
        "`loss_after` (at most Settings.max_learning_rate, 10 by default). For the page's "
        "'apply one step', POST /api/learn does this in one round trip.",
    )
    include: list[TracePart] | None = Field(
        None,
        max_length=5,
        description="which parts of the trace to send (default: all): 'forward' (a_prev, z, "
        "a), 'backward' (dC_da, dC_dz, dC_db, dC_dw, dC_da_prev), 'params' (each layer's w, "
        "b), 'argmax' (max-pool), 'updated_params' (with learning_rate). `network`, `loss`, "
        "`output`, `target`, `prediction` and every layer's `norms` are always sent.",
    )
    layers: list[StrictInt] | None = Field(
        None,
        max_length=256,
        description="the top-level layer indices whose tensors are sent (default: all). The "
        "other layers keep index, type, shapes and norms, plus the keys in `every_layer`.",
    )
    every_layer: list[LayerKey] | None = Field(
        None,
        max_length=11,
        description="tensor keys sent for every layer, also those not in `layers` (e.g. "
        "['a', 'dC_da'] for an overview of all layers with one layer's details).",
    )
    exclude: list[LayerKey] | None = Field(
        None,
        max_length=11,
        description="tensor keys never sent (e.g. ones the client already has).",
    )
    dedupe: StrictBool = Field(
        False,
        description="leave out what repeats: forward.a_prev (= layers[i-1].forward.a, the "
        "input for layer 0), forward.z when it equals forward.a bit for bit, "
        "backward.dC_da_prev for layers > 0 (= layers[i-1].backward.dC_da), backward.dC_dz "
        "when it equals backward.dC_da. Each layer names what it left out and where the "
        "values are in `omitted`, e.g. {'a_prev': 'layers[0].forward.a'}.",
    )
    updated_params_as: Literal["arrays", "changes"] = Field(
        "arrays",
        description="how `updated_params` are written. 'arrays' (default): every value. "
        "'changes' (with `model` and encoding 'base64'): each array as its "
        "changes to the model's own parameters, {'dtype': 'float64', 'shape': [...], "
        "'changed': base64 of a bitmask over the values in C order (bit k of byte k // 8, "
        "least significant first), 'data': base64 of the changed values' float64 bytes}: "
        "exact, and a step moves only part of the weights; send them back as `params`.",
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


LayerKey = Literal[
    "a_prev", "z", "a", "dC_da", "dC_dz", "dC_db", "dC_dw", "dC_da_prev", "w", "b", "argmax"
]
TracePart = Literal["forward", "backward", "params", "argmax", "updated_params"]


class LearnRequest(TraceRequest):
    """`POST /api/learn`: a trace request whose `learning_rate` is required."""

    model_config = ConfigDict(json_schema_extra={"examples": []})

    learning_rate: StrictFloat = Field(  # type: ignore[assignment]
        gt=0,
        description="the SGD step: every parameter becomes w - learning_rate · dC/dw "
        "(at most Settings.max_learning_rate, 10 by default)",
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
    params: dict[str, Any] | None = Field(None, description="{'w', 'b'} or {}")
    forward: dict[str, Any] | None = Field(None, description="a_prev, z, a")
    backward: dict[str, Any] | None = Field(
        None,
        description="dC_da, dC_dz, dC_db, dC_dw, dC_da_prev "
        "(dC_db and dC_dw are null for layers without parameters)",
    )
    argmax: EncodedOrList | None = Field(
        None,
        description="max-pool only: (C, H_out, W_out, 2), "
        "the input (row, col) each output cell came from",
    )
    norms: dict[str, float | None] = Field(
        description="always sent, also for layers not selected: L2 norms of forward.a "
        "('a'), backward.dC_da ('dC_da') and backward.dC_dw ('dC_dw', null without weights "
        "or when not finite)"
    )
    omitted: dict[str, str] | None = Field(
        None,
        description="with dedupe: each key left out and where its values are, e.g. "
        "{'a_prev': 'layers[0].forward.a'} ('input' for layer 0)",
    )
    nonfinite: dict[str, str] | None = Field(
        None,
        description="a key whose values are infinite by definition, and why (the last "
        "softmax layer's dC_da when the target's probability underflows to 0). With 'base64' "
        "the float64 values (-inf) are sent; with 'json' the key is left out.",
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
    input: EncodedOrList | None = Field(
        None,
        description="with `image`: the MNIST-like 28×28 the image became, which was traced "
        "(send it as `input` to trace the same sample again)",
    )


class LearnResponse(BaseModel):
    learning_rate: float
    loss_before: float = Field(description="the loss with the parameters sent")
    loss_after: float = Field(
        description="the loss after the step, on the same input and target (= trace.loss)"
    )
    output_before: EncodedOrList = Field(description="the output before the step")
    prediction_before: int | None = Field(None, description="classifiers only")
    prediction_after: int | None = Field(None, description="classifiers only")
    updated_params: list[dict[str, Any]] | None = Field(
        None, description="per layer {'w', 'b'} after the step ({} without parameters)"
    )
    trace: TraceResponse = Field(
        description="the trace with the updated parameters, cut to the request's selection"
    )
    input: EncodedOrList | None = Field(
        None, description="with `image`: the MNIST-like 28×28 the image became"
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
    image: Annotated[Any, WithJsonSchema(_IMAGE_SCHEMA)] = Field(
        description="H×W grayscale, values in [0, 1], ink = 1, 1×1 up to "
        f"{MAX_IMAGE_SIDE}×{MAX_IMAGE_SIDE}"
    )


class PredictResponse(BaseModel):
    input: list[list[float]] = Field(description="the 28×28 MNIST-like input the model saw")
    probabilities: list[float]
    prediction: int
