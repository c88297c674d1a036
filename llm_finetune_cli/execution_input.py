"""The execution input a user hands `start`: read, checked where the CLI can say more than AWS would.

The workflow itself validates the input (ValidateInput answers with every problem at once); here
the file must be a JSON object, and `${DATA_BUCKET}` / `${ARTIFACTS_BUCKET}` in its strings become
the stack's bucket names, so one input file works in every account and in local mode.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llm_finetune_cli.errors import CliError, ExitCode

_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
# Step Functions execution names: 1-80 characters, none of these (AWS rejects them with InvalidName).
_NAME = re.compile(r"^[^\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]{1,80}$")
# What local mode puts in place of the input's base model and data set (local_mode.run.prepare_input).
_DATASET_SOURCE_KEYS = ("hf_dataset_id", "hf_split", "s3_uri")


def load_input(path: Path) -> dict:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise CliError(f"--input {path}: no such file", ExitCode.USAGE) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as error:
        raise CliError(f"--input {path}: cannot read it: {error}", ExitCode.USAGE) from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise CliError(
            f"--input {path}: not JSON: line {error.lineno} column {error.colno}: {error.msg}", ExitCode.USAGE
        ) from None
    if not isinstance(value, dict):
        raise CliError(
            f"--input {path}: expected a JSON object (the execution input), got {type(value).__name__}", ExitCode.USAGE
        )
    return value


def substitute_buckets(value: Any, buckets: dict[str, str], where: str = "") -> Any:
    """Replace ${DATA_BUCKET} and ${ARTIFACTS_BUCKET}; any other ${...} is an error naming its field."""
    if isinstance(value, dict):
        return {
            key: substitute_buckets(item, buckets, f"{where}.{key}" if where else key) for key, item in value.items()
        }
    if isinstance(value, list):
        return [substitute_buckets(item, buckets, f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, str):

        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name not in buckets:
                raise CliError(
                    f"--input: {where}: {value!r} names ${{{name}}}; allowed placeholders: "
                    + ", ".join(f"${{{key}}}" for key in sorted(buckets)),
                    ExitCode.USAGE,
                )
            return buckets[name]

        return _PLACEHOLDER.sub(replace, value)
    return value


def with_dry_run(execution_input: dict) -> dict:
    """The input with `orchestration.dry_run` set: the workflow validates and runs its preflight only."""
    result = copy.deepcopy(execution_input)
    orchestration = result.setdefault("orchestration", {})
    if not isinstance(orchestration, dict):
        raise CliError(f"--input: orchestration: expected an object, got {json.dumps(orchestration)}", ExitCode.USAGE)
    orchestration["dry_run"] = True
    return result


def with_local_sources(execution_input: dict, sources: dict) -> dict:
    """Local mode's base model and data set in place of the input's, as `python -m local_mode run` does."""
    result = copy.deepcopy(execution_input)
    if sources.get("base_model"):
        result["base_model"] = dict(sources["base_model"])
    if sources.get("dataset"):
        dataset = result.get("dataset") if isinstance(result.get("dataset"), dict) else {}
        dataset = {key: value for key, value in dataset.items() if key not in _DATASET_SOURCE_KEYS}
        dataset.update(sources["dataset"])
        result["dataset"] = dataset
    return result


def execution_name(name: str | None, dry_run: bool = False) -> str:
    if name is None:
        prefix = "dry-run" if dry_run else "run"
        return f"{prefix}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
    if not _NAME.match(name):
        raise CliError(
            f"--name {name!r}: an execution name has 1 to 80 characters, none of them whitespace or "
            'any of < > { } [ ] ? * " # % \\ ^ | ~ ` $ & , ; : /',
            ExitCode.USAGE,
        )
    return name
