"""Execution input: schema defaults, then the stack's defaults, then the input; then validation.

Every problem is collected and reported at once, each naming the field, the value and what is
allowed, so a user fixes the input in one go and bad input never starts a job.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from common.errors import InvalidInput
from common.instance_types import gpu_count, no_gpu_reason
from common.serving import evaluation_generation

SCHEMA_PATH = Path(__file__).with_name("execution_input.schema.json")

# Keys that choose one source: a layer that names one of them replaces the layer below's choice.
EXCLUSIVE_KEYS = {
    "base_model": ("hf_model_id", "s3_uri", "revision"),
    "dataset": ("hf_dataset_id", "s3_uri", "hf_split", "hf_revision"),
}


@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def schema_defaults(node: dict | None = None) -> dict:
    """The nested defaults the schema declares, e.g. {"training": {"use_spot": True, ...}}.

    An object with required members (`deployment.autoscaling`) is opt-in: it gets its defaults only
    when a layer gives it (`opt_in_defaults`).
    """
    node = schema() if node is None else node
    defaults: dict = {}
    for name, prop in node.get("properties", {}).items():
        if "default" in prop:
            defaults[name] = copy.deepcopy(prop["default"])
        elif prop.get("type") == "object" and not prop.get("required"):
            nested = schema_defaults(prop)
            if nested:
                defaults[name] = nested
    return defaults


def opt_in_defaults(config: Any, node: dict | None = None) -> Any:
    """`config` with the defaults of every opt-in object it contains filled in (given values win)."""
    node = schema() if node is None else node
    if not isinstance(config, dict):
        return config
    filled = dict(config)
    for name, prop in node.get("properties", {}).items():
        if name not in filled or prop.get("type") != "object":
            continue
        value = opt_in_defaults(filled[name], prop)
        if prop.get("required") and isinstance(value, dict):
            value = merge(schema_defaults(prop), value)
        filled[name] = value
    return filled


def merge(lower: dict, upper: dict, path: tuple[str, ...] = ()) -> dict:
    """Deep-merge `upper` over `lower`; a source chosen in `upper` drops `lower`'s source keys."""
    merged = copy.deepcopy(lower)
    exclusive = EXCLUSIVE_KEYS.get(".".join(path), ())
    if any(key in upper for key in exclusive):
        for key in exclusive:
            merged.pop(key, None)
    for key, value in upper.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value, (*path, key))
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def resolve(execution_input: Any, stack_defaults: dict) -> dict:
    """Merge the layers and validate the result; raises InvalidInput listing every problem."""
    if not isinstance(execution_input, dict):
        raise InvalidInput(
            [
                f"(input): {_show(execution_input)} is not a JSON object; "
                'expected an object such as {"training": {...}}'
            ]
        )
    config = opt_in_defaults(merge(merge(schema_defaults(), stack_defaults), execution_input))
    problems = list(schema_problems(config))
    problems += [p for p in semantic_problems(config) if p not in problems]
    if problems:
        raise InvalidInput(problems)
    return config


def _show(value: Any, limit: int = 100) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _field(path: Iterable) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(input)"


def _unknown_keys(error: jsonschema.ValidationError, field: str, suffix: str) -> list[str] | None:
    allowed = sorted(error.schema.get("properties", {}))
    extra = sorted(set(error.instance) - set(allowed))
    prefix = f"{field}." if error.absolute_path else ""
    return [f"{prefix}{key}: unknown key; allowed keys here: {', '.join(allowed)}" for key in extra]


def _one_of_required(error: jsonschema.ValidationError, field: str, suffix: str) -> list[str] | None:
    """Only a choice between required keys has a wording of its own; other oneOfs fall through."""
    if not all(set(s) == {"required"} for s in error.validator_value):
        return None
    choices = [s["required"][0] for s in error.validator_value]
    given = [c for c in choices if c in error.instance]
    return [f"{field}: exactly one of {' or '.join(choices)} is required; got {', '.join(given) if given else 'none'}"]


def _missing_keys(error: jsonschema.ValidationError, field: str, suffix: str) -> list[str] | None:
    missing = [name for name in error.validator_value if name not in error.instance]
    return [f"{field}.{name}: is required" if error.absolute_path else f"{name}: is required" for name in missing]


def _not_in_enum(error: jsonschema.ValidationError, field: str, suffix: str) -> list[str] | None:
    """Long enums are summarised, with close matches offered in place of the full list."""
    value, allowed = error.instance, error.validator_value
    close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=3, cutoff=0.6)
    listing = (
        ", ".join(map(str, allowed))
        if len(allowed) <= 12
        else f"{len(allowed)} values{suffix}" + (f"; did you mean {', '.join(close)}?" if close else "")
    )
    return [f"{field}: {_show(value)} is not allowed; allowed: {listing}"]


def _wrong_type(error: jsonschema.ValidationError, field: str, suffix: str) -> list[str] | None:
    return [f"{field}: {_show(error.instance)} has the wrong type; expected {error.validator_value}"]


_BOUND_WORDS = {
    "minimum": "at least",
    "maximum": "at most",
    "exclusiveMinimum": "greater than",
    "exclusiveMaximum": "less than",
}


def _out_of_range(error: jsonschema.ValidationError, field: str, suffix: str) -> list[str] | None:
    words = _BOUND_WORDS[error.validator]
    return [f"{field}: {_show(error.instance)} is out of range; must be {words} {error.validator_value}"]


def _wrong_length(error: jsonschema.ValidationError, field: str, suffix: str) -> list[str] | None:
    value = error.instance
    words = "at most" if error.validator == "maxLength" else "at least"
    return [f"{field}: {_show(value)} has {len(value)} characters; must have {words} {error.validator_value}"]


def _no_pattern_match(error: jsonschema.ValidationError, field: str, suffix: str) -> list[str] | None:
    return [f"{field}: {_show(error.instance)} does not match {error.validator_value}{suffix}"]


def _bad_items(error: jsonschema.ValidationError, field: str, suffix: str) -> list[str] | None:
    return [f"{field}: {_show(error.instance)} breaks {error.validator}={error.validator_value}"]


# Schema keyword -> wording; a describer returning None leaves the error to jsonschema's own message.
_DESCRIBERS: dict[str, Callable[[jsonschema.ValidationError, str, str], list[str] | None]] = {
    "additionalProperties": _unknown_keys,
    "oneOf": _one_of_required,
    "required": _missing_keys,
    "enum": _not_in_enum,
    "type": _wrong_type,
    **dict.fromkeys(_BOUND_WORDS, _out_of_range),
    "maxLength": _wrong_length,
    "minLength": _wrong_length,
    "pattern": _no_pattern_match,
    **dict.fromkeys(("maxItems", "minItems", "uniqueItems"), _bad_items),
}


def _describe(error: jsonschema.ValidationError) -> list[str]:
    field = _field(error.absolute_path)
    what = error.schema.get("description") if isinstance(error.schema, dict) else None
    suffix = f" ({what})" if what else ""
    describer = _DESCRIBERS.get(error.validator)
    lines = describer(error, field, suffix) if describer else None
    return lines if lines is not None else [f"{field}: {_show(error.instance)}: {error.message}"]


def schema_problems(config: dict) -> Iterable[str]:
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        yield from _describe(error)


def _number(value: Any) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _group(config: dict, name: str) -> dict:
    value = config.get(name)
    return value if isinstance(value, dict) else {}


def _spot_wait_problems(training: dict) -> Iterable[str]:
    runtime, wait = _number(training.get("max_runtime_hours")), _number(training.get("max_wait_hours"))
    spot = training.get("use_spot") is True
    if wait is not None and not spot:
        yield f"training.max_wait_hours: {wait} is only allowed with training.use_spot true"
    if wait is not None and spot and runtime is not None and wait < runtime:
        yield (
            f"training.max_wait_hours: {wait} is below training.max_runtime_hours {runtime}; "
            "spot training waits for capacity plus the run, so it must be at least the run time"
        )


def _max_steps_problems(training: dict) -> Iterable[str]:
    max_steps = _group(training, "hyperparameters").get("max_steps")
    if max_steps == 0 and _number(max_steps) is not None:
        yield ("training.hyperparameters.max_steps: 0 is not allowed; use -1 (train for `epochs`) or an integer >= 1")


def _hub_only_problems(config: dict) -> Iterable[str]:
    """Revisions and splits mean something only for a source on the Hub."""
    dataset = _group(config, "dataset")
    for key in ("hf_split", "hf_revision"):
        if key in dataset and "hf_dataset_id" not in dataset:
            yield f"dataset.{key}: {_show(dataset[key])} is only allowed with dataset.hf_dataset_id"
    base = _group(config, "base_model")
    if "revision" in base and "hf_model_id" not in base:
        yield f"base_model.revision: {_show(base['revision'])} is only allowed with base_model.hf_model_id"


def _token_limit_problems(deployment: dict) -> Iterable[str]:
    max_input, max_total = _number(deployment.get("max_input_tokens")), _number(deployment.get("max_total_tokens"))
    if max_input is not None and max_total is not None and max_input >= max_total:
        yield (f"deployment.max_input_tokens: {max_input} must be less than deployment.max_total_tokens {max_total}")


def _autoscaling_problems(deployment: dict) -> Iterable[str]:
    scaling = deployment.get("autoscaling")
    if not isinstance(scaling, dict):
        return
    low, high = _number(scaling.get("min_instances")), _number(scaling.get("max_instances"))
    count = _number(deployment.get("instance_count"))
    if low is None or high is None:
        return
    if low > high:
        yield (
            f"deployment.autoscaling.min_instances: {low} is above deployment.autoscaling.max_instances "
            f"{high}; the minimum must be at most the maximum"
        )
    elif count is not None and not low <= count <= high:
        yield (
            f"deployment.instance_count: {count} is outside deployment.autoscaling's range {low}..{high}; "
            "the endpoint starts with instance_count instances"
        )


def _lacks_known_gpu(deployment: dict, instance_type: str) -> bool:
    """Only a well-formed ml.<family>.<size> name is judged; num_gpus overrides the catalogue."""
    return (
        instance_type.startswith("ml.")
        and instance_type.count(".") == 2
        and "num_gpus" not in deployment
        and gpu_count(instance_type) is None
    )


def _serving_gpu_problems(deployment: dict) -> Iterable[str]:
    instance_type = deployment.get("instance_type")
    # Checked even when deployment is off: the registered model package names its serving setup.
    if isinstance(instance_type, str) and _lacks_known_gpu(deployment, instance_type):
        engine = deployment.get("engine", "tgi")
        yield (
            f"deployment.instance_type: {_show(instance_type)} has no known NVIDIA GPU "
            f"({no_gpu_reason(instance_type)}); the {engine} container needs one (e.g. ml.g5.2xlarge, "
            "ml.g6e.xlarge) or set deployment.num_gpus"
        )


def semantic_problems(config: dict) -> Iterable[str]:
    """Rules that span several fields; fields of the wrong type are left to the schema."""
    training, deployment = _group(config, "training"), _group(config, "deployment")
    yield from _spot_wait_problems(training)
    yield from _max_steps_problems(training)
    yield from _hub_only_problems(config)
    yield from _token_limit_problems(deployment)
    yield from _autoscaling_problems(deployment)
    yield from _evaluation_generation_problems(config)
    yield from _serving_gpu_problems(deployment)


def _evaluation_generation_problems(config: dict) -> Iterable[str]:
    """vLLM's serving image is built for NVIDIA GPUs: evaluating in it needs a GPU evaluation instance."""
    evaluation = _group(config, "evaluation")
    instance_type = evaluation.get("instance_type")
    if not isinstance(instance_type, str) or evaluation_generation(config) != "vllm":
        return
    if gpu_count(instance_type) is None:
        chosen = evaluation.get("generation", "auto")
        why = "evaluation.generation 'vllm'" if chosen == "vllm" else "a vllm deployment (evaluation.generation 'auto')"
        yield (
            f"evaluation.instance_type: {_show(instance_type)} has no usable NVIDIA GPU "
            f"({no_gpu_reason(instance_type)}); with {why} the evaluation "
            "job runs in the vLLM serving image, which needs one (e.g. ml.g5.2xlarge, ml.g6.xlarge), or set "
            "evaluation.generation to 'transformers' to evaluate in the training image"
        )
