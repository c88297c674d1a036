"""The train channel's conversations, read and tokenized for the trainer.

Each line of train.jsonl (and the optional test.jsonl) is one {"messages": [...]} object; a line
that cannot be used fails the job with a DataError naming the file, the line and the problem.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chat_format import IGNORE_INDEX, ChatFormatError, encode_conversation

EVAL_ROWS_LIMIT = 32  # held-out rows scored once training ends

Conversation = tuple[int, list[dict]]  # (line number, messages)


class DataError(ValueError):
    """The training data cannot be used; the message names the file, line and problem."""


def load_conversations(path: Path) -> list[Conversation]:
    """The `messages` of every line of a JSONL file; a bad line raises DataError naming it."""
    if not path.is_file():
        raise DataError(f"{path}: file not found (the train channel must hold train.jsonl)")
    conversations = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path.name} line {number}: not valid JSON ({error.msg})") from error
            messages = row.get("messages") if isinstance(row, dict) else None
            if not isinstance(messages, list):
                raise DataError(f"{path.name} line {number}: expected an object with a 'messages' list")
            conversations.append((number, messages))
    if not conversations:
        raise DataError(f"{path}: no rows")
    return conversations


def load_channel(train_dir: Path) -> tuple[list[Conversation], list[Conversation]]:
    """(train.jsonl's conversations, the first EVAL_ROWS_LIMIT of test.jsonl's, or none without one)."""
    conversations = load_conversations(train_dir / "train.jsonl")
    test_file = train_dir / "test.jsonl"
    eval_conversations = load_conversations(test_file)[:EVAL_ROWS_LIMIT] if test_file.is_file() else []
    return conversations, eval_conversations


def tokenize_conversations(tokenizer: Any, conversations: list[Conversation], max_length: int) -> tuple[Any, int]:
    """A datasets.Dataset of input_ids/labels (assistant tokens only), truncated to max_length.

    Returns (dataset, number of rows dropped because truncation left no assistant token).
    """
    from datasets import Dataset

    input_ids, labels, dropped = [], [], 0
    for number, messages in conversations:
        try:
            encoded = encode_conversation(tokenizer, messages)
        except ChatFormatError as error:
            raise DataError(f"line {number}: {error}") from error
        ids, lab = encoded.input_ids[:max_length], encoded.labels[:max_length]
        if all(label == IGNORE_INDEX for label in lab):
            dropped += 1
            continue
        input_ids.append(ids)
        labels.append(lab)
    if not input_ids:
        raise DataError(f"no row keeps an assistant token within max_length={max_length}; raise max_length")
    return Dataset.from_dict({"input_ids": input_ids, "labels": labels}), dropped


def tokenize_channel(
    tokenizer: Any, conversations: list[Conversation], eval_conversations: list[Conversation], max_length: int
) -> tuple[Any, int, Any]:
    """(train dataset, rows dropped from it, eval dataset or None when there are no eval rows)."""
    train_dataset, dropped = tokenize_conversations(tokenizer, conversations, max_length)
    eval_dataset = tokenize_conversations(tokenizer, eval_conversations, max_length)[0] if eval_conversations else None
    return train_dataset, dropped, eval_dataset
