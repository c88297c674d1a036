"""Training hyperparameters: one typed model, read from SageMaker's JSON file and the command line.

Each field is declared once, here: type, default, bounds, choices and help. The execution input
schema's `training.hyperparameters`, the docs' tables and train.py's options are generated from it
(hyperparameters_contract.py; a test fails when the committed copies are stale).

SageMaker writes every hyperparameter value as a string, so each value is coerced to the declared
type. Everything is validated before a model is loaded: a bad job fails in a second, with one
message that lists every problem (name, value, what is allowed).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

# The throughput levers' choices are training/throughput.py's, which resolves `auto` for each.
from throughput import (
    ATTENTION_CHOICES,
    CHECKPOINTING_CHOICES,
    LORA_DTYPE_CHOICES,
    OPTIM_CHOICES,
    SWITCH_CHOICES,
    Attention,
    Checkpointing,
    LoraDtype,
    Optim,
    Switch,
)

__all__ = [
    "ATTENTION_CHOICES",
    "BATCHING_CHOICES",
    "CHECKPOINTING_CHOICES",
    "FSDP_OPTIONS",
    "FSDP_WHEN_TRUE",
    "LORA_DTYPE_CHOICES",
    "OPTIM_CHOICES",
    "QUANTIZATION_CHOICES",
    "SWITCH_CHOICES",
    "HyperparameterError",
    "Hyperparameters",
    "Wire",
    "add_hyperparameter_options",
    "allowed",
    "build_hyperparameters",
    "merge_sources",
    "read_hyperparameters_file",
    "type_word",
    "wire",
]

Quantization = Literal["auto", "4bit", "none"]
Batching = Literal["auto", "padding", "group_by_length", "padding_free", "packing"]
QUANTIZATION_CHOICES: tuple[str, ...] = get_args(Quantization)
BATCHING_CHOICES: tuple[str, ...] = get_args(Batching)
FSDP_OPTIONS = ("full_shard", "shard_grad_op", "offload", "auto_wrap")
FSDP_WHEN_TRUE = "full_shard auto_wrap"
TOKEN_BUDGET = (16, 2**24)  # tokens_per_micro_batch's smallest and largest integer
_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$")
_HUB_ID = re.compile(r"[\w.\-]+(/[\w.\-]+)?")
_REVISION = re.compile(r"[A-Za-z0-9_.\-/]{1,128}")
# SageMaker may add its own entries (sagemaker_program, sagemaker_region ...); they are not ours to check.
_RESERVED_PREFIX = "sagemaker_"
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class HyperparameterError(ValueError):
    """One or more hyperparameters are invalid; the message lists each one."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid hyperparameters:\n" + "\n".join(f"  - {problem}" for problem in problems))


# ---------------------------------------------------------------- how values arrive


def _normalize_fsdp(value: str) -> str:
    """The execution input allows fsdp as a boolean: true means full sharding, false/none mean off."""
    text = " ".join(value.lower().split())
    if text in ("", "none") or text in _FALSE:
        return ""
    return FSDP_WHEN_TRUE if text in _TRUE else text


def _normalize_checkpointing(value: str) -> str:
    """Inputs written before the choices were added give a boolean: true is `full`, false `none`."""
    text = value.strip().lower()
    return "full" if text in _TRUE else "none" if text in _FALSE else text


def _normalize_switch(value: str) -> str:
    """auto, or the usual boolean spellings turned into true/false."""
    text = value.strip().lower()
    return "true" if text in _TRUE else "false" if text in _FALSE else text


def _normalize_integer_or_word(value: str) -> str:
    """`tokens_per_micro_batch`: auto or none as words, a number as its integer digits ("8192.0" -> "8192")."""
    text = value.strip().lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() and number >= 0 else text


@dataclass(frozen=True)
class Wire:
    """How a field travels where that differs from its type: the execution input (JSON) and SageMaker (strings).

    `allowed` says what is allowed where the bounds and choices cannot (error messages, docs);
    `accepts` is the execution input schema's view where it takes more than the type (booleans for
    a choice); `normalize` maps those spellings onto the type; a field `from_workflow` is set by the
    workflow and is not part of the execution input.
    """

    allowed: str = ""
    accepts: dict[str, Any] | None = None
    normalize: Callable[[str], str] | None = None
    from_workflow: bool = False


_SWITCH = Wire(
    allowed="auto, true or false",
    accepts={"type": ["boolean", "string"], "enum": [True, False, *SWITCH_CHOICES]},
    normalize=_normalize_switch,
)
_LOWER = Wire(normalize=lambda value: value.strip().lower())


class Hyperparameters(BaseModel):
    """What a training job can be told. Names and meanings are part of the workflow contract."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: float = Field(3.0, gt=0, le=1000, description="passes over the training rows")
    max_steps: Annotated[int, Wire(allowed="-1 (use epochs) or an integer >= 1 and <= 10000000")] = Field(
        -1, ge=-1, le=10_000_000, description="stop after this many optimizer steps (-1: run for `epochs`)"
    )
    learning_rate: float = Field(2e-4, gt=0, le=1, description="peak learning rate (linear decay)")
    lora_r: int = Field(
        16, ge=1, le=1024, description="LoRA rank; adapters on every linear layer except the output head"
    )
    lora_alpha: float = Field(16.0, gt=0, le=4096, description="LoRA scaling (the adapter's output times alpha / r)")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the adapter's input")
    max_length: int = Field(
        2048,
        ge=16,
        le=262144,
        description="tokens per conversation (longer ones are cut; with `packing`, the row length)",
    )
    quantization: Annotated[Quantization, _LOWER] = Field(
        "auto",
        description="`auto`: 4-bit QLoRA where CUDA is available, plain LoRA elsewhere; "
        "`4bit` also works on CPU (slow; for tests)",
    )
    per_device_train_batch_size: int = Field(1, ge=1, le=4096, description="conversations per process and step")
    gradient_accumulation_steps: int = Field(8, ge=1, le=4096, description="micro-batches per optimizer step")
    batching: Annotated[Batching, _LOWER] = Field(
        "auto", description="how conversations are batched; `auto` picks what is fastest on the job's device"
    )
    seed: int = Field(42, ge=0, le=2**32 - 1, description="adapter initialisation and data order")
    logging_steps: int = Field(10, ge=1, le=100_000, description="optimizer steps between metric lines")
    save_steps: int = Field(100, ge=1, le=1_000_000, description="optimizer steps between checkpoints")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="share of the steps spent warming up")
    gradient_checkpointing: Annotated[
        Checkpointing,
        Wire(
            allowed=f"one of {', '.join(CHECKPOINTING_CHOICES)}, or true (full) / false (none)",
            accepts={"type": ["boolean", "string"], "enum": [True, False, *CHECKPOINTING_CHOICES]},
            normalize=_normalize_checkpointing,
        ),
    ] = Field(
        "auto",
        description="activation checkpointing: `full` (every decoder layer), `selective` (every second), `none`; "
        "`auto` picks the least recompute whose estimated activations fit the GPU; `true` means `full`, "
        "`false` `none`",
    )
    attn_implementation: Annotated[Attention, Wire(normalize=lambda value: value.strip())] = Field(
        "auto",
        description="attention kernel; `auto`: `flash_attention_2` where flash-attn is installed on an Ampere "
        "or newer GPU and batches are padding-free, else `sdpa`",
    )
    use_liger_kernel: Annotated[Switch, _SWITCH] = Field(
        "auto",
        description="Liger's Triton kernels (RMSNorm, SwiGLU, RoPE, fused cross entropy); "
        "`auto`: on CUDA when liger-kernel is installed",
    )
    tokens_per_micro_batch: Annotated[
        str,
        Wire(
            allowed=f"auto, none, or an integer from {TOKEN_BUDGET[0]} to {TOKEN_BUDGET[1]} (at least max_length)",
            accepts={
                "type": ["integer", "string"],
                "minimum": TOKEN_BUDGET[0],
                "maximum": TOKEN_BUDGET[1],
                "pattern": "^(auto|none)$",
            },
            normalize=_normalize_integer_or_word,
        ),
    ] = Field(
        "auto",
        description="micro-batches of conversations packed to this many tokens (at least `max_length`); "
        "gradient accumulation is derived so a step keeps the tokens asked for; "
        "`auto`: only with flash-attention on padding-free batches",
    )
    torch_compile: Annotated[Switch, _SWITCH] = Field(
        "auto", description="compile the model with `torch.compile`; `auto`: off (not measured to help yet)"
    )
    optim: Annotated[Optim, _LOWER] = Field(
        "auto", description="optimizer; `auto`: `adamw_torch_fused` on CUDA, `adamw_torch` on CPU"
    )
    lora_dtype: Annotated[LoraDtype, _LOWER] = Field(
        "auto", description="the adapter weights' dtype; `auto`: bf16 on a 4-bit base (as trl does), fp32 otherwise"
    )
    fsdp: Annotated[
        str,
        Wire(
            allowed=f"true, false, none, or space-separated options from {', '.join(FSDP_OPTIONS)}, with at most "
            "one sharding strategy (full_shard or shard_grad_op)",
            # The input's default is the boolean form of "no sharding", which job_requests.py sends as "false".
            accepts={"type": ["boolean", "string"], "maxLength": 200, "default": False},
            normalize=_normalize_fsdp,
        ),
    ] = Field(
        "",
        description="shard the model over the job's processes (FSDP2, one unit per decoder layer) for models "
        f"that do not fit one GPU; `true` means `{FSDP_WHEN_TRUE}`, empty or `false` no sharding",
    )
    model_id: Annotated[str, Wire(allowed="a Hugging Face Hub id such as org/name", from_workflow=True)] = Field(
        "", description="the base model's Hub id, used when no `model` channel is given"
    )
    model_revision: Annotated[
        str, Wire(allowed="empty, or a branch, tag or commit of model_id", from_workflow=True)
    ] = Field(
        "",
        description="the commit of `model_id` Preflight resolved (empty: main); the job downloads that commit "
        "once and trains on it",
    )
    hf_token_secret_arn: Annotated[
        str,
        Wire(
            allowed="empty or a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>)",
            from_workflow=True,
        ),
    ] = Field("", description="the Secrets Manager secret holding the Hub token for gated models (the stack's)")

    @field_validator("*", mode="before")
    @classmethod
    def _from_wire(cls, raw: Any, info: ValidationInfo) -> Any:
        """SageMaker's strings (or JSON values) coerced to the field's type, then its spellings normalized."""
        name = info.field_name or ""
        field = cls.model_fields[name]
        try:
            value = _coerce(raw, _kind(field))
        except (ValueError, TypeError):
            raise PydanticCustomError("not_of_type", "not {kind}", {"kind": type_word(field, article=True)}) from None
        normalize = wire(field).normalize
        return normalize(value) if normalize else value

    @field_validator("max_steps")
    @classmethod
    def _steps_or_epochs(cls, value: int) -> int:
        if value == 0:
            raise ValueError("0 steps")
        return value

    @field_validator("tokens_per_micro_batch")
    @classmethod
    def _token_budget(cls, value: str) -> str:
        low, high = TOKEN_BUDGET
        if value not in ("auto", "none") and not (value.isdigit() and low <= int(value) <= high):
            raise ValueError("not a token budget")
        return value

    @field_validator("fsdp")
    @classmethod
    def _fsdp_options(cls, value: str) -> str:
        options = value.split()
        if not all(option in FSDP_OPTIONS for option in options) or {"full_shard", "shard_grad_op"} <= set(options):
            raise ValueError("not fsdp options")
        return value

    @field_validator("model_id")
    @classmethod
    def _hub_id(cls, value: str) -> str:
        if value and not _HUB_ID.fullmatch(value):
            raise ValueError("not a Hub id")
        return value

    @field_validator("model_revision")
    @classmethod
    def _revision(cls, value: str) -> str:
        if value and not _REVISION.fullmatch(value):
            raise ValueError("not a revision")
        return value

    @field_validator("hf_token_secret_arn")
    @classmethod
    def _secret_arn(cls, value: str) -> str:
        if value and not _SECRET_ARN.match(value):
            raise ValueError("not a secret ARN")
        return value

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()


# ---------------------------------------------------------------- what each field is, in words


def wire(field: FieldInfo) -> Wire:
    """The field's Wire, or the plain one: it travels as its type."""
    return next((item for item in field.metadata if isinstance(item, Wire)), Wire())


def choices(field: FieldInfo) -> tuple[str, ...]:
    """A choice field's values in order; () for other fields."""
    return get_args(field.annotation) if get_origin(field.annotation) is Literal else ()


def _kind(field: FieldInfo) -> type:
    return str if choices(field) else field.annotation  # type: ignore[return-value]


def bounds(field: FieldInfo) -> dict[str, Any]:
    """The field's numeric bounds by name: ge, gt, le, lt."""
    found: dict[str, Any] = {}
    for item in field.metadata:
        if isinstance(item, (annotated_types.Ge, annotated_types.Gt, annotated_types.Le, annotated_types.Lt)):
            found.update({name: getattr(item, name) for name in ("ge", "gt", "le", "lt") if hasattr(item, name)})
    return found


def type_word(field: FieldInfo, article: bool = False) -> str:
    """integer, number, choice or string (with its article for a sentence)."""
    kind = "choice" if choices(field) else {int: "integer", float: "number"}.get(_kind(field), "string")
    return f"{'an' if kind == 'integer' else 'a'} {kind}" if article else kind


def allowed(field: FieldInfo, code: Callable[[str], str] = str) -> str:
    """What the field allows, in words; `code` marks up a choice (backticks in the docs)."""
    if wire(field).allowed:
        return wire(field).allowed
    if choices(field):
        return "one of " + ", ".join(code(choice) for choice in choices(field))
    limits = bounds(field)
    if _kind(field) is int and "ge" in limits and "le" in limits:
        return f"an integer from {limits['ge']} to {limits['le']}"
    words = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    parts = [f"{words[name]} {limits[name]:g}" for name in ("gt", "ge", "lt", "le") if name in limits]
    return f"{type_word(field, article=True)} {' and '.join(parts)}".strip()


# ---------------------------------------------------------------- reading them


def _coerce(raw: Any, kind: type) -> Any:
    """Turn a SageMaker string (or a JSON value) into `kind`; raise ValueError when it cannot be."""
    if isinstance(raw, str):
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':  # SDKs sometimes JSON-encode strings twice
            raw = json.loads(raw)
    if kind is str:
        if isinstance(raw, (dict, list)):
            raise ValueError
        return str(raw)
    if isinstance(raw, bool):
        raise ValueError
    if kind is int:
        if isinstance(raw, float):
            if not raw.is_integer():
                raise ValueError
            return int(raw)
        text = str(raw)
        try:
            return int(text)
        except ValueError:
            number = float(text)  # "1e3" or "10.0" are integers written as numbers
            if not number.is_integer():
                raise
            return int(number)
    if kind is float:
        number = float(raw)
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError
        return number
    raise TypeError(kind)


def build_hyperparameters(values: dict[str, Any]) -> Hyperparameters:
    """Coerce and validate `values` (strings allowed); raise HyperparameterError listing every problem."""
    given = {name: raw for name, raw in values.items() if not name.startswith(_RESERVED_PREFIX)}
    try:
        return Hyperparameters.model_validate(given)
    except ValidationError as error:
        problems: dict[str, str] = {}
        for item in error.errors():
            name = str(item["loc"][0])
            problems.setdefault(name, _problem(name, given[name], item["type"]))
        raise HyperparameterError([problems[name] for name in sorted(problems)]) from None


def _problem(name: str, raw: Any, kind: str) -> str:
    fields = Hyperparameters.model_fields
    if kind == "extra_forbidden":
        return f"{name}={raw!r}: unknown hyperparameter; known: {', '.join(sorted(fields))}"
    field = fields[name]
    what = f"not {type_word(field, article=True)}" if kind == "not_of_type" else "out of range"
    return f"{name}={raw!r}: {what}; allowed: {allowed(field)}"


def read_hyperparameters_file(path: Path) -> dict[str, Any]:
    """SageMaker's hyperparameters.json, or {} when the file does not exist."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise HyperparameterError([f"{path}: not valid JSON ({error})"]) from error
    if not isinstance(data, dict):
        raise HyperparameterError([f"{path}: expected a JSON object of name -> value, got {type(data).__name__}"])
    return data


def add_hyperparameter_options(parser: argparse.ArgumentParser) -> None:
    """One --name option per field (also --name-with-dashes), its help from the model.

    Values stay strings until the model validates them all at once, so one message lists every problem.
    """
    group = parser.add_argument_group("hyperparameters (they override the hyperparameters file's)")
    for name, field in Hyperparameters.model_fields.items():
        dashed = "--" + name.replace("_", "-")
        names = ["--" + name] + ([dashed] if dashed != "--" + name else [])
        help_text = f"{field.description}; allowed: {allowed(field)} (default {field.default!r})"
        group.add_argument(
            *names,
            dest=name,
            default=None,
            metavar=type_word(field).upper(),
            help=help_text.replace("%", "%%"),
        )


def merge_sources(file_values: dict[str, Any], cli_values: dict[str, Any]) -> dict[str, Any]:
    """Command-line values win over the file's."""
    merged = dict(file_values)
    merged.update({name: value for name, value in cli_values.items() if value is not None})
    return merged
