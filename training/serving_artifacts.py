"""The merged model folder, written so that each serving image's own transformers reads it as evaluated.

The training image writes with transformers 5; the serving images read with their own, older
releases (TGI 3.3.6: transformers 4.51.0; the SageMaker vLLM image: 5.15.0). What plain
`save_pretrained` leaves out or writes in a form only transformers 5 knows, and what is added here:

- weights in the serving dtype (the base model's own half precision, else bf16), not fp32: the
  engines serve half precision anyway, and the evaluation then scores the bytes they serve;
- `rope_theta`/`rope_scaling` and `torch_dtype` in config.json beside `rope_parameters` and
  `dtype`: transformers 4 reads only the legacy keys and falls back to a RoPE base of 10,000;
- `tokenizer_class: PreTrainedTokenizerFast`, the generic class that reads `tokenizer.json` as it
  is in transformers 4 and 5 alike (transformers 5 writes `TokenizersBackend`, unknown to 4), with
  `additional_special_tokens` instead of the list form of `extra_special_tokens` (which 4 cannot
  read) and the chat template inside tokenizer_config.json (TGI's router reads it only there);
- no special tokens added at encode time when the chat template already renders the prompt: TGI's
  `/invocations` and vLLM's completions encode with `add_special_tokens=True`, while training and
  evaluation encode the rendered prompt without them; a BOS added there would appear twice;
- serving_check.json (serving_manifest.py): the values the evaluation reads from this folder, for
  check_serving.py to compare inside each serving image.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from chat_format import render_prompt
from serving_manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    PROBE_ANSWER,
    PROBE_MESSAGES,
    config_values,
    differences,
    dtype_name,
)

LOG = logging.getLogger("serving_artifacts")
GENERIC_FAST_TOKENIZER = "PreTrainedTokenizerFast"
HALF_PRECISION = ("bfloat16", "float16")
DEFAULT_SERVING_DTYPE = "bfloat16"


class ServingArtifactError(RuntimeError):
    """The folder written would not be read back as the model that was trained."""


def serving_dtype(declared: str | None) -> str:
    """The base model's own dtype when it is half precision; bf16 for fp32 or undeclared bases."""
    return declared if declared in HALF_PRECISION else DEFAULT_SERVING_DTYPE


def declared_dtype(source: str, token: str | None = None) -> str | None:
    """The dtype the base model's config declares ("bfloat16" for Qwen2.5-Coder), or None."""
    from transformers import AutoConfig

    return dtype_name(getattr(AutoConfig.from_pretrained(source, token=token), "dtype", None))  # nosec B615 # a local folder (train.py downloads a Hub id at its pinned commit first)


def save_for_serving(model, tokenizer, merged_dir: Path, dtype: str) -> dict[str, Any]:
    """Write weights (in `dtype`), config, tokenizer and serving_check.json; returns the manifest.

    `model` carries its generation config already. Raises ServingArtifactError when the project's
    own transformers would read the written folder differently from the model in memory.
    """
    import torch

    merged_dir = Path(merged_dir)
    model.to(getattr(torch, dtype))
    model.config.dtype = getattr(torch, dtype)
    model.save_pretrained(merged_dir, safe_serialization=True, max_shard_size="5GB")
    add_legacy_config_fields(merged_dir / "config.json")
    tokenizer.save_pretrained(merged_dir)
    removed = make_tokenizer_portable(merged_dir, tokenizer)
    manifest = build_manifest(
        merged_dir,
        expected_config=config_values(model.config, _transformers_version()),
        original_tokenizer=tokenizer,
        removed_special_tokens=removed,
    )
    (merged_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return manifest


# ---------------------------------------------------------------- config.json


def legacy_rope_fields(rope_parameters: Any) -> dict[str, Any]:
    """`rope_theta`/`rope_scaling` (and `partial_rotary_factor`) equal to transformers 5's `rope_parameters`.

    Per-layer-type parameters (one dict per attention type) have no legacy form; {} is returned.
    """
    if not isinstance(rope_parameters, dict) or "rope_theta" not in rope_parameters:
        return {}
    scaling = {
        key: value
        for key, value in rope_parameters.items()
        if key not in ("rope_theta", "partial_rotary_factor") and value is not None
    }
    scaling.setdefault("rope_type", "default")
    fields: dict[str, Any] = {
        "rope_theta": rope_parameters["rope_theta"],
        "rope_scaling": None if scaling == {"rope_type": "default"} else scaling,
    }
    if rope_parameters.get("partial_rotary_factor") is not None:
        fields["partial_rotary_factor"] = rope_parameters["partial_rotary_factor"]
    return fields


def add_legacy_config_fields(config_file: Path) -> None:
    """Add the keys transformers 4 reads (`rope_theta`, `rope_scaling`, `torch_dtype`) to config.json."""
    config = json.loads(config_file.read_text(encoding="utf-8"))
    legacy = legacy_rope_fields(config.get("rope_parameters"))
    if config.get("rope_parameters") and not legacy:
        LOG.warning(
            "rope_parameters %s have no legacy form; transformers 4 will read its defaults", config["rope_parameters"]
        )
    config.update(legacy)
    if config.get("dtype"):
        config["torch_dtype"] = config["dtype"]
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- tokenizer


def make_tokenizer_portable(merged_dir: Path, tokenizer) -> list[str]:
    """Rewrite the saved tokenizer_config.json (and tokenizer.json) for every supported transformers.

    Returns the special tokens the tokenizer no longer adds by itself at encode time.
    """
    if not (merged_dir / "tokenizer.json").is_file():
        raise ServingArtifactError(
            f"{type(tokenizer).__name__} saved no tokenizer.json; TGI's router and every "
            "supported transformers need it (use a fast tokenizer)"
        )
    config_file = merged_dir / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["tokenizer_class"] = GENERIC_FAST_TOKENIZER
    extra = config.get("extra_special_tokens")
    if isinstance(extra, list):
        del config["extra_special_tokens"]
        config["additional_special_tokens"] = extra
    template = tokenizer.chat_template
    if isinstance(template, dict):
        template = [{"name": name, "template": text} for name, text in template.items()]
    if template:
        config["chat_template"] = template
    config["clean_up_tokenization_spaces"] = bool(getattr(tokenizer, "clean_up_tokenization_spaces", False))
    removed: list[str] = []
    probe = render_prompt(tokenizer, list(PROBE_MESSAGES))
    if _ids(tokenizer, probe, True) != _ids(tokenizer, probe, False):
        removed = strip_added_special_tokens(merged_dir / "tokenizer.json")
        config["add_bos_token"] = False
        config["add_eos_token"] = False
        bos = tokenizer.bos_token
        if bos and bos in removed and not probe.startswith(bos):
            LOG.warning(
                "the tokenizer added %s by itself and the chat template does not write it: training and "
                "evaluation fed prompts without it, so the served tokenizer no longer adds it either",
                bos,
            )
    config_file.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return removed


def strip_added_special_tokens(tokenizer_file: Path) -> list[str]:
    """Make tokenizer.json's post-processor add nothing to a single sequence; returns what it added."""
    data = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    processor, removed = _without_single_specials(data.get("post_processor"))
    data["post_processor"] = processor
    tokenizer_file.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return removed


def _without_single_specials(processor: dict | None) -> tuple[dict | None, list[str]]:
    if not isinstance(processor, dict):
        return processor, []
    kind = processor.get("type")
    if kind == "Sequence":
        parts, removed = [], []
        for part in processor.get("processors", []):
            new, gone = _without_single_specials(part)
            parts.append(new)
            removed += gone
        return {**processor, "processors": parts}, removed
    if kind == "TemplateProcessing":
        single = processor.get("single", [])
        removed = [item["SpecialToken"]["id"] for item in single if "SpecialToken" in item]
        return {**processor, "single": [item for item in single if "Sequence" in item]}, removed
    if kind in ("BertProcessing", "RobertaProcessing"):
        removed = [processor["cls"][0], processor["sep"][0]]
        plain = {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {},
        }
        return plain, removed
    return processor, []


def _ids(tokenizer, text: str, add_special_tokens: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])


# ---------------------------------------------------------------- serving_check.json


def build_manifest(
    merged_dir: Path, expected_config: dict[str, Any], original_tokenizer, removed_special_tokens: list[str]
) -> dict[str, Any]:
    """The values the evaluation reads from `merged_dir`, checked against the model in memory.

    `expected_config` is config_values() of the trained model; the folder must read back the same,
    and its tokenizer must encode and decode the probe as the training tokenizer did.
    """
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    version = _transformers_version()
    read_back = config_values(AutoConfig.from_pretrained(merged_dir), version)  # nosec B615 # a local folder (train.py downloads a Hub id at its pinned commit first)
    problems = differences(read_back, expected_config, "config")
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)  # nosec B615 # a local folder (train.py downloads a Hub id at its pinned commit first)
    probe = render_prompt(original_tokenizer, list(PROBE_MESSAGES))
    probe_ids = _ids(original_tokenizer, probe, False)
    answer_ids = [*_ids(original_tokenizer, PROBE_ANSWER, False), original_tokenizer.eos_token_id]
    decoded = original_tokenizer.decode(answer_ids, skip_special_tokens=True)
    if render_prompt(tokenizer, list(PROBE_MESSAGES)) != probe:
        problems.append(("tokenizer.chat_template", "renders the probe differently", "the training rendering"))
    for field, found, expected in (
        ("tokenizer.probe_ids", _ids(tokenizer, probe, False), probe_ids),
        ("tokenizer.probe_ids_with_special_tokens", _ids(tokenizer, probe, True), probe_ids),
        ("tokenizer.decoded", tokenizer.decode(answer_ids, skip_special_tokens=True), decoded),
    ):
        if found != expected:
            problems.append((field, found, expected))
    if problems:
        raise ServingArtifactError(
            "the merged folder does not read back as the trained model: "
            + "; ".join(f"{field}: found {found!r}, expected {expected!r}" for field, found, expected in problems)
        )
    generation = GenerationConfig.from_pretrained(merged_dir)  # nosec B615 # a local folder (train.py downloads a Hub id at its pinned commit first)
    return {
        "format": FORMAT_VERSION,
        "written_with": {"transformers": version},
        "config": expected_config,
        "weights": _weights_summary(merged_dir),
        "tokenizer": {
            "original_class": type(original_tokenizer).__name__,
            "tokenizer_class": GENERIC_FAST_TOKENIZER,
            "special_tokens": {
                name: getattr(tokenizer, name)
                for name in ("bos_token", "eos_token", "pad_token", "unk_token")
                if getattr(tokenizer, name, None) is not None
            },
            "eos_token_id": tokenizer.eos_token_id,
            "size": len(tokenizer),
            "chat_template_sha256": _sha256(tokenizer.chat_template),
            "removed_special_tokens": removed_special_tokens,
            "probe": {"text": probe, "ids": probe_ids},
            "decode_probe": {"ids": answer_ids, "text": decoded},
        },
        "generation": {
            "eos_token_id": _as_list(generation.eos_token_id),
            "pad_token_id": generation.pad_token_id,
            "defaults": {
                key: value
                for key, value in generation.to_diff_dict().items()
                if key not in ("transformers_version", "eos_token_id", "pad_token_id", "bos_token_id")
            },
        },
    }


def _weights_summary(merged_dir: Path) -> dict[str, Any]:
    files = sorted(path.name for path in merged_dir.glob("*.safetensors"))
    return {
        "dtype": dtype_name(json.loads((merged_dir / "config.json").read_text())["dtype"]),
        "files": files,
        "bytes": sum((merged_dir / name).stat().st_size for name in files),
    }


def _sha256(template: Any) -> str | None:
    if not template:
        return None
    text = template if isinstance(template, str) else json.dumps(template, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return sorted(set(value if isinstance(value, list) else [value]))


def _transformers_version() -> str:
    import transformers

    return transformers.__version__
