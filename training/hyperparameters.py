"""Training hyperparameters: one typed dataclass, read from SageMaker's JSON file and the command line.

SageMaker writes every hyperparameter value as a string, so each value is coerced to the declared
type. Everything is validated before a model is loaded: a bad job fails in a second, with one
message that lists every problem (name, value, what is allowed).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

# The throughput levers' choices are training/throughput.py's, which resolves `auto` for each.
from throughput import (
    ATTENTION_CHOICES,
    CHECKPOINTING_CHOICES,
    LORA_DTYPE_CHOICES,
    OPTIM_CHOICES,
    SWITCH_CHOICES,
)

QUANTIZATION_CHOICES = ("auto", "4bit", "none")
BATCHING_CHOICES = ("auto", "padding", "group_by_length", "padding_free", "packing")
FSDP_OPTIONS = ("full_shard", "shard_grad_op", "offload", "auto_wrap")
_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$")
# SageMaker may add its own entries (sagemaker_program, sagemaker_region ...); they are not ours to check.
_RESERVED_PREFIX = "sagemaker_"


class HyperparameterError(ValueError):
    """One or more hyperparameters are invalid; the message lists each one."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid hyperparameters:\n" + "\n".join(f"  - {problem}" for problem in problems))


@dataclass(frozen=True)
class Hyperparameters:
    """What a training job can be told. Names and meanings are part of the workflow contract."""

    epochs: float = 3.0
    max_steps: int = -1  # -1: train for `epochs`; otherwise stop after this many optimizer steps
    learning_rate: float = 2e-4
    lora_r: int = 16
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    max_length: int = 2048
    quantization: str = "auto"  # auto: 4-bit QLoRA where CUDA is available, plain LoRA elsewhere
    per_device_train_batch_size: int = 1
    gradient_accumulation_steps: int = 8
    batching: str = "auto"
    seed: int = 42
    logging_steps: int = 10
    save_steps: int = 100
    warmup_ratio: float = 0.03
    gradient_checkpointing: str = "auto"  # auto, full, selective, none; true means full, false none
    attn_implementation: str = "auto"
    use_liger_kernel: str = "auto"  # auto, true, false
    tokens_per_micro_batch: str = "auto"  # auto, none, or an integer >= max_length
    torch_compile: str = "auto"  # auto, true, false
    optim: str = "auto"
    lora_dtype: str = "auto"  # auto, bf16, fp32
    fsdp: str = ""  # e.g. "full_shard auto_wrap"; "true" means that, "false"/"none"/empty: no FSDP
    model_id: str = ""  # a Hub id, used when no `model` channel is given
    model_revision: str = ""  # the commit of model_id Preflight resolved (empty: main)
    hf_token_secret_arn: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# name -> (check, what is allowed); each check receives the coerced value.
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epochs": (lambda v: 0 < v <= 1000, "a number > 0 and <= 1000"),
    "max_steps": (lambda v: v == -1 or v >= 1, "-1 (use epochs) or an integer >= 1"),
    "learning_rate": (lambda v: 0 < v <= 1, "a number > 0 and <= 1"),
    "lora_r": (lambda v: 1 <= v <= 1024, "an integer from 1 to 1024"),
    "lora_alpha": (lambda v: v > 0, "a number > 0"),
    "lora_dropout": (lambda v: 0 <= v < 1, "a number >= 0 and < 1"),
    "max_length": (lambda v: 16 <= v <= 262144, "an integer from 16 to 262144"),
    "quantization": (lambda v: v in QUANTIZATION_CHOICES, f"one of {', '.join(QUANTIZATION_CHOICES)}"),
    "per_device_train_batch_size": (lambda v: 1 <= v <= 4096, "an integer from 1 to 4096"),
    "gradient_accumulation_steps": (lambda v: 1 <= v <= 4096, "an integer from 1 to 4096"),
    "batching": (lambda v: v in BATCHING_CHOICES, f"one of {', '.join(BATCHING_CHOICES)}"),
    "seed": (lambda v: 0 <= v < 2**32, "an integer from 0 to 2**32-1"),
    "logging_steps": (lambda v: v >= 1, "an integer >= 1"),
    "save_steps": (lambda v: v >= 1, "an integer >= 1"),
    "warmup_ratio": (lambda v: 0 <= v < 1, "a number >= 0 and < 1"),
    "gradient_checkpointing": (
        lambda v: v in CHECKPOINTING_CHOICES,
        f"one of {', '.join(CHECKPOINTING_CHOICES)}, or true (full) / false (none)",
    ),
    "attn_implementation": (lambda v: v in ATTENTION_CHOICES, f"one of {', '.join(ATTENTION_CHOICES)}"),
    "use_liger_kernel": (lambda v: v in SWITCH_CHOICES, "auto, true or false"),
    "tokens_per_micro_batch": (
        lambda v: v in ("auto", "none") or (v.isdigit() and 16 <= int(v) <= 2**24),
        "auto, none, or an integer from 16 to 16777216 (at least max_length)",
    ),
    "torch_compile": (lambda v: v in SWITCH_CHOICES, "auto, true or false"),
    "optim": (lambda v: v in OPTIM_CHOICES, f"one of {', '.join(OPTIM_CHOICES)}"),
    "lora_dtype": (lambda v: v in LORA_DTYPE_CHOICES, f"one of {', '.join(LORA_DTYPE_CHOICES)}"),
    "fsdp": (
        lambda v: (
            v == ""
            or (
                all(option in FSDP_OPTIONS for option in v.split())
                and not {"full_shard", "shard_grad_op"} <= set(v.split())
            )
        ),
        f"true, false, none, or space-separated options from {', '.join(FSDP_OPTIONS)}, with at most one "
        "sharding strategy (full_shard or shard_grad_op)",
    ),
    "model_id": (
        lambda v: v == "" or re.fullmatch(r"[\w.\-]+(/[\w.\-]+)?", v) is not None,
        "a Hugging Face Hub id such as org/name",
    ),
    "model_revision": (
        lambda v: v == "" or re.fullmatch(r"[A-Za-z0-9_.\-/]{1,128}", v) is not None,
        "empty, or a branch, tag or commit of model_id",
    ),
    "hf_token_secret_arn": (
        lambda v: v == "" or _SECRET_ARN.match(v) is not None,
        "empty or a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>)",
    ),
}

_TRUE = {"true", "1", "yes", "on"}
FSDP_WHEN_TRUE = "full_shard auto_wrap"


_FALSE = {"false", "0", "no", "off"}


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


_NORMALIZE: dict[str, Callable[[str], str]] = {
    "fsdp": _normalize_fsdp,
    "gradient_checkpointing": _normalize_checkpointing,
    "use_liger_kernel": _normalize_switch,
    "torch_compile": _normalize_switch,
    "tokens_per_micro_batch": _normalize_integer_or_word,
    "attn_implementation": lambda value: value.strip(),
    "optim": lambda value: value.strip().lower(),
    "lora_dtype": lambda value: value.strip().lower(),
}


def _coerce(raw: Any, kind: type) -> Any:
    """Turn a SageMaker string (or a JSON value) into `kind`; raise ValueError when it cannot be."""
    if isinstance(raw, str):
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':  # SDKs sometimes JSON-encode strings twice
            raw = json.loads(raw)
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError
    if kind is int:
        if isinstance(raw, bool):
            raise ValueError
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
        if isinstance(raw, bool):
            raise ValueError
        number = float(raw)
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError
        return number
    if kind is str:
        if isinstance(raw, (dict, list)):
            raise ValueError
        return str(raw)
    raise TypeError(kind)


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _field_types() -> dict[str, type]:
    hints = {"float": float, "int": int, "str": str, "bool": bool}
    return {
        field.name: hints[field.type] if isinstance(field.type, str) else field.type
        for field in fields(Hyperparameters)
    }


def build_hyperparameters(values: dict[str, Any]) -> Hyperparameters:
    """Coerce and validate `values` (strings allowed); raise HyperparameterError listing every problem."""
    types = _field_types()
    problems: list[str] = []
    coerced: dict[str, Any] = {}
    for name in sorted(values):
        raw = values[name]
        if name.startswith(_RESERVED_PREFIX):
            continue
        if name not in types:
            problems.append(f"{name}={raw!r}: unknown hyperparameter; known: {', '.join(sorted(types))}")
            continue
        kind = types[name]
        try:
            value = _coerce(raw, kind)
        except (ValueError, TypeError, json.JSONDecodeError):
            check, allowed = _RULES[name]
            problems.append(f"{name}={raw!r}: not {_TYPE_WORDS[kind]}; allowed: {allowed}")
            continue
        if name in _NORMALIZE:
            value = _NORMALIZE[name](value)
        check, allowed = _RULES[name]
        if not check(value):
            problems.append(f"{name}={raw!r}: out of range; allowed: {allowed}")
            continue
        coerced[name] = value
    if problems:
        raise HyperparameterError(problems)
    return Hyperparameters(**coerced)


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
    """One --name option per hyperparameter (also --name-with-dashes); values stay strings until validated."""
    for field in fields(Hyperparameters):
        dashed = "--" + field.name.replace("_", "-")
        names = ["--" + field.name] + ([dashed] if dashed != "--" + field.name else [])
        parser.add_argument(
            *names, dest=field.name, default=None, metavar="VALUE", help=f"hyperparameter (default {field.default!r})"
        )


def merge_sources(file_values: dict[str, Any], cli_values: dict[str, Any]) -> dict[str, Any]:
    """Command-line values win over the file's."""
    merged = dict(file_values)
    merged.update({name: value for name, value in cli_values.items() if value is not None})
    return merged
