"""The serving check's contract: what serving_check.json holds and how a model config is read.

serving_artifacts.py writes serving_check.json next to the merged weights, with the training
image's transformers; check_serving.py reads it inside a serving image, with that image's
transformers. Both sides read a model config through `config_values`, so each reports the values
its own transformers uses: transformers 5 keeps RoPE settings in `rope_parameters` and the dtype in
`dtype`, transformers 4 in `rope_theta`/`rope_scaling` and `torch_dtype`.

Standard library only: check_serving.py imports it inside serving images.
"""

from __future__ import annotations

from typing import Any

MANIFEST_NAME = "serving_check.json"
FORMAT_VERSION = 1

# Config attributes that change what the model computes, or where generation starts and stops.
CONFIG_FIELDS = (
    "model_type",
    "architectures",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "hidden_act",
    "max_position_embeddings",
    "rms_norm_eps",
    "layer_norm_eps",
    "tie_word_embeddings",
    "attention_bias",
    "mlp_bias",
    "sliding_window",
    "max_window_layers",
    "partial_rotary_factor",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
)

# A chat prompt that exercises what tokenizers get wrong: quotes, accents, runs of spaces, digits.
PROBE_MESSAGES = (
    {"role": "system", "content": 'CREATE TABLE "têams" (name VARCHAR, wins INTEGER, city VARCHAR)'},
    {"role": "user", "content": "How many  wins has the team named 'Ünited 42' got?\n\tAnswer with SQL."},
)
PROBE_ANSWER = "SELECT wins FROM \"têams\" WHERE name = 'Ünited 42'  AND city <> ''"


def major_version(version: str) -> int:
    """5 for "5.23.0": the transformers generation that decides how a config is read."""
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def config_values(config: Any, transformers_version: str) -> dict[str, Any]:
    """The values a config object holds for CONFIG_FIELDS, plus `rope` and `dtype`, as plain JSON.

    Fields the config does not set are left out. A sliding window that `use_sliding_window: false`
    switches off counts as no window (transformers 5 reads it so; transformers 4 keeps the number
    and checks the switch in the model code).
    """
    values: dict[str, Any] = {}
    for name in CONFIG_FIELDS:
        value = getattr(config, name, None)
        if value is not None:
            values[name] = _plain(value)
    if getattr(config, "use_sliding_window", None) is False:
        values.pop("sliding_window", None)
    values["rope"] = rope_values(config, transformers_version)
    dtype = getattr(config, "dtype" if major_version(transformers_version) >= 5 else "torch_dtype", None)
    values["dtype"] = dtype_name(dtype)
    return values


def rope_values(config: Any, transformers_version: str) -> dict[str, Any] | None:
    """RoPE settings as one dict: rope_type, rope_theta and the scaling parameters.

    transformers 5 reads `rope_parameters` (one dict, or one per layer type); transformers 4 reads
    `rope_theta` and `rope_scaling` (where `type` is the old name of `rope_type`).
    """
    if major_version(transformers_version) >= 5:
        parameters = getattr(config, "rope_parameters", None)
        if isinstance(parameters, dict) and parameters and all(isinstance(v, dict) for v in parameters.values()):
            return {layer: normalized_rope(sub) for layer, sub in sorted(parameters.items())}
        return normalized_rope(parameters) if isinstance(parameters, dict) else None
    theta = getattr(config, "rope_theta", None)
    scaling = getattr(config, "rope_scaling", None)
    parameters = dict(scaling) if isinstance(scaling, dict) else {}
    if theta is not None:
        parameters["rope_theta"] = theta
    return normalized_rope(parameters) if parameters else None


def normalized_rope(parameters: dict[str, Any]) -> dict[str, Any]:
    out = {key: _plain(value) for key, value in parameters.items() if value is not None and key != "type"}
    out["rope_type"] = parameters.get("rope_type") or parameters.get("type") or "default"
    return dict(sorted(out.items()))


def dtype_name(dtype: Any) -> str | None:
    """ "bfloat16" for torch.bfloat16 or "bfloat16"; None when unset."""
    if dtype is None:
        return None
    return str(dtype).removeprefix("torch.")


def differences(found: Any, expected: Any, field: str) -> list[tuple[str, Any, Any]]:
    """(field, found, expected) for every leaf where two JSON values differ; dicts are compared key by key."""
    if isinstance(found, dict) and isinstance(expected, dict):
        out = []
        for key in sorted(set(found) | set(expected)):
            out += differences(found.get(key, MISSING), expected.get(key, MISSING), f"{field}.{key}")
        return out
    return [] if _same(found, expected) else [(field, found, expected)]


MISSING = "<missing>"


def _same(found: Any, expected: Any) -> bool:
    if isinstance(found, bool) or isinstance(expected, bool):
        return found is expected
    if isinstance(found, (int, float)) and isinstance(expected, (int, float)):
        return float(found) == float(expected)
    return found == expected


def _plain(value: Any) -> Any:
    """JSON-ready: tuples become lists, dtypes their names, anything else unknown its str()."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return str(value).removeprefix("torch.")
