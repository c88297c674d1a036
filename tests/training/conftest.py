"""Shared fixtures for the training tests: a tiny offline model and small chat data sets."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from local_mode.models import REPO_ROOT, build_tiny_model

REPO_ROOT_FOR_TESTS = REPO_ROOT  # the checkout's root, for the tests that read its files

# Two cores are shared by everything that runs tests; more threads only contend.
torch.set_num_threads(2)

_COLUMNS = ["name", "age", "city", "team", "year", "score", "price", "title"]
_TABLES = ["players", "books", "products", "games", "teams"]


def sql_conversations(count: int, seed: int = 0) -> list[dict]:
    """Small, learnable text-to-SQL conversations in the contract's messages format."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        table = rng.choice(_TABLES)
        wanted, where = rng.sample(_COLUMNS, 2)
        value = rng.randint(1, 99)
        rows.append(
            {
                "id": f"row-{index}",
                "messages": [
                    {"role": "system", "content": f"CREATE TABLE {table} ({wanted} VARCHAR, {where} INTEGER)"},
                    {"role": "user", "content": f"What is the {wanted} when the {where} is {value}?"},
                    {"role": "assistant", "content": f"SELECT {wanted} FROM {table} WHERE {where} = {value}"},
                ],
            }
        )
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama with a trained BPE tokenizer and chat template, built once per session."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def sql_train_dir(tmp_path_factory) -> Path:
    """A `train` channel folder: train.jsonl (48 rows) and test.jsonl (8 rows)."""
    folder = tmp_path_factory.mktemp("train-channel")
    write_jsonl(folder / "train.jsonl", sql_conversations(48, seed=1))
    write_jsonl(folder / "test.jsonl", sql_conversations(8, seed=2))
    return folder


def run_training(work_dir: Path, model_dir: Path, train_dir: Path, **hyperparameters) -> Path:
    """Run training/train.py in this process on `model_dir`; returns the output (model) folder.

    Hyperparameters default to a quick CPU run of the tiny model; pass any contract name to override it. Raises
    SystemExit with train.py's exit code when it fails.
    """
    import train

    settings = {
        "max_steps": 12,
        "learning_rate": 1e-2,
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 1,
        "logging_steps": 4,
        "save_steps": 6,
        "gradient_checkpointing": False,
        "warmup_ratio": 0.0,
        "max_length": 128,
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.0,
    }
    settings.update(hyperparameters)
    argv = [
        "--train_dir",
        str(train_dir),
        "--base_model_dir",
        str(model_dir),
        "--output_dir",
        str(work_dir / "model"),
        "--checkpoint_dir",
        str(work_dir / "checkpoints"),
        "--hyperparameters_file",
        str(work_dir / "hyperparameters.json"),
        "--failure_file",
        str(work_dir / "failure"),
    ]
    for name, value in settings.items():
        argv += [f"--{name}", str(value)]
    code = train.main(argv)
    if code:
        raise SystemExit(code)
    return work_dir / "model"


@pytest.fixture(scope="session")
def tiny_training_run(tmp_path_factory, tiny_model_dir, sql_train_dir):
    """One finished training run on the tiny model: (output folder, captured stdout)."""
    import contextlib
    import io

    work_dir = tmp_path_factory.mktemp("run")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        output = run_training(work_dir, tiny_model_dir, sql_train_dir)
    return output, stdout.getvalue()
