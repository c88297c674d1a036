"""Where a training job reads and writes: the SageMaker container layout under OPT_ML.

Every path is also a command-line option of train.py (parse_arguments), so local runs and tests
point the job anywhere; the defaults are what SageMaker mounts and collects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    """Where the job reads and writes; defaults follow the SageMaker container layout under OPT_ML."""

    train_dir: Path
    base_model_dir: Path
    output_dir: Path
    checkpoint_dir: Path
    hyperparameters_file: Path
    failure_file: Path

    @classmethod
    def defaults(cls, opt_ml: Path) -> Paths:
        return cls(
            train_dir=opt_ml / "input" / "data" / "train",
            base_model_dir=opt_ml / "input" / "data" / "model",
            output_dir=opt_ml / "model",
            checkpoint_dir=opt_ml / "checkpoints",
            hyperparameters_file=opt_ml / "input" / "config" / "hyperparameters.json",
            failure_file=opt_ml / "output" / "failure",
        )


def write_failure(paths: Paths, message: str) -> None:
    """SageMaker shows the first 1024 characters of this file as the job's FailureReason."""
    try:
        paths.failure_file.parent.mkdir(parents=True, exist_ok=True)
        paths.failure_file.write_text(message[:1024], encoding="utf-8")
    except OSError:
        pass
