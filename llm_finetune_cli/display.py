"""What `watch` prints: each state once as it is entered, job status changes, a training progress bar.

On a terminal the bar is a rich progress bar that stays below the lines printed above it while the
job trains; when the output goes to a file or a pipe, a line says where training is, at most every
`line_every` seconds, and once more when training has ended.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, TaskID, TextColumn
from rich.progress import Progress as RichProgress

from llm_finetune_cli.history import lambda_error_message
from llm_finetune_cli.jobs import JobStatus
from llm_finetune_cli.training_progress import Progress

STATE_PREFIX = "▶"
LINE_EVERY_SECONDS = 30.0


class WatchDisplay:
    def __init__(self, console: Console, line_every: float = LINE_EVERY_SECONDS):
        self.console = console
        self.line_every = line_every
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None
        self._shown_states: set[str] = set()
        self._last_line: float | None = None

    # ---- lines -----------------------------------------------------------------------------------
    def line(self, text: str, when: datetime | None = None) -> None:
        stamp = (when or datetime.now(UTC)).astimezone().strftime("%H:%M:%S")
        self.console.print(f"[dim]{stamp}[/]  {text}", highlight=False, soft_wrap=True)

    def execution(self, description: dict) -> None:
        self.line(
            f"execution [bold]{escape(description['name'])}[/] {description['status']}  "
            f"[dim]{escape(description['executionArn'])}[/]",
            description.get("startDate"),
        )

    def event(self, event: dict) -> None:
        """A history event: loop states (Wait, Describe, Choice...) are shown the first time only."""
        kind, when = event["type"], event.get("timestamp")
        if kind == "ExecutionRedriven":
            self._shown_states.clear()  # the redriven states run again: show them again
            self.line("execution redriven", when)
        elif kind.endswith("StateEntered"):
            name = event["stateEnteredEventDetails"]["name"]
            if name not in self._shown_states:
                self._shown_states.add(name)
                self.line(f"{STATE_PREFIX} {escape(name)}", when)
        elif kind in ("TaskFailed", "LambdaFunctionFailed"):
            details = event.get("taskFailedEventDetails") or event.get("lambdaFunctionFailedEventDetails") or {}
            message = lambda_error_message(details.get("cause")) or ""
            self.line(f"[red]! {escape(str(details.get('error')))}[/]: {escape(_short(message, 400))}", when)
        elif kind == "ExecutionSucceeded":
            self.line("[bold green]execution SUCCEEDED[/]", when)
        elif kind in ("ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"):
            details = (
                event.get("executionFailedEventDetails")
                or event.get("executionAbortedEventDetails")
                or event.get("executionTimedOutEventDetails")
                or {}
            )
            status = kind.removeprefix("Execution").upper().replace("TIMEDOUT", "TIMED_OUT")
            error = f": {escape(str(details['error']))}" if details.get("error") else ""
            self.line(f"[bold red]execution {status}[/]{error}", when)

    def job(self, job: JobStatus) -> None:
        parts = [f"[bold]{job.kind}[/] job {escape(job.name)}: {job.status}"]
        if job.secondary and job.secondary != job.status:
            parts.append(f"/ {job.secondary}")
        if job.message and job.message != job.secondary:
            parts.append(f"- {escape(_short(job.message, 200))}")
        if job.failure_reason and job.status == "Failed":
            parts.append(f"[red]{escape(_short(job.failure_reason, 400))}[/]")
        self.line(" ".join(parts))

    def endpoint(self, name: str, status: str, failure_reason: str | None) -> None:
        reason = f" [red]{escape(_short(failure_reason, 400))}[/]" if failure_reason else ""
        self.line(f"[bold]endpoint[/] {escape(name)}: {status}{reason}")

    # ---- the training bar ------------------------------------------------------------------------
    def training(self, progress: Progress, final: bool = False) -> None:
        if not self.console.is_terminal:
            now = time.monotonic()
            if final or self._last_line is None or now - self._last_line >= self.line_every:
                self._last_line = now
                self.line(f"[bold]train[/] {escape(progress.describe(time_left=not final))}")
            return
        if self._bar is None:
            self._bar = RichProgress(
                TextColumn("[bold]train[/]"),
                BarColumn(),
                TextColumn("{task.fields[text]}"),
                console=self.console,
                transient=False,
                refresh_per_second=4,
            )
            self._bar.start()
            self._task = self._bar.add_task("train", total=progress.total, text="")
        self._bar.update(
            self._task, completed=progress.point.step, total=progress.total, text=progress.describe(time_left=not final)
        )
        if final:
            self.close()  # the bar stays where it is, with the lines that follow below it

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _short(text: Any, limit: int) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[:limit] + "..."
