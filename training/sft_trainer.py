"""trl's SFTTrainer as this job runs it: counting the real and padding tokens of every batch, FSDP on
CPU processes too, the metric line per logging step, and a report of each process's FSDP share.
"""

from __future__ import annotations

import logging
from typing import Any

from batching import count_batch_tokens
from distributed_setup import enable_fsdp_on_cpu, parameter_shares
from hyperparameters import Hyperparameters
from metrics_logging import MetricLineCallback, TokenCounter
from model_loading import lora_config
from throughput import cast_adapters

LOG = logging.getLogger("train")


def make_trainer(
    model: Any,
    tokenizer: Any,
    train_dataset: Any,
    eval_dataset: Any,
    sft_config: Any,
    hyperparameters: Hyperparameters,
    counter: TokenCounter,
    num_processes: int,
    lora_dtype: str | None = None,
) -> Any:
    from transformers import TrainerCallback
    from trl import SFTTrainer

    class TokenCountingSFTTrainer(SFTTrainer):
        """Counts real and padding tokens of every batch, for tokens/s and the padding share."""

        def create_accelerator_and_postprocess(self):
            super().create_accelerator_and_postprocess()
            enable_fsdp_on_cpu(self)

        def training_step(self, model, inputs, num_items_in_batch=None):
            counter.add(*count_batch_tokens(inputs))
            return super().training_step(model, inputs, num_items_in_batch)

    class ShardReport(TrainerCallback):
        """One line saying how much of the model each process holds once FSDP has sharded it."""

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if getattr(args, "fsdp_plugin_args", None) and model is not None:
                total, held = parameter_shares(model)
                if state.is_world_process_zero:
                    LOG.info(
                        "fsdp: parameters %.2f MiB in all, %.2f MiB held by each of %d processes",
                        total / 2**20,
                        held / 2**20,
                        num_processes,
                    )

    trainer = TokenCountingSFTTrainer(
        model=model,
        args=sft_config,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=lora_config(hyperparameters),
        callbacks=[MetricLineCallback(counter, num_processes=num_processes), ShardReport()],
    )
    if lora_dtype is not None:
        cast_adapters(trainer.model, lora_dtype)  # before the optimizer is made, at the start of training
    return trainer


def optimizer_record(trainer: Any) -> dict[str, Any]:
    """Which optimizer the Trainer made, and whether it runs the fused kernel."""
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    if optimizer is None:
        return {}
    return {"class": type(optimizer).__name__, "fused": bool(optimizer.defaults.get("fused"))}
