"""Prepare a data set for fine-tuning: read, validate, convert to chat messages, de-duplicate, split.

    python training/prepare_data.py --input data.jsonl --format sql-create-context --output-dir out/

writes ``train.jsonl`` and ``test.jsonl`` (one ``{"messages": [...]}`` per line) and ``report.json``
(counts, every rejected row with its line and reason, every duplicate, token-length percentiles).
Rows that are broken or do not fit the format are skipped and listed; when their share exceeds
``--max-bad-fraction`` the whole set is refused and nothing is written, because a mostly broken file
usually means the wrong ``--format`` or the wrong file. Nothing is dropped without a trace in the
report: rejected rows, duplicates and rows left out by ``--max-samples`` are all counted.

In a SageMaker Processing job the defaults read ``$OPT_ML/processing/input/data`` (a folder with one
data file) and write ``$OPT_ML/processing/output/data``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from data_formats import FORMATS, Messages, RowError, to_messages
from data_readers import DataFileError, RawRow, read_hub_dataset, read_rows, resolve_input

OPT_ML = Path(os.environ.get("OPT_ML", "/opt/ml"))
DEFAULT_INPUT = OPT_ML / "processing" / "input" / "data"
DEFAULT_OUTPUT = OPT_ML / "processing" / "output" / "data"
ERRORS_SHOWN = 5


class DataSetRefused(ValueError):
    """The data set as a whole is unusable; nothing was written."""


@dataclass(frozen=True)
class PrepareConfig:
    data_format: str
    output_dir: Path
    input_path: Path | None = None
    hf_dataset_id: str | None = None
    hf_split: str = "train"
    hf_revision: str | None = None          # the data set's commit Preflight resolved
    hf_token_secret_arn: str | None = None  # where the token for a gated data set is kept
    test_size: float = 0.1  # a row count (>= 1) or a fraction (0 < x < 1)
    seed: int = 42
    max_samples: int | None = None
    max_bad_fraction: float = 0.1
    tokenizer_dir: Path | None = None
    max_length: int | None = None


@dataclass
class Example:
    line: int
    messages: Messages


@dataclass
class Prepared:
    """The outcome of validation and splitting, before anything is written."""

    train: list[Example]
    test: list[Example]
    report: dict = field(default_factory=dict)


def _normalized_key(messages: Messages) -> str:
    """Rows that differ only in whitespace or Unicode composition are the same row."""
    return json.dumps([(m["role"], " ".join(unicodedata.normalize("NFC", m["content"]).split()))
                       for m in messages])


def resolve_test_size(test_size: float, available: int) -> int:
    if test_size < 0:
        raise DataSetRefused(f"--test-size must be a row count >= 0 or a fraction 0 < x < 1, got {test_size:g}")
    if 0 < test_size < 1:
        count = round(available * test_size)
    elif test_size == int(test_size):
        count = int(test_size)
    else:
        raise DataSetRefused(f"--test-size {test_size:g}: a value above 1 must be a whole row count")
    if available and count >= available:
        raise DataSetRefused(f"--test-size {test_size:g} takes {count} of the {available} usable rows "
                             "and leaves none for training")
    return count


def convert_rows(rows: Iterable[RawRow], data_format: str) -> tuple[list[Example], list[dict], int]:
    """Convert every row; returns the valid examples, the rejected rows (line, reason) and the count read."""
    valid, rejected, read = [], [], 0
    for raw in rows:
        read += 1
        if raw.error:
            rejected.append({"line": raw.line, "reason": raw.error})
            continue
        try:
            valid.append(Example(raw.line, to_messages(raw.value, data_format)))
        except RowError as error:
            rejected.append({"line": raw.line, "reason": str(error)})
    return valid, rejected, read


def check_bad_share(read: int, rejected: list[dict], max_bad_fraction: float) -> None:
    if read == 0:
        raise DataSetRefused("the input holds no rows")
    share = len(rejected) / read
    if share > max_bad_fraction:
        shown = "\n".join(f"  line {row['line']}: {row['reason']}" for row in rejected[:ERRORS_SHOWN])
        more = f"\n  ... and {len(rejected) - ERRORS_SHOWN} more" if len(rejected) > ERRORS_SHOWN else ""
        raise DataSetRefused(
            f"{len(rejected)} of {read} rows ({share:.1%}) are unusable, above the limit "
            f"--max-bad-fraction {max_bad_fraction:g} ({max_bad_fraction:.1%}); nothing was written. "
            f"Check --format and the input file. First bad rows:\n{shown}{more}")


def remove_duplicates(examples: list[Example]) -> tuple[list[Example], list[dict]]:
    first_line: dict[str, int] = {}
    unique, duplicates = [], []
    for example in examples:
        key = _normalized_key(example.messages)
        if key in first_line:
            duplicates.append({"line": example.line, "duplicate_of": first_line[key]})
        else:
            first_line[key] = example.line
            unique.append(example)
    return unique, duplicates


def split(examples: list[Example], test_size: float, seed: int,
          max_samples: int | None) -> tuple[list[Example], list[Example], int]:
    """Shuffle with ``seed``, keep ``max_samples``, take the test rows; each split in input order."""
    shuffled = list(examples)
    random.Random(seed).shuffle(shuffled)
    left_out = 0
    if max_samples is not None:
        left_out = max(0, len(shuffled) - max_samples)
        shuffled = shuffled[:max_samples]
    test_count = resolve_test_size(test_size, len(shuffled))
    test = sorted(shuffled[:test_count], key=lambda example: example.line)
    train = sorted(shuffled[test_count:], key=lambda example: example.line)
    return train, test, left_out


def percentile(sorted_values: list[int], share: float) -> int:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


def token_lengths(examples: list[Example], tokenizer_dir: Path, max_length: int | None) -> dict:
    """Percentiles of the rendered conversations' token counts, and the rows longer than max_length."""
    from transformers import AutoTokenizer

    from chat_format import ensure_chat_template

    tokenizer = ensure_chat_template(AutoTokenizer.from_pretrained(str(tokenizer_dir)))
    lengths = []
    for example in examples:
        text = tokenizer.apply_chat_template(example.messages, tokenize=False)
        lengths.append((example.line, len(tokenizer(text, add_special_tokens=False)["input_ids"])))
    values = sorted(length for _, length in lengths)
    report = {"max_length": max_length, "rows": len(values)}
    if values:
        report.update({"p50": percentile(values, 0.5), "p90": percentile(values, 0.9),
                       "p99": percentile(values, 0.99), "max": values[-1]})
    if max_length is not None:
        over = [{"line": line, "tokens": length} for line, length in lengths if length > max_length]
        report["over_max_length"] = over
    return report


def prepare(config: PrepareConfig, rows: Iterable[RawRow]) -> Prepared:
    """Validate and split ``rows``; raises DataSetRefused when the set as a whole is unusable."""
    valid, rejected, read = convert_rows(rows, config.data_format)
    check_bad_share(read, rejected, config.max_bad_fraction)
    unique, duplicates = remove_duplicates(valid)
    if not unique:
        raise DataSetRefused(f"no usable rows among the {read} read")
    train, test, left_out = split(unique, config.test_size, config.seed, config.max_samples)
    report = {
        "input": config.hf_dataset_id or (config.input_path.name if config.input_path else None),
        "format": config.data_format,
        "settings": {"test_size": config.test_size, "seed": config.seed, "max_samples": config.max_samples,
                     "max_bad_fraction": config.max_bad_fraction, "max_length": config.max_length},
        "counts": {"read": read, "valid": len(valid), "rejected": len(rejected), "duplicates": len(duplicates),
                   "left_out_by_max_samples": left_out, "train": len(train), "test": len(test)},
        "rejected": rejected,
        "duplicates": duplicates,
        "token_lengths": (token_lengths(train + test, config.tokenizer_dir, config.max_length)
                          if config.tokenizer_dir else None),
    }
    return Prepared(train=train, test=test, report=report)


def write_outputs(prepared: Prepared, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, examples in (("train.jsonl", prepared.train), ("test.jsonl", prepared.test)):
        with (output_dir / name).open("w", encoding="utf-8", newline="\n") as handle:
            for example in examples:
                handle.write(json.dumps({"messages": example.messages}, ensure_ascii=False) + "\n")
    (output_dir / "report.json").write_text(json.dumps(prepared.report, indent=2, ensure_ascii=False) + "\n")


def load_rows(config: PrepareConfig) -> Iterable[RawRow]:
    if config.hf_dataset_id:
        from hf_token import read_hf_token

        return read_hub_dataset(config.hf_dataset_id, config.hf_split, config.hf_revision,
                                read_hf_token(config.hf_token_secret_arn))
    return read_rows(resolve_input(config.input_path))


def run(config: PrepareConfig) -> Prepared:
    if config.input_path is not None and config.input_path.is_dir():
        config = PrepareConfig(**{**asdict(config), "input_path": resolve_input(config.input_path)})
    prepared = prepare(config, load_rows(config))
    write_outputs(prepared, config.output_dir)
    return prepared


def _test_size(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a row count or a fraction 0 < x < 1, got {text!r}") from None
    return int(value) if value >= 1 and value.is_integer() else value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text!r}")
    return value


def parse_args(argv: list[str] | None = None) -> PrepareConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, default=None,
                        help=f"data file, or a folder holding exactly one (default {DEFAULT_INPUT})")
    parser.add_argument("--format", required=True, choices=FORMATS, dest="data_format")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--test-size", type=_test_size, default=0.1,
                        help="test rows: a count, or a fraction 0 < x < 1 (default 0.1)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-samples", type=int, default=None, help="keep at most this many rows (before splitting)")
    parser.add_argument("--max-bad-fraction", type=_fraction, default=0.1,
                        help="refuse the data set when a larger share of rows is unusable (default 0.1)")
    parser.add_argument("--tokenizer", type=Path, default=None, dest="tokenizer_dir",
                        help="tokenizer folder, for token-length statistics")
    parser.add_argument("--max-length", type=int, default=None, help="report rows longer than this many tokens")
    parser.add_argument("--hf-dataset-id", default=None, help="read a Hugging Face Hub data set instead of --input")
    parser.add_argument("--hf-split", default="train")
    parser.add_argument("--hf-revision", default=None, help="the commit (or branch) of --hf-dataset-id")
    parser.add_argument("--hf-token-secret-arn", default=None,
                        help="Secrets Manager secret holding the Hugging Face token, for a gated data set")
    args = parser.parse_args(argv)
    if args.max_samples is not None and args.max_samples < 1:
        parser.error(f"--max-samples must be at least 1, got {args.max_samples}")
    if args.max_length is not None and args.max_length < 1:
        parser.error(f"--max-length must be at least 1, got {args.max_length}")
    if args.input is None and not args.hf_dataset_id:
        args.input = DEFAULT_INPUT
    return PrepareConfig(
        data_format=args.data_format, output_dir=args.output_dir, input_path=args.input,
        hf_dataset_id=args.hf_dataset_id, hf_split=args.hf_split, hf_revision=args.hf_revision,
        hf_token_secret_arn=args.hf_token_secret_arn, test_size=args.test_size, seed=args.seed,
        max_samples=args.max_samples, max_bad_fraction=args.max_bad_fraction,
        tokenizer_dir=args.tokenizer_dir, max_length=args.max_length)


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        prepared = run(config)
    except (DataSetRefused, DataFileError) as error:
        print(f"prepare_data: error: {error}", file=sys.stderr)
        return 1
    counts = prepared.report["counts"]
    print("prepare_data: " + ", ".join(f"{key}={value}" for key, value in counts.items()))
    for row in prepared.report["rejected"]:
        print(f"prepare_data: skipped line {row['line']}: {row['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
