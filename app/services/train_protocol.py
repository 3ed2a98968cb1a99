"""The messages of `WebSocket /api/train`: each client message validated into a model, every
error naming the field (`loc`) like the REST API's 422s.

Client -> server: `start` (first, once), then `pause`, `resume`, `step`, `stop`, `set_lr`,
`trace`, `export`, `snapshot`. The server's messages are built in `training.py`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    TypeAdapter,
    ValidationError,
)

from ..errors import ApiError
from ..schemas import TraceRequest
from ..settings import Settings

Number = StrictFloat | StrictInt
_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

# The trace message's selection fields are POST /api/trace's own: whatever TraceRequest
# accepts besides the network, input and target (include, layers, dedupe, encoding, ...).
_TRACE_CHOICE = {"model", "scenario", "network", "params", "seed", "input", "target"}
_TRACE_EXCLUDED = _TRACE_CHOICE | {"learning_rate"}


def trace_selection_fields() -> list[str]:
    return sorted(set(TraceRequest.model_fields) - _TRACE_EXCLUDED)


class OptimizerConfig(BaseModel):
    model_config = _STRICT
    name: Literal["sgd", "momentum", "adam"] = "momentum"
    lr: Number = Field(0.05, gt=0, le=10)
    momentum: Number = Field(0.9, ge=0, lt=1, description="momentum only")
    beta1: Number = Field(0.9, ge=0, lt=1, description="adam only")
    beta2: Number = Field(0.999, ge=0, lt=1, description="adam only")
    eps: Number = Field(1e-8, gt=0, le=1, description="adam only")
    weight_decay: Number = Field(0.0, ge=0, le=1)


class AugmentMessage(BaseModel):
    model_config = _STRICT
    shift: StrictInt = Field(0, ge=0, le=6, description="pixels")
    rotation: Number = Field(0, ge=0, le=45, description="degrees")
    flip: StrictBool = False
    noise: Number = Field(0, ge=0, le=0.5, description="standard deviation")
    contrast: Number = Field(0, ge=0, le=0.9)
    brightness: Number = Field(0, ge=0, le=0.5)


class StartMessage(BaseModel):
    model_config = _STRICT
    type: Literal["start"]
    model: str | None = Field(None, max_length=64)
    network: dict[str, Any] | None = None
    init: Literal["pretrained", "random"] = "random"
    seed: StrictInt = Field(0, ge=0, le=2**32 - 1)
    optimizer: OptimizerConfig = OptimizerConfig()
    batch_size: StrictInt = Field(32, ge=1)
    augment: AugmentMessage = AugmentMessage()
    max_steps: StrictInt = Field(2000, ge=1)
    eval_every: StrictInt = Field(100, ge=1, le=100_000, description="steps between evaluations")
    eval_size: StrictInt = Field(1000, ge=10, le=10_000, description="dev digits evaluated")
    snapshot_every: StrictInt = Field(25, ge=1, le=100_000, description="steps between snapshots")
    paused: StrictBool = Field(False, description="start paused (then `step` or `resume`)")


class Simple(BaseModel):
    model_config = _STRICT
    type: Literal["pause", "resume", "step", "stop", "export", "snapshot"]


class SetLr(BaseModel):
    model_config = _STRICT
    type: Literal["set_lr"]
    lr: Number = Field(gt=0, le=10)


class WeightChoice(BaseModel):
    model_config = _STRICT
    layer: StrictInt = Field(ge=0)
    name: Literal["w", "b"] = "w"
    index: list[StrictInt] = Field(default_factory=list, max_length=4)


class TraceMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)
    type: Literal["trace"]
    index: StrictInt | None = Field(None, ge=0, description="an example of the current batch")
    dev: StrictInt | None = Field(None, ge=0, description="or a digit of the evaluated dev set")
    weight: WeightChoice | None = None

    def selection(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


Command = Annotated[Simple | SetLr | TraceMessage, Field(discriminator="type")]
_COMMAND = TypeAdapter(Command)
COMMAND_TYPES = ("pause", "resume", "step", "stop", "set_lr", "trace", "export", "snapshot")


def _loads(raw: str | bytes, s: Settings) -> dict[str, Any]:
    if len(raw) > s.train_max_message_bytes:
        raise ApiError(
            ("message",),
            f"the message has {len(raw):,} bytes; at most {s.train_max_message_bytes:,}",
            "too_large",
        )
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            ("message",), f"not valid JSON ({exc}); NaN and Infinity are not JSON", "json_invalid"
        ) from None
    if not isinstance(msg, dict):
        raise ApiError(("message",), "a message is a JSON object with a 'type'", "type")
    if "type" not in msg:
        raise ApiError(("message", "type"), "every message needs a 'type'", "missing")
    return msg


def _validation(exc: ValidationError, prefix: tuple) -> ApiError:
    err = exc.errors(include_url=False, include_input=False)[0]
    loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    return ApiError((*prefix, *loc), err["msg"], err["type"])


def parse_start(raw: str | bytes, s: Settings) -> StartMessage:
    msg = _loads(raw, s)
    if msg.get("type") != "start":
        raise ApiError(
            ("message", "type"),
            f"the first message must be 'start', got {str(msg.get('type'))[:40]!r}",
            "expected_start",
        )
    try:
        start = StartMessage.model_validate(msg)
    except ValidationError as exc:
        raise _validation(exc, ("start",)) from None
    if (start.model is None) == (start.network is None):
        raise ApiError(
            ("start", "model"),
            "give exactly one of 'model' (e.g. 'digits') or 'network' (a spec)",
            "choose_one",
        )
    if start.init == "pretrained" and start.model is None:
        raise ApiError(
            ("start", "init"),
            "'pretrained' needs a bundled 'model'; a 'network' starts random",
            "not_allowed",
        )
    if start.batch_size > s.train_max_batch_size:
        raise ApiError(
            ("start", "batch_size"),
            f"batch_size {start.batch_size} is over the cap of {s.train_max_batch_size}",
            "cap",
        )
    if start.max_steps > s.train_max_steps:
        raise ApiError(
            ("start", "max_steps"),
            f"max_steps {start.max_steps:,} is over the cap of {s.train_max_steps:,}",
            "cap",
        )
    return start


def parse_command(raw: str | bytes, s: Settings) -> Simple | SetLr | TraceMessage:
    msg = _loads(raw, s)
    kind = msg.get("type")
    if kind == "start":
        raise ApiError(
            ("message", "type"), "a run is already started on this connection", "already_started"
        )
    if kind not in COMMAND_TYPES:
        raise ApiError(
            ("message", "type"),
            f"unknown message type {str(kind)[:40]!r}; use one of {', '.join(COMMAND_TYPES)}",
            "unknown_type",
        )
    try:
        cmd = _COMMAND.validate_python(msg)
    except ValidationError as exc:
        raise _validation(exc, ()) from None
    if isinstance(cmd, TraceMessage):
        allowed = set(trace_selection_fields())
        for key in cmd.selection():
            if key not in allowed:
                raise ApiError(
                    ("trace", key),
                    f"unknown field {key[:40]!r}; a trace takes index or dev, weight, and "
                    f"POST /api/trace's selection fields ({', '.join(sorted(allowed))})",
                    "extra_forbidden",
                )
        if cmd.selection():  # checked by POST /api/trace's own request model
            try:
                TraceRequest.model_validate({"scenario": "-", **cmd.selection()})
            except ValidationError as exc:
                raise _validation(exc, ("trace",)) from None
        if (cmd.index is None) == (cmd.dev is None):
            raise ApiError(
                ("trace", "index"),
                "give exactly one of 'index' (an example of the current batch) or 'dev' "
                "(a digit of the evaluated dev set)",
                "choose_one",
            )
    return cmd
