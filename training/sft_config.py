"""trl's SFTConfig for this job: the hyperparameters, the device's precision, the batching strategy,
FSDP, and the throughput levers resolved for this machine and model (throughput.py).
"""

from __future__ import annotations

from typing import Any

from distributed_setup import fsdp_arguments
from hyperparameters import Hyperparameters
from job_paths import Paths
from model_loading import compute_dtype, model_bytes
from run_settings import RunSettings
from throughput import (
    Levers,
    ModelDims,
    batching_overrides,
    detect_machine,
    request_from,
    resolve_levers,
    sft_config_kwargs,
)


def job_levers(
    hyperparameters: Hyperparameters, settings: RunSettings, model: Any = None, mean_row_tokens: float | None = None
) -> Levers:
    """The throughput levers for this job on this machine (training/throughput.py); with the loaded
    model, `auto` checkpointing and token budgets are sized from its shape and the memory it leaves."""
    request = request_from(
        hyperparameters, padding_free=settings.batching.padding_free, quantize_4bit=settings.quantize_4bit
    )
    machine = detect_machine(settings.device)
    if model is None:
        return resolve_levers(request, machine, mean_row_tokens=mean_row_tokens)
    return resolve_levers(request, machine, ModelDims.of(model.config), model_bytes(model), mean_row_tokens)


def build_sft_config(
    paths: Paths, hyperparameters: Hyperparameters, settings: RunSettings, model: Any, levers: Levers | None = None
) -> Any:
    import torch
    from trl import SFTConfig

    levers = levers or job_levers(hyperparameters, settings, model)
    use_bf16 = settings.device == "cuda" and compute_dtype(settings.device) == torch.bfloat16
    fsdp = fsdp_arguments(hyperparameters, model, levers.gradient_checkpointing.value != "none")
    batching = {**settings.batching.sft_config_kwargs(hyperparameters.max_length), **batching_overrides(levers.plan)}
    return SFTConfig(
        output_dir=str(paths.checkpoint_dir),
        num_train_epochs=hyperparameters.epochs,
        max_steps=hyperparameters.max_steps,
        learning_rate=hyperparameters.learning_rate,
        per_device_eval_batch_size=hyperparameters.per_device_train_batch_size,
        warmup_steps=hyperparameters.warmup_ratio,  # a float below 1 is a ratio of the total steps
        logging_strategy="steps",
        logging_steps=hyperparameters.logging_steps,
        save_strategy="steps",
        save_steps=hyperparameters.save_steps,
        save_total_limit=2,
        eval_strategy="no",
        seed=hyperparameters.seed,
        report_to="none",
        disable_tqdm=True,
        bf16=use_bf16,
        fp16=settings.device == "cuda" and not use_bf16,
        use_cpu=settings.device == "cpu",
        ddp_backend="gloo" if settings.device == "cpu" and settings.num_processes > 1 else None,
        ddp_find_unused_parameters=False,
        assistant_only_loss=False,  # labels already mask everything but the assistant turns
        **sft_config_kwargs(levers, fsdp=bool(fsdp)),
        **batching,
        **fsdp,
    )
