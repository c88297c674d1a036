"""Read the rows of a data set file (JSONL, JSON, CSV, Parquet) with the line each came from.

A row that cannot even be read (bytes that are not UTF-8, broken JSON, nesting deeper than the JSON
parser goes, a line or record over ``MAX_RECORD_BYTES``, a CSV record with too many or too few
values) is returned as a ``RawRow`` with an ``error`` instead of a value, so the caller reports it
by line with the rows that parse but do not fit the format; the rows after it are read as usual.
JSONL is read as bytes and decoded line by line, CSV record by record (``csv_records``), Parquet
batch by batch. A file that cannot be read at all raises ``DataFileError``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from csv_records import CHUNK_BYTES, read_records

SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
# One line (JSONL) or record (CSV) larger than this is a bad row, read past without being kept.
MAX_RECORD_BYTES = 16 * 1024 * 1024
TOO_DEEP = "JSON nested too deeply to read (arrays or objects inside one another ~1,000 levels deep)"
_BOM = b"\xef\xbb\xbf"
PARQUET_BATCH_ROWS = 1024
_PARQUET_VALUE_ERRORS = (ValueError, OverflowError)  # UnicodeDecodeError and pyarrow's ArrowInvalid among them


class DataFileError(ValueError):
    """The input as a whole cannot be read (missing, unknown type, not parseable)."""


@dataclass(frozen=True)
class RawRow:
    """A row as read: ``line`` is 1-based (the file's line for JSONL, a record's first line for CSV,
    the row number otherwise). ``kind`` names the category of ``error``."""

    line: int
    value: Any = None
    error: str | None = None
    kind: str | None = None


def resolve_input(path: Path) -> Path:
    """A data file, or a folder that holds exactly one (as a SageMaker Processing input is mounted)."""
    if path.is_file():
        return path
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        data_files = [p for p in files if p.suffix.lower() in SUFFIXES]
        if len(data_files) != 1:
            found = ", ".join(str(p.relative_to(path)) for p in files) or "nothing"
            raise DataFileError(
                f"--input folder {path} must hold exactly one data file ({', '.join(sorted(SUFFIXES))}); found: {found}"
            )
        return data_files[0]
    raise DataFileError(f"--input {path} does not exist")


def file_kind(path: Path) -> str:
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataFileError(
            f"--input {path.name}: unknown file type {path.suffix!r}; allowed: {', '.join(sorted(SUFFIXES))}"
        )
    return kind


def read_rows(path: Path, max_record_bytes: int = MAX_RECORD_BYTES) -> Iterator[RawRow]:
    kind = file_kind(path)
    if kind == "jsonl":
        yield from _read_jsonl(path, max_record_bytes)
    elif kind == "csv":
        yield from _read_csv(path, max_record_bytes)
    elif kind == "json":
        yield from _read_json(path)
    else:
        yield from _read_parquet(path)


def invalid_utf8(data: bytes, error: UnicodeDecodeError) -> str:
    """'byte 0xff at column 7 is not UTF-8' for the first bad byte of one physical line."""
    column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
    bad = data[error.start : error.end].hex(" ")
    return f"invalid UTF-8: byte(s) 0x{bad} at byte column {column} (the file must be UTF-8 text)"


def too_large(size: int, limit: int) -> str:
    return f"{size:,} bytes, over the limit of {limit:,} bytes for one row"


def _skip_bom(handle: BinaryIO) -> None:
    if handle.read(len(_BOM)) != _BOM:
        handle.seek(0)


def _bounded_lines(handle: BinaryIO, max_bytes: int) -> Iterator[tuple[int, bytes | None, int]]:
    """(line number, bytes or None when over max_bytes, size) for every physical line."""
    number = 0
    while True:
        chunk = handle.readline(CHUNK_BYTES)
        if not chunk:
            return
        number += 1
        parts: list[bytes] | None = [chunk]
        size = len(chunk)
        while not chunk.endswith(b"\n"):
            chunk = handle.readline(CHUNK_BYTES)
            if not chunk:
                break
            size += len(chunk)
            if parts is not None:
                parts.append(chunk)
                if size > max_bytes:
                    parts = None
        if parts is not None and size > max_bytes:
            parts = None
        yield number, (b"".join(parts) if parts is not None else None), size


def parse_json_text(text: str) -> tuple[Any, str | None, str | None]:
    """(value, error, kind): a JSON text that is broken or nested too deep is an error, not a crash."""
    try:
        return json.loads(text), None, None
    except json.JSONDecodeError as error:
        return None, f"broken JSON ({error.msg} at column {error.colno})", "broken_json"
    except RecursionError:
        return None, TOO_DEEP, "too_deep"
    except ValueError as error:  # e.g. an integer of more than 4,300 digits
        return None, f"unreadable JSON ({error})", "broken_json"


def _read_jsonl(path: Path, max_bytes: int) -> Iterator[RawRow]:
    with path.open("rb") as handle:
        _skip_bom(handle)
        for number, data, size in _bounded_lines(handle, max_bytes):
            if data is None:
                yield RawRow(number, error=f"the line is {too_large(size, max_bytes)}", kind="too_large")
                continue
            if not data.strip():
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as error:
                yield RawRow(number, error=invalid_utf8(data, error), kind="invalid_utf8")
                continue
            value, problem, kind = parse_json_text(text)
            yield RawRow(number, value) if problem is None else RawRow(number, error=problem, kind=kind)


def _holds_escaped_bytes(value: Any) -> bool:
    """Whether any string in a parsed JSON value holds an undecodable byte (kept as U+DC80..U+DCFF)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if any("\udc80" <= char <= "\udcff" for char in item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _read_json(path: Path) -> Iterator[RawRow]:
    data = path.read_bytes()
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    try:
        text, undecodable = data.decode("utf-8"), False
    except UnicodeDecodeError:
        # Keep the bytes as escapes so the other rows can still be read; rows holding them are bad rows.
        text, undecodable = data.decode("utf-8", errors="surrogateescape"), True
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataFileError(
            f"{path.name} is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from error
    except RecursionError as error:
        raise DataFileError(
            f"{path.name} is nested too deeply to read (arrays or objects inside one another "
            "~1,000 levels deep); a JSONL file would let the other rows through"
        ) from error
    except ValueError as error:  # e.g. an integer of more than 4,300 digits
        raise DataFileError(f"{path.name} cannot be read as JSON: {error}") from error
    if isinstance(document, dict):
        lists = {key: value for key, value in document.items() if isinstance(value, list)}
        if "data" in lists:
            document = lists["data"]
        elif len(lists) == 1:
            document = next(iter(lists.values()))
        else:
            raise DataFileError(
                f"{path.name}: a JSON object must hold its rows in a list under 'data' "
                f"(keys found: {', '.join(map(ascii_safe, document)) or 'none'})"
            )
    if not isinstance(document, list):
        raise DataFileError(
            f'{path.name}: expected a JSON array of rows or {{"data": [...]}}, got {type(document).__name__}'
        )
    for number, value in enumerate(document, start=1):
        if undecodable and _holds_escaped_bytes(value):
            yield RawRow(
                number,
                error="invalid UTF-8: the row holds bytes that are not UTF-8 text (or a \\udc80..\\udcff escape)",
                kind="invalid_utf8",
            )
        else:
            yield RawRow(number, value)


def ascii_safe(text: Any) -> str:
    """Text that can always be written out: lone surrogates become \\udcXX escapes."""
    return str(text).encode("utf-8", errors="backslashreplace").decode("utf-8")


def _read_csv(path: Path, max_bytes: int) -> Iterator[RawRow]:
    csv.field_size_limit(max(csv.field_size_limit(), max_bytes))  # records are size-checked before parsing
    with path.open("rb") as handle:
        _skip_bom(handle)
        records = read_records(handle, max_bytes)
        header = _csv_header(path, next(records, None), max_bytes)
        for record in records:
            if record.data is None:
                yield RawRow(record.line, error=f"the record is {too_large(record.size, max_bytes)}", kind="too_large")
                continue
            if record.unclosed_quote:
                yield RawRow(
                    record.line,
                    error="a quoted field opened in this record is never closed (the file ends inside quotes)",
                    kind="broken_csv",
                )
                continue
            try:
                text = record.data.decode("utf-8")
            except UnicodeDecodeError as error:
                where = record.line + record.data.count(b"\n", 0, error.start)
                yield RawRow(
                    record.line, error=f"line {where}: {invalid_utf8(record.data, error)}", kind="invalid_utf8"
                )
                continue
            try:
                parsed = list(csv.reader(io.StringIO(text, newline="")))
            except csv.Error as error:
                yield RawRow(record.line, error=f"unreadable CSV record ({error})", kind="broken_csv")
                continue
            for values in parsed:
                if values:
                    yield _csv_row(record.line, header, values)


def _csv_header(path: Path, record, max_bytes: int) -> list[str]:
    if record is None or record.data is None:
        raise DataFileError(
            f"{path.name}: the CSV file has no header row"
            if record is None
            else f"{path.name}: the CSV header row is {too_large(record.size, max_bytes)}"
        )
    try:
        rows = list(csv.reader(io.StringIO(record.data.decode("utf-8"), newline="")))
    except UnicodeDecodeError as error:
        raise DataFileError(f"{path.name} line 1 (the header): {invalid_utf8(record.data, error)}") from error
    except csv.Error as error:
        raise DataFileError(f"{path.name}: the CSV header row cannot be read ({error})") from error
    if record.unclosed_quote:
        raise DataFileError(f"{path.name}: the CSV header row opens a quote that is never closed")
    if not rows or not rows[0]:
        raise DataFileError(f"{path.name}: the CSV file has no header row")
    if len(rows) > 1:  # only a bare carriage return ends a csv row without ending a line
        raise DataFileError(
            f"{path.name}: its lines end in a bare carriage return (\\r); save it with \\n or \\r\\n line ends"
        )
    return rows[0]


def _csv_row(line: int, header: list[str], values: list[str]) -> RawRow:
    if len(values) > len(header):
        return RawRow(
            line, error=f"more values ({len(values)}) than the {len(header)} header columns", kind="broken_csv"
        )
    if len(values) < len(header):
        return RawRow(
            line, error=f"fewer values ({len(values)}) than the {len(header)} header columns", kind="broken_csv"
        )
    return RawRow(line, dict(zip(header, values, strict=True)))


def _read_parquet(path: Path) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        batches = parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS)
        number = 0
        for batch in batches:
            try:
                rows = batch.to_pylist()
            except _PARQUET_VALUE_ERRORS:
                rows = None  # some value in the batch cannot be read (a string that is not UTF-8): find it
            for index in range(batch.num_rows):
                number += 1
                yield RawRow(number, rows[index]) if rows is not None else _parquet_row(batch, index, number)
    except Exception as error:  # pyarrow raises several types for unreadable files
        raise DataFileError(f"{path.name} is not a readable Parquet file: {error}") from error


def _parquet_row(batch, index: int, number: int) -> RawRow:
    value = {}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        try:
            value[name] = column[index].as_py()
        except UnicodeDecodeError:
            return RawRow(
                number, error=f"invalid UTF-8: column {name!r} holds bytes that are not UTF-8 text", kind="invalid_utf8"
            )
        except _PARQUET_VALUE_ERRORS as error:
            return RawRow(number, error=f"column {name!r} cannot be read ({error})", kind="unreadable")
    return RawRow(number, value)


def read_hub_dataset(
    dataset_id: str, split: str, revision: str | None = None, token: str | None = None
) -> Iterator[RawRow]:
    """Rows of a Hugging Face Hub data set at `revision` (cloud only: this needs the network)."""
    from datasets import load_dataset

    try:
        dataset = load_dataset(dataset_id, split=split, revision=revision or None, token=token)
    except Exception as error:  # the Hub, the network or the data set's own files
        raise DataFileError(
            f"Hugging Face Hub data set {dataset_id!r} (split {split!r}, revision "
            f"{revision or 'main'}) cannot be loaded: {type(error).__name__}: {error}"
        ) from error
    for number, value in enumerate(dataset, start=1):
        yield RawRow(number, dict(value))
