"""What produced a model: base model and commit, data and its digests, images, code and settings.

Register writes this into the model package's CustomerMetadataProperties, so a registered model
can be traced without the run's execution history (which Step Functions keeps for 90 days only).
Every value is what a job actually used: the commit Preflight resolved (not the branch that was
asked for), the digests prepare_data.py computed of the files training read.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from botocore.exceptions import ClientError

from common.environment import LambdaEnvironment
from common.s3_paths import read_json

NOT_RECORDED = "not recorded"
METADATA_VALUE_LIMIT = 256  # SageMaker's limit on one CustomerMetadataProperties value


def _source(section: dict, resolved: dict | None, id_key: str, revision_key: str) -> tuple[str, str]:
    """(where from, which commit) of the base model or the data set."""
    resolved = resolved or {}
    if "s3_uri" in section:
        return section["s3_uri"], "s3"
    revision = resolved.get("sha") or section.get(revision_key) or "main"
    return f"hf://{section.get(id_key, '')}", revision


def data_digests(report_uri: str) -> dict[str, str]:
    """sha256 of train.jsonl and test.jsonl from prepare_data.py's report.json (empty when absent)."""
    try:
        report = read_json(report_uri)
    except ClientError as error:  # a missing report is recorded as such; a denial is not hidden
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return {}
        raise
    except ValueError:
        return {}
    files = report.get("files") if isinstance(report, dict) else None
    digests = {}
    for name, label in (("train.jsonl", "train_sha256"), ("test.jsonl", "test_sha256")):
        entry = files.get(name) if isinstance(files, dict) else None
        if isinstance(entry, dict) and isinstance(entry.get("sha256"), str):
            digests[label] = entry["sha256"]
    return digests


def settings_digest(config: dict) -> str:
    """A digest of the run's training settings; equal settings give equal digests."""
    training = config.get("training", {})
    canonical = json.dumps(
        {
            "hyperparameters": training.get("hyperparameters", {}),
            "instance_type": training.get("instance_type"),
            "instance_count": training.get("instance_count"),
        },
        sort_keys=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def lineage(run: dict, preflight: dict | None, env: LambdaEnvironment, serving_image: str) -> dict[str, Any]:
    """The lineage record of one run (string values; SageMaker's metadata holds strings)."""
    preflight = preflight or {}
    config = run["config"]
    base, base_revision = _source(config["base_model"], preflight.get("base_model"), "hf_model_id", "revision")
    data, data_revision = _source(config["dataset"], preflight.get("dataset"), "hf_dataset_id", "hf_revision")
    digests = data_digests(run["paths"]["data_report"])
    # Metadata values allow letters, digits, spaces and _.:/=+-@ only: key=value pairs, not JSON.
    hyperparameters = (
        " ".join(
            f"{key}={str(value).lower() if isinstance(value, bool) else value}"
            for key, value in sorted(config.get("training", {}).get("hyperparameters", {}).items())
        )
        or "defaults"
    )
    return {
        "base_model": base,
        "base_model_revision": base_revision,
        "dataset": data,
        "dataset_revision": data_revision,
        "train_sha256": digests.get("train_sha256", NOT_RECORDED),
        "test_sha256": digests.get("test_sha256", NOT_RECORDED),
        "training_job": run["names"]["train"],
        "training_image": env.training_image_uri,
        "serving_image": serving_image,
        "code_uri": env.code_s3_uri,
        "settings_sha256": settings_digest(config),
        "hyperparameters": (
            hyperparameters
            if len(hyperparameters) <= METADATA_VALUE_LIMIT
            else f"{len(hyperparameters)} characters: DescribeTrainingJob {run['names']['train']} "
            f"lists them; settings_sha256 identifies them"
        ),
    }


def lineage_line(record: dict | None) -> str | None:
    """One line for a run's summary: base model and commit, data set and commit, the data's digests."""
    if not isinstance(record, dict) or not record.get("base_model"):
        return None

    def at(source: str, revision: str | None) -> str:
        return source if revision in ("s3", "", None) else f"{source}@{str(revision)[:12]}"

    digests = ", ".join(
        f"{name} sha256 {str(record[key])[:12]}"
        for name, key in (("train", "train_sha256"), ("test", "test_sha256"))
        if record.get(key) != NOT_RECORDED
    )
    return (
        f"base {at(record['base_model'], record.get('base_model_revision'))}; "
        f"data {at(record.get('dataset', '?'), record.get('dataset_revision'))}" + (f"; {digests}" if digests else "")
    )
