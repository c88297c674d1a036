"""The base model as training takes it: where it comes from, its dtype, 4-bit quantization, and the
LoRA adapter put on it.

What a job loads is always a local folder (local_model_folder): the `model` channel, or the Hub
snapshot at the commit Preflight pinned (hub_snapshot.py). That is why no `revision` is passed here.
"""

from __future__ import annotations

import os
from typing import Any

from hub_snapshot import pinned_snapshot
from hyperparameters import Hyperparameters
from job_paths import Paths
from run_settings import RunSettings
from training_data import DataError


def model_source(paths: Paths, hyperparameters: Hyperparameters) -> str:
    """The `model` channel when it holds a model, else the Hub id from the hyperparameters."""
    if (paths.base_model_dir / "config.json").is_file():
        return str(paths.base_model_dir)
    if hyperparameters.model_id:
        return hyperparameters.model_id
    raise DataError(f"no base model: {paths.base_model_dir} has no config.json and hyperparameter model_id is empty")


def local_model_folder(source: str, hyperparameters: Hyperparameters, token: str | None) -> str:
    """The folder to load from: a Hub id becomes its snapshot at the commit Preflight resolved, downloaded once."""
    if source == hyperparameters.model_id:
        return pinned_snapshot(source, hyperparameters.model_revision, token)
    return source


def compute_dtype(device: str) -> Any:
    """bf16 (or fp16) on GPUs; fp32 on CPU, where half precision is slow and imprecise."""
    import torch

    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def load_training_model(
    source: str,
    settings: RunSettings,
    hyperparameters: Hyperparameters,
    token: str | None,
    attn_implementation: str = "sdpa",
) -> Any:
    """The base model ready for LoRA: 4-bit NF4 with double quantization for QLoRA, else full weights.

    Activation checkpointing is left to the Trainer (sft_config.build_sft_config), which turns it on
    for the layers the `gradient_checkpointing` lever names.
    """
    from transformers import AutoModelForCausalLM

    dtype = compute_dtype(settings.device)
    kwargs: dict[str, Any] = {"dtype": dtype, "token": token, "attn_implementation": attn_implementation}
    if settings.quantize_4bit:
        kwargs.update(_four_bit_kwargs(settings, hyperparameters, dtype))
    model = AutoModelForCausalLM.from_pretrained(source, **kwargs)  # nosec B615  # a folder, see above
    if settings.quantize_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    configure_for_training(model)
    return model


def _four_bit_kwargs(settings: RunSettings, hyperparameters: Hyperparameters, dtype: Any) -> dict[str, Any]:
    """from_pretrained's QLoRA arguments. FSDP shards the 4-bit weights, so they are stored in the
    compute dtype and placed by FSDP; without it each process puts the whole model on its own device."""
    import torch
    from transformers import BitsAndBytesConfig

    kwargs: dict[str, Any] = {
        "quantization_config": BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_quant_storage=dtype if hyperparameters.fsdp else torch.uint8,
        )
    }
    if not hyperparameters.fsdp:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        kwargs["device_map"] = {"": local_rank if settings.device == "cuda" else "cpu"}
    return kwargs


def configure_for_training(model: Any) -> None:
    """No KV cache while training: with a cache, transformers skips the block-diagonal attention mask
    that keeps packed and padding-free examples from attending to each other."""
    model.config.use_cache = False


def lora_config(hyperparameters: Hyperparameters) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=hyperparameters.lora_r,
        # peft annotates an int but only divides by it (alpha / r): a float alpha scales as asked.
        lora_alpha=hyperparameters.lora_alpha,  # type: ignore[arg-type]
        lora_dropout=hyperparameters.lora_dropout,
        target_modules="all-linear",
        bias="none",
        task_type="CAUSAL_LM",
    )


def model_bytes(model: Any) -> int:
    """Memory the loaded model takes: its parameters' and buffers' bytes (4-bit weights count packed).

    Read off the tensors rather than the CUDA allocator: a bf16 base is still on the CPU here; the
    Trainer moves it to the GPU.
    """
    return sum(tensor.numel() * tensor.element_size() for tensor in [*model.parameters(), *model.buffers()])
