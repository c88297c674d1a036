"""What a local run prints while it goes: states, job logs, a training progress bar, the summary."""

from __future__ import annotations

import re
import sys
import threading
import time
from typing import Any, TextIO

from cdk_app.contract import METRIC_PREFIX

_STEP = re.compile(re.escape(METRIC_PREFIX) + r" step=(\d+)(.*)")
_LOSS = re.compile(r"loss=([0-9.eE+-]+)")
BAR_WIDTH = 24


class Progress:
    """Prints to `stream`; with `verbose`, every job log line, else only the lines that matter."""

    def __init__(self, stream: TextIO | None = None, verbose: bool = True, quiet: bool = False):
        self.stream = stream or sys.stdout
        self.verbose = verbose
        self.quiet = quiet
        self.started = time.monotonic()
        self.total_steps: dict[str, int | None] = {}
        self._lock = threading.Lock()
        self._entered: set[str] = set()

    def _print(self, text: str) -> None:
        if self.quiet:
            return
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()

    def stamp(self) -> str:
        return f"[{time.monotonic() - self.started:7.1f}s]"

    def info(self, text: str) -> None:
        self._print(f"{self.stamp()} {text}")

    def state_event(self, event: dict) -> None:
        """One Step Functions history event; loop states (Wait, Describe...) are shown once."""
        kind = event["type"]
        if kind.endswith("StateEntered"):
            name = event["stateEnteredEventDetails"]["name"]
            if name not in self._entered:
                self._entered.add(name)
                self.info(f"> {name}")
        elif kind in ("TaskFailed", "LambdaFunctionFailed"):
            details = event.get("taskFailedEventDetails") or event.get("lambdaFunctionFailedEventDetails") or {}
            self.info(f"! task failed: {details.get('error')}: {_short(details.get('cause'), 300)}")
        elif kind == "ExecutionSucceeded":
            self.info("execution SUCCEEDED")
        elif kind in ("ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"):
            details = event.get("executionFailedEventDetails") or {}
            self.info(
                f"execution {kind.removeprefix('Execution').upper()}: {details.get('error')}: "
                f"{_short(details.get('cause'), 500)}"
            )

    def job_line(self, job: str, kind: str, line: str) -> None:
        line = line.split("\r")[-1].rstrip()
        match = _STEP.search(line)
        if match:
            self._print(f"{self.stamp()}   [{job}] {self._bar(job, int(match.group(1)), match.group(2))}")
            return
        if self.verbose or line.startswith("[local mode]"):
            self._print(f"{self.stamp()}   [{job}] {line}")

    def endpoint_event(self, endpoint: str, message: str) -> None:
        self.info(f"  endpoint {endpoint}: {message}")

    def _bar(self, job: str, step: int, rest: str) -> str:
        total = self.total_steps.get(job)
        loss = _LOSS.search(rest)
        suffix = f" loss={loss.group(1)}" if loss else ""
        if not total:
            return f"step {step}{suffix}"
        filled = min(BAR_WIDTH, int(BAR_WIDTH * step / total))
        return f"step {step:>4}/{total} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}]{suffix}"

    def summary(self, summary: dict[str, Any]) -> None:
        for line in format_summary(summary):
            self._print(line)


def _header_lines(summary: dict[str, Any]) -> list[str]:
    took = f"  in {summary['seconds']:.0f}s" if summary.get("seconds") else ""
    lines = [
        "",
        "=" * 72,
        f"Run {summary.get('run_id')}  ({summary.get('execution_name')})",
        f"Status: {summary['status']}" + took,
    ]
    if summary.get("error"):
        lines.append(f"Error:  {summary['error']}")
        lines.append(f"Cause:  {_short(summary.get('cause'), 800)}")
    return lines


def _job_lines(summary: dict[str, Any]) -> list[str]:
    lines = []
    for job in summary.get("jobs") or []:
        extra = f" ({job['attempts']} attempts)" if job.get("attempts", 1) > 1 else ""
        took = f" in {job['seconds']:.0f}s" if job.get("seconds") is not None else ""
        lines.append(f"Job     {job['kind']:<10} {job['name']:<40} {job['status']}{took}{extra}")
    return lines


def _metric_text(key: str, value: Any) -> str:
    return f"{key}={value:.3f}" if isinstance(value, float) else f"{key}={value}"


def _metric_lines(summary: dict[str, Any]) -> list[str]:
    metrics = summary.get("metrics") or {}
    lines = []
    for model in ("base", "fine_tuned"):
        values = metrics.get(model)
        if values:
            shown = ", ".join(
                _metric_text(key, values[key])
                for key in ("execution_accuracy", "exact_match", "count")
                if key in values
            )
            lines.append(f"Metrics {model:<10} {shown}")
    return lines


def _gate_lines(summary: dict[str, Any]) -> list[str]:
    gate = summary.get("gate")
    if not gate:
        return []
    reasons = f" - {'; '.join(gate.get('reasons') or [])}" if gate.get("reasons") else ""
    return [f"Gate:   {'passed' if gate.get('passed') else 'failed'}" + reasons]


def _package_lines(summary: dict[str, Any]) -> list[str]:
    package = summary.get("model_package")
    if not package:
        return []
    lines = [f"Model package: {package.get('status')}  {package.get('arn')}"]
    if package.get("lineage_summary"):
        lines.append(f"Lineage: {package['lineage_summary']}")
    return lines


def _endpoint_lines(summary: dict[str, Any]) -> list[str]:
    endpoint = summary.get("endpoint")
    if not (endpoint and endpoint.get("url")):
        return []
    return [f"Endpoint {endpoint['name']}: {endpoint['url']}", f"  try:  {endpoint['curl']}"]


def _iam_lines(summary: dict[str, Any]) -> list[str]:
    """The first few denials only: the run folder's iam-checks.txt has them all."""
    iam = summary.get("iam")
    if not iam:
        return []
    denials = "".join(
        f"\n  DENIED {d['principal']}: {d['action']} on {d['resource']}" for d in iam.get("denials", [])[:5]
    )
    return [f"IAM:    {iam['checks']} checks, {iam['denied']} denied" + denials]


def _run_folder_lines(summary: dict[str, Any]) -> list[str]:
    if not summary.get("run_folder"):
        return []
    return [f"Run folder: {summary['run_folder']}  (jobs/, lambda/, s3/, summary.json, iam-checks.txt)"]


_SECTIONS = (
    _header_lines,
    _job_lines,
    _metric_lines,
    _gate_lines,
    _package_lines,
    _endpoint_lines,
    _iam_lines,
    _run_folder_lines,
)


def format_summary(summary: dict[str, Any]) -> list[str]:
    lines = [line for section in _SECTIONS for line in section(summary)]
    lines.append("=" * 72)
    return lines


def _short(text: Any, limit: int) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[:limit] + "..."
