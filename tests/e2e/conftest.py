"""End-to-end fixtures: the synthesized template (once per session) and a tiny-model execution input."""

import copy
from pathlib import Path

import pytest

from local_mode.environment import EmulationSettings, LocalAws
from local_mode.models import prepare_model
from local_mode.stack import synthesize

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DATA = REPO_ROOT / "examples" / "data" / "sql-example.jsonl"

# Small enough for seconds per job on two CPU cores; the gate is set per test.
TINY_INPUT = {
    "dataset": {"format": "sql-create-context", "max_samples": 48, "test_size": 6, "seed": 7},
    "training": {
        "hyperparameters": {
            "max_steps": 4,
            "learning_rate": 0.001,
            "lora_r": 8,
            "lora_alpha": 16,
            "max_length": 128,
            "quantization": "none",
            "per_device_train_batch_size": 4,
            "gradient_accumulation_steps": 1,
            "logging_steps": 1,
            "save_steps": 2,
            "gradient_checkpointing": False,
        }
    },
    "evaluation": {
        "max_samples": 6,
        "batch_size": 6,
        "max_new_tokens": 12,
        "gate": {"min_execution_accuracy": 0.0, "min_improvement_over_base": 0.0, "compare_to_production": False},
    },
    "deployment": {
        "enabled": True,
        "endpoint_name": "sql-assistant",
        "max_input_tokens": 512,
        "max_total_tokens": 640,
        "check": {"samples": 2, "min_match_fraction": 1.0},
    },
    "orchestration": {"poll_interval_seconds": 1},
}


@pytest.fixture(scope="session")
def stack_template(tmp_path_factory):
    return synthesize(cache_dir=REPO_ROOT / ".cache" / "local-mode" / "templates")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    return prepare_model("tiny")


@pytest.fixture
def tiny_input():
    return copy.deepcopy(TINY_INPUT)


def local_aws(workdir, stack_template, **settings):
    stack_name, template = stack_template
    return LocalAws(workdir, template, stack_name, EmulationSettings(verbose_logs=False, **settings))
