"""A run's outcome from AWS APIs alone: execution, history, jobs, metrics.json, the model package, the endpoint.

It holds what local mode's summary shows (status, error and cause, each job, base and fine-tuned
metrics, the gate, the model package, the endpoint with a line to try it, where the report is) for
an execution anywhere, and, for a dry run, the preflight report.
"""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cdk_app.contract import run_prefix
from llm_finetune_cli.history import RunState, failure_of, lambda_error_message
from llm_finetune_cli.jobs import KINDS, JobStatus, describe_job
from llm_finetune_cli.target import Target
from llm_finetune_cli.training_progress import Progress, format_seconds

METRIC_KEYS = ("execution_accuracy", "exact_match", "count", "execution_errors")
STATUS_STYLES = {
    "SUCCEEDED": "bold green",
    "FAILED": "bold red",
    "ABORTED": "bold yellow",
    "TIMED_OUT": "bold red",
    "RUNNING": "bold cyan",
}
TRY_BODY = {"inputs": "SELECT", "parameters": {"max_new_tokens": 32}}


def build_summary(
    target: Target, description: dict, run: RunState, events: list[dict], training: Progress | None = None
) -> dict[str, Any]:
    state = run.state
    error, cause = description.get("error"), description.get("cause")
    if description["status"] not in ("SUCCEEDED", "RUNNING") and not error:
        error, cause = failure_of(events)
    settings = run.run
    paths = settings.get("paths") or {}
    run_id = settings.get("run_id")
    summary: dict[str, Any] = {
        "status": description["status"],
        "error": error,
        "cause": lambda_error_message(cause),
        "execution_name": description.get("name"),
        "execution_arn": description["executionArn"],
        "started": _iso(description.get("startDate")),
        "stopped": _iso(description.get("stopDate")),
        "seconds": _seconds(description.get("startDate"), description.get("stopDate")),
        "current_state": run.current if description["status"] == "RUNNING" else None,
        "run_id": run_id,
        "jobs": [_job(job) for job in _describe_jobs(target, run)],
        "training": _training(training, finished=description["status"] != "RUNNING"),
        "metrics": _metrics(target, paths.get("metrics"), state.get("gate")),
        "gate": state.get("gate"),
        "model_package": state.get("model_package"),
        "endpoint": _endpoint(target, run.deployment, state.get("endpoint_check")),
        "preflight": state.get("preflight"),
        "dry_run": bool(
            ((settings.get("config") or {}).get("orchestration") or {}).get("dry_run")
            or _input_dry_run(description.get("input"))
        ),
        "cleanup": state.get("cleanup"),
        "report": paths.get("report") if _evaluated(run) else None,
        "artifacts": f"s3://{target.outputs.artifacts_bucket}/{run_prefix(run_id)}" if run_id and run.jobs else None,
        "run_folder": str(Path(target.local.workdir) / "runs" / run_id) if target.local and run_id else None,
    }
    return summary


def _evaluated(run: RunState) -> bool:
    """The report exists once the evaluation job has completed (Gate runs on its metrics)."""
    return "Gate" in run.entered


def _describe_jobs(target: Target, run: RunState) -> list[JobStatus]:
    jobs = []
    for kind in KINDS:
        name = run.jobs.get(kind)
        job = describe_job(target.client("sagemaker"), kind, name) if name else None
        if job is not None:
            jobs.append(job)
    return jobs


def _job(job: JobStatus) -> dict[str, Any]:
    return {
        "kind": job.kind,
        "name": job.name,
        "status": job.status,
        "secondary_status": job.secondary,
        "failure_reason": job.failure_reason,
        "started": _iso(job.started),
        "ended": _iso(job.ended),
        "seconds": job.seconds,
        "billable_seconds": job.billable_seconds,
    }


def _training(progress: Progress | None, finished: bool) -> dict[str, Any] | None:
    if progress is None:
        return None
    point = progress.point
    return {
        "step": point.step,
        "total_steps": progress.total,
        "total_estimated": progress.total_estimated,
        "loss": point.loss,
        "learning_rate": point.learning_rate,
        "epoch": point.epoch,
        "tokens_per_second": point.tokens_per_second,
        "seconds_left": progress.seconds_left,
        "text": progress.describe(time_left=not finished),
    }


def _metrics(target: Target, uri: str | None, gate: dict | None) -> dict | None:
    """metrics.json of the evaluation; the gate's copy when the file cannot be read."""
    metrics = None
    if uri and uri.startswith("s3://"):
        bucket, _, key = uri[len("s3://") :].partition("/")
        try:
            metrics = json.loads(target.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
        except (ClientError, json.JSONDecodeError):
            metrics = None
    if metrics is None and isinstance(gate, dict) and isinstance(gate.get("metrics"), dict):
        metrics = gate["metrics"]
    if not isinstance(metrics, dict) or not (metrics.get("fine_tuned") or metrics.get("base")):
        return None
    return {"base": metrics.get("base"), "fine_tuned": metrics.get("fine_tuned")}


def _endpoint(target: Target, deployment: dict | None, check: dict | None) -> dict | None:
    name = (deployment or {}).get("endpoint_name")
    if not name:
        return None
    try:
        status = target.client("sagemaker").describe_endpoint(EndpointName=name)["EndpointStatus"]
    except ClientError:
        status = "not found"
    url = (check or {}).get(
        "url"
    ) or f"https://runtime.sagemaker.{target.region}.amazonaws.com/endpoints/{name}/invocations"
    command = ["aws", "sagemaker-runtime", "invoke-endpoint", "--endpoint-name", name, "--region", target.region]
    if target.endpoint_url:
        command += ["--endpoint-url", target.endpoint_url]
    command += [
        "--content-type",
        "application/json",
        "--cli-binary-format",
        "raw-in-base64-out",
        "--body",
        json.dumps(TRY_BODY),
        "/dev/stdout",
    ]
    return {
        "name": name,
        "status": status,
        "url": url,
        "try": shlex.join(command),
        "check": {k: (check or {}).get(k) for k in ("passed", "compared", "matches")} if check else None,
    }


def _input_dry_run(text: str | None) -> bool:
    try:
        return bool((json.loads(text or "{}").get("orchestration") or {}).get("dry_run"))
    except (json.JSONDecodeError, AttributeError):
        return False


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds")
    return value


def _seconds(start: Any, stop: Any) -> float | None:
    if isinstance(start, datetime):
        end = stop if isinstance(stop, datetime) else datetime.now(UTC)
        return round((end - start).total_seconds(), 1)
    return None


# ---- rendering ---------------------------------------------------------------------------------

LABEL_WIDTH = 15


def render_row(console: Console, label: str, value: str, width: int = LABEL_WIDTH) -> None:
    """`label  value` on one line however long (no wrapping: ARNs and commands stay copyable)."""
    indent = "\n" + " " * width
    console.print(f"[bold]{escape(label):<{width}}[/]" + value.replace("\n", indent), highlight=False, soft_wrap=True)


def _title(summary: dict[str, Any]) -> str:
    if summary.get("run_id"):
        return f"Run {summary['run_id']}  ({summary.get('execution_name')})"
    return f"Execution {summary.get('execution_name')}"


def _status_text(summary: dict[str, Any]) -> str:
    """A running execution has been going *for* a while; a finished one ran *in* it."""
    status = summary["status"]
    took = f" in {format_seconds(summary['seconds'])}" if summary.get("seconds") is not None else ""
    if status == "RUNNING":
        took = took.replace(" in ", " for ", 1)
    now = f"  (now in {escape(summary['current_state'])})" if summary.get("current_state") else ""
    return f"[{STATUS_STYLES.get(status, 'bold')}]{status}[/]{took}{now}"


def _render_failure(console: Console, summary: dict[str, Any]) -> None:
    if summary.get("error"):
        render_row(console, "Error", escape(str(summary["error"])))
        render_row(console, "Cause", escape(_short(summary.get("cause"), 1500)))
    if summary.get("training"):
        render_row(console, "Training", escape(summary["training"]["text"]))


def _render_gate(console: Console, summary: dict[str, Any]) -> None:
    gate = summary.get("gate")
    if not gate:
        return
    reasons = gate.get("reasons")
    reasons = "; ".join(map(str, reasons)) if isinstance(reasons, list) else str(reasons or "")
    render_row(
        console,
        "Gate",
        ("[green]passed[/]" if gate.get("passed") else "[red]failed[/]") + (f" - {escape(reasons)}" if reasons else ""),
    )


def _render_package(console: Console, summary: dict[str, Any]) -> None:
    package = summary.get("model_package")
    if not package:
        return
    render_row(console, "Model package", f"{escape(str(package.get('status')))}  {escape(str(package.get('arn')))}")
    if package.get("lineage_summary"):
        render_row(console, "Lineage", escape(str(package["lineage_summary"])))


def _render_endpoint(console: Console, summary: dict[str, Any]) -> None:
    endpoint = summary.get("endpoint")
    if not endpoint:
        return
    check = endpoint.get("check") or {}
    checked = (
        f", answers checked: {check.get('matches')} of {check.get('compared')} as evaluated"
        if check.get("compared") is not None
        else ""
    )
    render_row(console, "Endpoint", f"{escape(endpoint['name'])} {escape(endpoint['status'])}{checked}")
    render_row(console, "", escape(endpoint["url"]))
    render_row(console, "  try", escape(endpoint["try"]))


def _render_locations(console: Console, summary: dict[str, Any]) -> None:
    for label, key in (("Report", "report"), ("Artifacts", "artifacts"), ("Run folder", "run_folder")):
        if summary.get(key):
            render_row(console, label, escape(summary[key]))


def _render_tables(console: Console, summary: dict[str, Any]) -> None:
    if summary.get("jobs"):
        console.print(_jobs_table(summary["jobs"]))
    if summary.get("metrics"):
        console.print(_metrics_table(summary["metrics"]))


def _render_dry_run(console: Console, summary: dict[str, Any]) -> None:
    """A dry run's result is its preflight report; a stack too old for dry runs rejects the key."""
    if summary.get("preflight") is not None or (summary.get("dry_run") and summary["status"] == "SUCCEEDED"):
        render_preflight(console, summary.get("preflight"))
    elif summary.get("dry_run") and "dry_run: unknown key" in str(summary.get("cause")):
        console.print(
            "[red]The stack does not know dry runs[/] (orchestration.dry_run): deploy this version of it "
            "(npx cdk deploy)."
        )


_SECTIONS = (
    _render_failure,
    _render_gate,
    _render_package,
    _render_endpoint,
    _render_locations,
    _render_tables,
    _render_dry_run,
)


def render_summary(console: Console, summary: dict[str, Any]) -> None:
    status = _status_text(summary)
    console.rule(escape(_title(summary)), style="dim")
    render_row(console, "Dry run" if summary.get("dry_run") else "Status", status)
    for section in _SECTIONS:
        section(console, summary)
    console.rule(style="dim")


def _jobs_table(jobs: list[dict]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("job", "name", "status", "took", "billable"):
        table.add_column(column, no_wrap=column != "status", overflow="fold")
    for job in jobs:
        status = job["status"] + (
            f" ({job['secondary_status']})"
            if job.get("secondary_status") and job["secondary_status"] != job["status"]
            else ""
        )
        if job.get("failure_reason"):
            status += f": {_short(job['failure_reason'], 300)}"
        table.add_row(
            job["kind"],
            job["name"],
            escape(status),
            format_seconds(job["seconds"]) if job.get("seconds") is not None else "",
            format_seconds(job["billable_seconds"]) if job.get("billable_seconds") else "",
        )
    return table


def _metrics_table(metrics: dict) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("metric")
    table.add_column("base", justify="right")
    table.add_column("fine-tuned", justify="right")
    base, tuned = metrics.get("base") or {}, metrics.get("fine_tuned") or {}
    for key in METRIC_KEYS:
        if key in base or key in tuned:
            table.add_row(key, _value(base.get(key)), _value(tuned.get(key)))
    return table


def render_preflight(console: Console, preflight: dict | None) -> None:
    """Each check that passed, then each problem (its field, the value and what is allowed), one per line."""
    if not isinstance(preflight, dict):
        console.print(
            "[red]No preflight report in the execution's output[/]: the stack did not run a dry run "
            "(is it older than this CLI?)."
        )
        return
    passed = preflight.get("passed")
    console.print(f"Preflight: {'[green]passed[/]' if passed else '[red]failed[/]'}")
    for check in preflight.get("checks") or []:
        console.print(f"  [green]ok[/]      {escape(str(check))}")
    for problem in preflight.get("problems") or []:
        console.print(f"  [red]problem[/] {escape(str(problem))}")


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _short(text: Any, limit: int) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[:limit] + "..."
