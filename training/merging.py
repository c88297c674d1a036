"""The adapter merged into the unquantized base model, saved in the form serving reads.

`source` is a local folder (the `model` channel or the snapshot pinned to Preflight's commit, see
hub_snapshot.py), so no `revision` is passed to from_pretrained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from model_loading import compute_dtype
from serving_artifacts import declared_dtype, save_for_serving, serving_dtype


def generation_eos_ids(tokenizer: Any, base_generation_config: Any) -> int | list[int]:
    """The tokenizer's EOS first, then any stop tokens the base model already had."""
    ids = [tokenizer.eos_token_id]
    existing = getattr(base_generation_config, "eos_token_id", None) if base_generation_config else None
    for token_id in existing if isinstance(existing, list) else [existing]:
        if token_id is not None and token_id not in ids:
            ids.append(token_id)
    return ids[0] if len(ids) == 1 else ids


def merge_and_save(
    source: str, adapter_dir: Path, merged_dir: Path, tokenizer: Any, device: str, token: str | None
) -> None:
    """Merge the adapter into the unquantized base model and save it with tokenizer and generation config,
    in the serving dtype and in the form every supported serving image reads (serving_artifacts.py)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, GenerationConfig

    dtype = compute_dtype(device) if device == "cuda" else torch.float32
    base = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, token=token)  # nosec B615  # a folder
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    try:
        generation = GenerationConfig.from_pretrained(source, token=token)  # nosec B615  # a folder
    except OSError:
        generation = GenerationConfig.from_model_config(merged.config)
    generation.eos_token_id = generation_eos_ids(tokenizer, generation)
    generation.pad_token_id = tokenizer.pad_token_id
    merged.generation_config = generation
    merged.config.eos_token_id = tokenizer.eos_token_id
    merged.config.pad_token_id = tokenizer.pad_token_id
    merged.config.use_cache = True
    save_for_serving(merged, tokenizer, merged_dir, serving_dtype(declared_dtype(source, token)))
