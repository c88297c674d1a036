"""Read the rows of a data set file (JSONL, JSON, CSV, Parquet) with the line each came from.

A row that cannot even be parsed (broken JSON on one line of a JSONL file) is returned as a
``RawRow`` with an ``error`` instead of a value, so the caller reports it by line with the rows
that parse but do not fit the format. A file that cannot be read at all raises ``DataFileError``.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


class DataFileError(ValueError):
    """The input as a whole cannot be read (missing, unknown type, not parseable)."""


@dataclass(frozen=True)
class RawRow:
    """A row as read: ``line`` is 1-based (the file's line for JSONL/CSV, the row number otherwise)."""

    line: int
    value: Any = None
    error: str | None = None


def resolve_input(path: Path) -> Path:
    """A data file, or a folder that holds exactly one (as a SageMaker Processing input is mounted)."""
    if path.is_file():
        return path
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        data_files = [p for p in files if p.suffix.lower() in SUFFIXES]
        if len(data_files) != 1:
            found = ", ".join(str(p.relative_to(path)) for p in files) or "nothing"
            raise DataFileError(f"--input folder {path} must hold exactly one data file "
                                f"({', '.join(sorted(SUFFIXES))}); found: {found}")
        return data_files[0]
    raise DataFileError(f"--input {path} does not exist")


def file_kind(path: Path) -> str:
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataFileError(f"--input {path.name}: unknown file type {path.suffix!r}; "
                            f"allowed: {', '.join(sorted(SUFFIXES))}")
    return kind


def read_rows(path: Path) -> Iterator[RawRow]:
    kind = file_kind(path)
    reader = {"jsonl": _read_jsonl, "json": _read_json, "csv": _read_csv, "parquet": _read_parquet}[kind]
    yield from reader(path)


def _read_jsonl(path: Path) -> Iterator[RawRow]:
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield RawRow(number, json.loads(line))
            except json.JSONDecodeError as error:
                yield RawRow(number, error=f"broken JSON ({error.msg} at column {error.colno})")


def _read_json(path: Path) -> Iterator[RawRow]:
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        raise DataFileError(f"{path.name} is not valid JSON: {error.msg} at line {error.lineno} "
                            f"column {error.colno}") from error
    if isinstance(document, dict):
        lists = {key: value for key, value in document.items() if isinstance(value, list)}
        if "data" in lists:
            document = lists["data"]
        elif len(lists) == 1:
            document = next(iter(lists.values()))
        else:
            raise DataFileError(f"{path.name}: a JSON object must hold its rows in a list under 'data' "
                                f"(keys found: {', '.join(document) or 'none'})")
    if not isinstance(document, list):
        raise DataFileError(f"{path.name}: expected a JSON array of rows or {{\"data\": [...]}}, "
                            f"got {type(document).__name__}")
    for number, value in enumerate(document, start=1):
        yield RawRow(number, value)


def _read_csv(path: Path) -> Iterator[RawRow]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise DataFileError(f"{path.name}: the CSV file has no header row")
        for row in reader:
            line = reader.line_num
            if None in row:
                yield RawRow(line, error=f"more values than the {len(reader.fieldnames)} header columns")
                continue
            if any(value is None for value in row.values()):
                yield RawRow(line, error=f"fewer values than the {len(reader.fieldnames)} header columns")
                continue
            yield RawRow(line, dict(row))


def _read_parquet(path: Path) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several types for unreadable files
        raise DataFileError(f"{path.name} is not a readable Parquet file: {error}") from error
    for number, value in enumerate(table.to_pylist(), start=1):
        yield RawRow(number, value)


def read_hub_dataset(dataset_id: str, split: str, revision: str | None = None,
                     token: str | None = None) -> Iterator[RawRow]:
    """Rows of a Hugging Face Hub data set at `revision` (cloud only: this needs the network)."""
    from datasets import load_dataset

    dataset = load_dataset(dataset_id, split=split, revision=revision or None, token=token)
    for number, value in enumerate(dataset, start=1):
        yield RawRow(number, dict(value))
