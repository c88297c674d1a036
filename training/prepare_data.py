"""Prepare a data set for fine-tuning: read, validate, convert to chat messages, de-duplicate, split.

    python training/prepare_data.py --input data.jsonl --format sql-create-context --output-dir out/

writes ``train.jsonl`` and ``test.jsonl`` (one ``{"messages": [...]}`` per line) and ``report.json``
(counts; the rejected rows with their line and reason and the duplicates, up to a cap; what was
dropped or changed in the rows kept; token-length percentiles). No row stops the job: a row that cannot be decoded,
parsed, converted or is too long is skipped and listed. When the bad rows' share exceeds
``--max-bad-fraction`` the whole set is refused, because a mostly broken file usually means the
wrong ``--format`` or the wrong file: no train/test files are written, report.json still is, every
bad row is printed to the log, and the exit message file gets the count and the first bad lines.

In a SageMaker Processing job the defaults read ``$OPT_ML/processing/input/data`` (a folder with one
data file), write ``$OPT_ML/processing/output/data`` and, on refusal, ``$OPT_ML/output/message``
(what DescribeProcessingJob returns as ExitMessage) and ``$OPT_ML/output/failure``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cli_arguments import number_between, whole_number
from data_formats import FORMATS, Messages, RowError, convert
from data_readers import DataFileError, RawRow, ascii_safe, read_hub_dataset, read_rows, resolve_input
from hyperparameters import Hyperparameters
from prepare_report import LIST_CAP, ChangeCounts, exit_message, first_bad_rows, write_exit_message

TRAINING_MAX_LENGTH = Hyperparameters.model_fields["max_length"].default
# A conversation over this many characters per token of the length budget cannot fit: no common
# tokenizer averages more than about 5 characters per token on prose or code.
CHARS_PER_TOKEN_BOUND = 8
REPORT_NAME = "report.json"


def _opt_ml() -> Path:
    return Path(os.environ.get("OPT_ML", "/opt/ml"))


def default_exit_message_files() -> list[Path]:
    """Inside a job (the OPT_ML folder exists): the files its platform reads a failure's message from."""
    if not _opt_ml().is_dir():
        return []
    output = _opt_ml() / "output"
    return [output / "message", output / "failure"]


class DataSetRefused(ValueError):
    """The data set as a whole is unusable; no train/test files were written (report.json was)."""

    def __init__(self, message: str, report: dict | None = None, rejected: list[dict] | None = None) -> None:
        super().__init__(message)
        self.report = report
        self.rejected = rejected or []


@dataclass(frozen=True)
class PrepareConfig:
    data_format: str
    output_dir: Path
    input_path: Path | None = None
    hf_dataset_id: str | None = None
    hf_split: str = "train"
    hf_revision: str | None = None  # the data set's commit Preflight resolved
    hf_token_secret_arn: str | None = None  # where the token for a gated data set is kept
    refused_exit_code: int = 1  # 0 in the workflow: report.json is uploaded only by a job that succeeds
    test_size: float = 0.1  # a row count (>= 1) or a fraction 0 < x < 1
    seed: int = 42
    max_samples: int | None = None
    max_bad_fraction: float = 0.1
    tokenizer_dir: Path | None = None
    max_length: int | None = None
    max_chars: int | None = None  # None: CHARS_PER_TOKEN_BOUND x (max_length or training's default)
    report_list_cap: int = LIST_CAP
    exit_message_files: tuple[Path, ...] = ()

    @property
    def char_limit(self) -> int:
        if self.max_chars is not None:
            return self.max_chars
        return CHARS_PER_TOKEN_BOUND * (self.max_length or TRAINING_MAX_LENGTH)

    @property
    def report_path(self) -> Path:
        return self.output_dir / REPORT_NAME


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
    rejected: list[dict] = field(default_factory=list)  # every bad row, also those past the report's cap


@dataclass
class Converted:
    """Every row read, sorted into examples and bad rows, with what was changed in the examples."""

    valid: list[Example]
    rejected: list[dict]
    read: int
    changes: ChangeCounts


def _normalized_key(messages: Messages) -> str:
    """Rows that differ only in whitespace or Unicode composition are the same row."""
    return json.dumps([(m["role"], " ".join(unicodedata.normalize("NFC", m["content"]).split())) for m in messages])


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
        raise DataSetRefused(
            f"--test-size {test_size:g} takes {count} of the {available} usable rows and leaves none for training"
        )
    return count


def _bad_row(line: int, reason: str, kind: str) -> dict:
    return {"line": line, "reason": ascii_safe(reason), "kind": kind}


def convert_rows(
    rows: Iterable[RawRow], data_format: str, max_chars: int | None = None, cap: int = LIST_CAP
) -> Converted:
    """Convert every row; no row raises. A row that fails for a reason not foreseen is a bad row too,
    named by its error, so one odd row never stops the job."""
    valid, rejected, read, changes = [], [], 0, ChangeCounts(cap)
    for raw in rows:
        read += 1
        if raw.error:
            rejected.append(_bad_row(raw.line, raw.error, raw.kind or "unreadable"))
            continue
        try:
            converted = convert(raw.value, data_format, max_chars)
        except RowError as error:
            rejected.append(_bad_row(raw.line, str(error), error.kind))
            continue
        except RecursionError:
            rejected.append(_bad_row(raw.line, "the row is nested too deeply to read", "too_deep"))
            continue
        except Exception as error:
            rejected.append(_bad_row(raw.line, f"cannot be converted ({type(error).__name__}: {error})", "unexpected"))
            continue
        valid.append(Example(raw.line, converted.messages))
        changes.add(raw.line, converted.changes)
    return Converted(valid, rejected, read, changes)


def refusal_summary(read: int, rejected: list[dict], max_bad_fraction: float) -> str | None:
    """The refusal's first sentence when the bad rows' share is over the limit, else None."""
    if read == 0:
        return "the input holds no rows"
    share = len(rejected) / read
    if share <= max_bad_fraction:
        return None
    return (
        f"{len(rejected)} of {read} rows ({share:.1%}) are unusable, above the limit "
        f"--max-bad-fraction {max_bad_fraction:g} ({max_bad_fraction:.1%}); no train/test files were "
        "written. Check --format and the input file."
    )


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


def split(
    examples: list[Example], test_size: float, seed: int, max_samples: int | None
) -> tuple[list[Example], list[Example], int]:
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
    from chat_format import ensure_chat_template
    from transformers import AutoTokenizer

    tokenizer = ensure_chat_template(AutoTokenizer.from_pretrained(str(tokenizer_dir)))  # nosec B615 # the tokenizer folder mounted as the job's input
    lengths = []
    for example in examples:
        text = tokenizer.apply_chat_template(example.messages, tokenize=False)
        lengths.append((example.line, len(tokenizer(text, add_special_tokens=False)["input_ids"])))
    values = sorted(length for _, length in lengths)
    report: dict[str, Any] = {"max_length": max_length, "rows": len(values)}
    if values:
        report.update(
            {
                "p50": percentile(values, 0.5),
                "p90": percentile(values, 0.9),
                "p99": percentile(values, 0.99),
                "max": values[-1],
            }
        )
    if max_length is not None:
        over = [{"line": line, "tokens": length} for line, length in lengths if length > max_length]
        report["over_max_length"] = over
    return report


def base_report(config: PrepareConfig) -> dict:
    """The parts of report.json known before any row is read."""
    return {
        "status": "refused",
        "refusal": None,
        "input": config.hf_dataset_id or (config.input_path.name if config.input_path else None),
        "format": config.data_format,
        "settings": {
            "test_size": config.test_size,
            "seed": config.seed,
            "max_samples": config.max_samples,
            "max_bad_fraction": config.max_bad_fraction,
            "max_length": config.max_length,
            "max_chars": config.char_limit,
            "report_list_cap": config.report_list_cap,
        },
        "counts": {
            "read": 0,
            "valid": 0,
            "rejected": 0,
            "duplicates": 0,
            "left_out_by_max_samples": 0,
            "train": 0,
            "test": 0,
        },
        "rejected_by_kind": {},
        "rejected": [],
        "duplicates": [],
        "not_listed": {"rejected": 0, "duplicates": 0},
        "changes": {},
        "token_lengths": None,
    }


def _kinds(rejected: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rejected:
        counts[row["kind"]] = counts.get(row["kind"], 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def prepare(config: PrepareConfig, rows: Iterable[RawRow]) -> Prepared:
    """Validate and split ``rows``; raises DataSetRefused (with the report so far) when the set as a
    whole is unusable."""
    cap = config.report_list_cap
    report = base_report(config)
    converted = convert_rows(rows, config.data_format, config.char_limit, cap)
    unique, duplicates = remove_duplicates(converted.valid)
    rejected = converted.rejected
    report["counts"].update(
        read=converted.read, valid=len(converted.valid), rejected=len(rejected), duplicates=len(duplicates)
    )
    report.update(
        rejected_by_kind=_kinds(rejected),
        rejected=rejected[:cap],
        duplicates=duplicates[:cap],
        not_listed={"rejected": max(0, len(rejected) - cap), "duplicates": max(0, len(duplicates) - cap)},
        changes=converted.changes.to_report(),
    )
    summary = refusal_summary(converted.read, rejected, config.max_bad_fraction)
    if summary is None and not unique:
        summary = f"no usable rows among the {converted.read} read"
    try:
        if summary is not None:
            raise DataSetRefused(summary)
        train, test, left_out = split(unique, config.test_size, config.seed, config.max_samples)
    except DataSetRefused as error:
        report["refusal"] = str(error)
        raise DataSetRefused(str(error), report, rejected) from None
    report["counts"].update(left_out_by_max_samples=left_out, train=len(train), test=len(test))
    report["status"] = "ok"
    report["token_lengths"] = (
        token_lengths(train + test, config.tokenizer_dir, config.max_length) if config.tokenizer_dir else None
    )
    return Prepared(train=train, test=test, report=report, rejected=rejected)


def write_report(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    path.write_bytes(text.encode("utf-8", errors="backslashreplace"))


def write_outputs(prepared: Prepared, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, examples in (("train.jsonl", prepared.train), ("test.jsonl", prepared.test)):
        digest = hashlib.sha256()
        with (output_dir / name).open("w", encoding="utf-8", newline="\n") as handle:
            for example in examples:
                line = json.dumps({"messages": example.messages}, ensure_ascii=False) + "\n"
                handle.write(line)
                digest.update(line.encode("utf-8"))
        files[name] = {"rows": len(examples), "sha256": digest.hexdigest()}
    # The digests of exactly what training and evaluation read: the model package records them.
    prepared.report["files"] = files
    write_report(prepared.report, output_dir / REPORT_NAME)


def load_rows(config: PrepareConfig) -> Iterable[RawRow]:
    if config.hf_dataset_id:
        from hf_token import read_hf_token

        return read_hub_dataset(
            config.hf_dataset_id, config.hf_split, config.hf_revision, read_hf_token(config.hf_token_secret_arn)
        )
    if config.input_path is None:
        raise DataFileError("no input: give --input or --hf-dataset-id")
    return read_rows(resolve_input(config.input_path))


def _refuse(config: PrepareConfig, message: str, report: dict, rejected: list[dict]) -> DataSetRefused:
    """Write report.json (and nothing else: stale train/test files go), and the refusal that names it."""
    report["status"], report["refusal"] = "refused", message
    for name in ("train.jsonl", "test.jsonl"):
        (config.output_dir / name).unlink(missing_ok=True)
    write_report(report, config.report_path)
    listed = f" ({report['settings']['report_list_cap']} at most)" if report["not_listed"]["rejected"] else ""
    detail = f"\nFirst bad rows:\n{first_bad_rows(rejected)}" if rejected else ""
    where = (
        f"\nEvery bad row is listed in {config.report_path}{listed} and in the log above."
        if rejected
        else f"\nThe report is {config.report_path}."
    )
    return DataSetRefused(message + detail + where, report, rejected)


def run(config: PrepareConfig) -> Prepared:
    """Prepare and write the data set; on refusal, write report.json and raise DataSetRefused."""
    try:
        if config.input_path is not None and not config.hf_dataset_id:
            config = replace(config, input_path=resolve_input(config.input_path))
        prepared = prepare(config, load_rows(config))
    except DataSetRefused as error:
        raise _refuse(config, str(error), error.report or base_report(config), error.rejected) from None
    except DataFileError as error:
        raise _refuse(config, str(error), base_report(config), []) from None
    write_outputs(prepared, config.output_dir)
    return prepared


def _test_size(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a row count or a fraction 0 < x < 1, got {text!r}") from None
    return int(value) if value >= 1 and value.is_integer() else value


def parse_args(argv: list[str] | None = None) -> PrepareConfig:
    processing = _opt_ml() / "processing"
    default_input, default_output = processing / "input" / "data", processing / "output" / "data"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--input", type=Path, default=None, help=f"data file, or a folder holding exactly one (default {default_input})"
    )
    parser.add_argument("--format", required=True, choices=FORMATS, dest="data_format")
    parser.add_argument("--output-dir", type=Path, default=default_output)
    parser.add_argument(
        "--test-size", type=_test_size, default=0.1, help="test rows: a count, or a fraction 0 < x < 1 (default 0.1)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-samples", type=int, default=None, help="keep at most this many rows (before splitting)")
    parser.add_argument(
        "--max-bad-fraction",
        type=number_between(0, 1),
        default=0.1,
        help="refuse the data set when a larger share of rows is unusable (default 0.1)",
    )
    parser.add_argument(
        "--tokenizer",
        type=Path,
        default=None,
        dest="tokenizer_dir",
        help="tokenizer folder, for token-length statistics",
    )
    parser.add_argument(
        "--max-length",
        type=int,
        default=None,
        help=f"the training job's max_length in tokens (default: training's default, "
        f"{TRAINING_MAX_LENGTH}); sets the --max-chars default and, with --tokenizer, "
        "rows longer than this are listed",
    )
    parser.add_argument(
        "--max-chars",
        type=whole_number(1),
        default=None,
        help=f"refuse a row whose conversation is longer than this many characters "
        f"(default {CHARS_PER_TOKEN_BOUND} x --max-length, "
        f"{CHARS_PER_TOKEN_BOUND * TRAINING_MAX_LENGTH} for {TRAINING_MAX_LENGTH} tokens)",
    )
    parser.add_argument(
        "--report-list-cap",
        type=whole_number(1),
        default=LIST_CAP,
        help=f"list at most this many rows per list in report.json (default {LIST_CAP}); the totals are always given",
    )
    parser.add_argument(
        "--exit-message-file",
        type=Path,
        action="append",
        default=None,
        dest="exit_message_files",
        help="where a refusal's short message goes (repeatable; default, when $OPT_ML "
        "exists: $OPT_ML/output/message and $OPT_ML/output/failure)",
    )
    parser.add_argument(
        "--refused-exit-code",
        type=int,
        choices=(0, 1),
        default=1,
        help="exit status when the set is refused (default 1). The workflow's job gives 0: a "
        "failed job uploads nothing, so report.json reaches S3 only from a job that "
        "succeeds, and the workflow fails the run from report.json's status",
    )
    parser.add_argument("--hf-dataset-id", default=None, help="read a Hugging Face Hub data set instead of --input")
    parser.add_argument("--hf-split", default="train")
    parser.add_argument("--hf-revision", default=None, help="the commit (or branch) of --hf-dataset-id")
    parser.add_argument(
        "--hf-token-secret-arn",
        default=None,
        help="Secrets Manager secret holding the Hugging Face token, for a gated data set",
    )
    args = parser.parse_args(argv)
    if args.max_samples is not None and args.max_samples < 1:
        parser.error(f"--max-samples must be at least 1, got {args.max_samples}")
    if args.max_length is not None and args.max_length < 1:
        parser.error(f"--max-length must be at least 1, got {args.max_length}")
    if args.input is None and not args.hf_dataset_id:
        args.input = default_input
    return PrepareConfig(
        data_format=args.data_format,
        output_dir=args.output_dir,
        input_path=args.input,
        hf_dataset_id=args.hf_dataset_id,
        hf_split=args.hf_split,
        hf_revision=args.hf_revision,
        hf_token_secret_arn=args.hf_token_secret_arn,
        refused_exit_code=args.refused_exit_code,
        test_size=args.test_size,
        seed=args.seed,
        max_samples=args.max_samples,
        max_bad_fraction=args.max_bad_fraction,
        tokenizer_dir=args.tokenizer_dir,
        max_length=args.max_length,
        max_chars=args.max_chars,
        report_list_cap=args.report_list_cap,
        exit_message_files=tuple(args.exit_message_files or default_exit_message_files()),
    )


def log_bad_rows(rejected: list[dict], verb: str) -> None:
    for row in rejected:
        print(f"prepare_data: {verb} line {row['line']}: {row['reason']}")


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        prepared = run(config)
    except DataSetRefused as error:
        log_bad_rows(error.rejected, "bad")  # the log is the one place every bad row reaches on a failed job
        sys.stdout.flush()
        report = error.report or {}
        summary = report.get("refusal") or str(error).split("\n", 1)[0]
        write_exit_message(
            list(config.exit_message_files),
            exit_message(f"prepare_data refused the data set: {summary}", error.rejected, config.report_path),
        )
        print(f"prepare_data: error: {error}", file=sys.stderr)
        return config.refused_exit_code
    counts = prepared.report["counts"]
    print("prepare_data: " + ", ".join(f"{key}={value}" for key, value in counts.items()))
    log_bad_rows(prepared.rejected, "skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
