"""training_metrics.json: what a finished job records about its run, next to the adapter and the merged
model (evaluate.py reads its log history; docs/training.md describes it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hyperparameters import Hyperparameters
from metrics_logging import TokenCounter
from run_settings import RunSettings

METRICS_FILE = "training_metrics.json"


@dataclass(frozen=True)
class TrainingOutcome:
    """What the Trainer left once it finished, kept after the trainer itself is freed for the merge."""

    global_step: int
    training_loss: float
    eval_loss: float | None
    log_history: list[dict[str, Any]]
    train_rows: int
    dropped_rows: int
    throughput: dict[str, Any]
    resumed_from: Path | None


def training_metrics(
    outcome: TrainingOutcome,
    counter: TokenCounter,
    settings: RunSettings,
    hyperparameters: Hyperparameters,
    timings: dict[str, float],
) -> dict[str, Any]:
    """The record written to training_metrics.json (docs/training.md describes its fields)."""
    return {
        "global_step": outcome.global_step,
        **_history_figures(outcome.log_history),
        "train_loss": outcome.training_loss,
        "eval_loss": outcome.eval_loss,
        "train_rows": outcome.train_rows,
        "dropped_rows": outcome.dropped_rows,
        **_token_figures(counter, settings.num_processes, timings["train_seconds"]),
        "batching": settings.batching.to_dict(),
        "throughput": outcome.throughput,
        "quantization": "4bit" if settings.quantize_4bit else "none",
        "device": device_name(settings.device),
        "num_processes": settings.num_processes,
        "fsdp": hyperparameters.fsdp or None,
        "resumed_from": str(outcome.resumed_from) if outcome.resumed_from else None,
        "timings": timings,
        "hyperparameters": hyperparameters.to_dict(),
        "log_history": outcome.log_history,
    }


def _history_figures(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The last epoch and the last and first logged losses, from the Trainer's log history."""
    losses = [entry["loss"] for entry in history if "loss" in entry]
    return {
        "epochs": next((entry["epoch"] for entry in reversed(history) if "epoch" in entry), None),
        "final_loss": losses[-1] if losses else None,
        "first_loss": losses[0] if losses else None,
    }


def _token_figures(counter: TokenCounter, num_processes: int, train_seconds: float) -> dict[str, Any]:
    """Token counts of all processes: this one's, scaled by the process count (each trains as many batches)."""
    real_total = counter.real_tokens * num_processes
    return {
        "real_tokens": real_total,
        "padding_tokens": counter.padding_tokens * num_processes,
        "padding_share": counter.padding_share,
        "real_tokens_per_second": real_total / train_seconds if train_seconds > 0 else None,
    }


def device_name(device: str) -> str:
    """`cpu`, or `cuda (<the GPU's name>)`."""
    import torch

    return device if device == "cpu" else f"cuda ({torch.cuda.get_device_name(0)})"


def write_training_metrics(output_dir: Path, metrics: dict[str, Any]) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
