"""Shared fixtures for the training tests: a tiny offline model and small chat data sets."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from local_mode.models import build_tiny_model

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
        rows.append({
            "id": f"row-{index}",
            "messages": [
                {"role": "system", "content": f"CREATE TABLE {table} ({wanted} VARCHAR, {where} INTEGER)"},
                {"role": "user", "content": f"What is the {wanted} when the {where} is {value}?"},
                {"role": "assistant", "content": f"SELECT {wanted} FROM {table} WHERE {where} = {value}"},
            ],
        })
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
