"""The decisions a job makes from its hyperparameters and the machine it runs on, before loading anything:
device, 4-bit quantization, batching strategy, model source and process count.

They are logged at the start and recorded in training_metrics.json.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from batching import BatchingSettings, resolve
from hyperparameters import Hyperparameters


@dataclass(frozen=True)
class RunSettings:
    """Decisions made from the hyperparameters and the machine, recorded in training_metrics.json."""

    device: str
    quantize_4bit: bool
    batching: BatchingSettings
    model_source: str
    num_processes: int

    @classmethod
    def for_job(cls, hyperparameters: Hyperparameters, model_source: str) -> RunSettings:
        """The settings on this machine; torchrun's WORLD_SIZE counts the processes (1 without it)."""
        device = detect_device()
        return cls(
            device=device,
            quantize_4bit=wants_4bit(hyperparameters, device),
            batching=resolve(hyperparameters.batching, device),
            model_source=model_source,
            num_processes=int(os.environ.get("WORLD_SIZE", "1")),
        )

    def summary(self) -> str:
        """The line the job logs before it loads anything."""
        return (
            f"device={self.device} processes={self.num_processes} 4bit={self.quantize_4bit} "
            f"batching={self.batching.strategy} model={self.model_source}"
        )


def detect_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def wants_4bit(hyperparameters: Hyperparameters, device: str) -> bool:
    """QLoRA on CUDA by default; `4bit` forces it (bitsandbytes also quantizes on CPU), `none` never."""
    if hyperparameters.quantization == "auto":
        return device == "cuda"
    return hyperparameters.quantization == "4bit"
