"""One execution of the workflow in the emulated account: inputs in, summary out."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cdk_app.contract import RUN_LAYOUT, run_prefix
from local_mode.endpoints import describe_for_summary
from local_mode.environment import LocalAws


@dataclass
class RunRequest:
    execution_input: dict
    name: str
    model_dir: Path | None = None  # uploaded to the data bucket and used as base_model.s3_uri
    dataset: Path | None = None  # uploaded to the data bucket and used as dataset.s3_uri
    dataset_format: str | None = None
    timeout_seconds: float = 3600


def prepare_input(aws: LocalAws, request: RunRequest) -> dict:
    """The execution input with buckets filled in and the local model and data set uploaded."""
    execution_input = aws.substitute(copy.deepcopy(request.execution_input))
    if request.model_dir is not None:
        uri = f"s3://{aws.data_bucket}/models/{Path(request.model_dir).name}/"
        aws.upload_folder(Path(request.model_dir), uri)
        execution_input["base_model"] = {"s3_uri": uri}
    if request.dataset is not None:
        uri = f"s3://{aws.data_bucket}/datasets/{Path(request.dataset).name}"
        aws.upload_file(Path(request.dataset), uri)
        dataset = {
            k: v
            for k, v in (execution_input.get("dataset") or {}).items()
            if k not in ("hf_dataset_id", "hf_split", "s3_uri")
        }
        dataset["s3_uri"] = uri
        if request.dataset_format:
            dataset["format"] = request.dataset_format
        execution_input["dataset"] = dataset
    return execution_input


def run_execution(aws: LocalAws, request: RunRequest) -> dict:
    """Start the execution, follow it to its end, collect its results into a summary."""
    started, since = time.monotonic(), datetime.now(UTC)
    first_check = aws.iam.checks_so_far
    execution_input = prepare_input(aws, request)
    aws.progress.info(f"starting execution {request.name}")
    arn = aws.start_execution(execution_input, request.name)
    aws.wait(arn, timeout=request.timeout_seconds)
    ending = aws.endings.wait_delivered(arn, timeout=120)  # EventBridge's Cleanup, for runs that did not succeed
    aws.endpoints.wait_idle(30)
    summary = summarize(aws, arn, since, first_check)
    summary["ending_cleanup"] = [delivery.get("result") for delivery in ending or []] or None
    summary["seconds"] = round(time.monotonic() - started, 1)
    save(aws, summary, first_check)
    return summary


def _failure(aws: LocalAws, execution_arn: str, description: dict) -> tuple[Any, Any]:
    """The execution's error and cause; for a run that failed without them, the last failure event's."""
    error, cause = description.get("error"), description.get("cause")
    if description["status"] != "SUCCEEDED" and not error:
        for event in reversed(aws.history(execution_arn)):
            details = event.get("executionFailedEventDetails")
            if details:
                return details.get("error"), details.get("cause")
    return error, cause


def _summary_endpoint(aws: LocalAws, deployment: dict, since: datetime | None) -> dict | None:
    """The run's endpoint with its status now; one this run deleted reads Deleted."""
    endpoint = describe_for_summary(
        aws.endpoints, deployment.get("endpoint_name"), since, engine=deployment.get("engine", "tgi")
    )
    if endpoint is not None:
        try:
            endpoint["status"] = aws.sagemaker.describe_endpoint(EndpointName=endpoint["name"])["EndpointStatus"]
        except aws.sagemaker.exceptions.ClientError:
            endpoint["status"] = "Deleted"
    return endpoint


_JOB_FIELDS = ("name", "kind", "status", "attempts", "failure_reason", "started", "ended", "seconds")


def _run_jobs(aws: LocalAws, run_id: str | None) -> list[dict]:
    return [{k: job[k] for k in _JOB_FIELDS} for job in aws.jobs.summaries() if run_id and job["run_id"] == run_id]


def _metrics_summary(metrics: dict | None) -> dict | None:
    return {"base": metrics.get("base"), "fine_tuned": metrics.get("fine_tuned")} if metrics else None


def summarize(aws: LocalAws, execution_arn: str, since: datetime | None = None, first_check: int = 0) -> dict[str, Any]:
    """The run's outcome; `since` and `first_check` limit deployments and IAM checks to this run's."""
    description = aws.sfn.describe_execution(executionArn=execution_arn)
    state = aws.final_state(execution_arn)
    error, cause = _failure(aws, execution_arn, description)
    run_id = (state.get("run") or {}).get("run_id")
    run_uri = f"s3://{aws.artifacts_bucket}/{run_prefix(run_id)}" if run_id else None
    metrics = aws.read_json(run_uri + RUN_LAYOUT["metrics"]) if run_uri else None
    # check_serving.py writes report.json into its output folder.
    serving_check = aws.read_json(run_uri + RUN_LAYOUT["serving_check"] + "report.json") if run_uri else None
    endpoint = _summary_endpoint(aws, state.get("deployment") or {}, since)
    return {
        "status": description["status"],
        "error": error,
        "cause": cause,
        "execution_name": description.get("name"),
        "execution_arn": execution_arn,
        "run_id": run_id,
        "run_folder": str(aws.workdir / "runs" / run_id) if run_id else None,
        "jobs": _run_jobs(aws, run_id),
        "metrics": _metrics_summary(metrics),
        "serving_check": _serving_check_summary(serving_check),
        "gate": state.get("gate"),
        "model_package": state.get("model_package"),
        "endpoint": endpoint,
        "endpoint_check": state.get("endpoint_check"),
        "cleanup": state.get("cleanup"),
        "output": json.loads(description["output"]) if description.get("output") else None,
        "not_emulated": aws.stack.not_emulated,
        "iam": aws.iam.summary(first_check),
    }


def _serving_check_summary(report: dict | None) -> dict | None:
    """What the serving image's own software found: the verdict, the image's versions, each mismatch."""
    if not report:
        return None
    rows = report.get("rows") or {}
    return {
        "passed": report.get("passed"),
        "engine": report.get("engine"),
        "software": report.get("software"),
        "checks": report.get("checks"),
        "rows": {"compared": rows.get("compared"), "matching": rows.get("matching")},
        "mismatches": report.get("mismatches"),
    }


def save(aws: LocalAws, summary: dict, first_check: int = 0) -> None:
    """Copy the run's S3 objects beside its jobs; write summary.json and the IAM checks (iam-checks.txt)."""
    run_id = summary.get("run_id")
    if not run_id:
        return
    folder = aws.workdir / "runs" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    summary["s3_objects"] = aws.copy_run_objects(run_id, folder / "s3")
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (folder / "iam-checks.txt").write_text(aws.iam.table(first_check) + "\n")
