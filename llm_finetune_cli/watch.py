"""Follow one execution to its end: states, jobs and training progress as they change, then the summary."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from llm_finetune_cli import executions
from llm_finetune_cli.display import WatchDisplay
from llm_finetune_cli.errors import TERMINAL_STATUSES
from llm_finetune_cli.history import ExecutionHistory, RunState
from llm_finetune_cli.jobs import EndpointTracker, JobStatus, JobTracker
from llm_finetune_cli.target import Target
from llm_finetune_cli.training_progress import Progress, TrainingLog, estimate

pause = time.sleep  # between polls (tests replace it to act between two polls)
CATCH_UP_SECONDS = 0.2  # between history pages while reading back to the last event seen
FINAL_LOG_PAGES = 50  # pages of a finished training job's log read at most, to show where it ended


@dataclass
class Followed:
    description: dict
    run: RunState
    events: list[dict]
    training: Progress | None


class TrainingFollower:
    """The training job's progress from its log while it runs, and its last lines once it has ended."""

    def __init__(self, target: Target):
        self.target = target
        self.log: TrainingLog | None = None
        self.job: JobStatus | None = None
        self.finished = False

    def poll(self, job: JobStatus | None) -> tuple[Progress, bool] | None:
        """(progress, whether training has ended) when new steps were logged, or training ended, since the last poll."""
        if job is None or self.finished:
            return None
        if self.log is None or self.log.job_name != job.name:
            self.log, self.finished = TrainingLog(self.target.client("logs"), job.name), False
        self.job = job
        new = self.log.poll()
        if job.done:
            for _ in range(FINAL_LOG_PAGES):
                more = self.log.poll()
                if not more:
                    break
                new += more
            self.finished = True
        progress = self.progress
        if progress is None or not (new or self.finished):
            return None
        return progress, self.finished

    @property
    def progress(self) -> Progress | None:
        if self.log is None:
            return None
        return estimate(self.log.points, self.job.hyperparameters if self.job else {})


def follow(
    target: Target, arn: str, display: WatchDisplay, interval: float, sleep: Callable[[float], None] | None = None
) -> Followed:
    sleep = sleep or pause
    sfn = target.client("stepfunctions")
    history = ExecutionHistory(sfn, arn)
    run = RunState()
    jobs = JobTracker(target.client("sagemaker"))
    training = TrainingFollower(target)
    endpoint = EndpointTracker(target.client("sagemaker"))
    description = executions.describe(sfn, arn)
    display.execution(description)
    replay = description["status"] in TERMINAL_STATUSES
    while True:
        for event in history.poll():
            run.add(event)
            display.event(event)
        for job in jobs.poll(run.jobs):
            if not replay:  # an execution that had ended: its summary lists the jobs
                display.job(job)
        progress = training.poll(jobs.latest.get("train"))
        if progress is not None:
            display.training(*progress)
        # Also on the look that finds the run ended: it may have reached InService since the last one.
        changed = endpoint.poll(run.deployment) if not replay else None
        if changed is not None:
            display.endpoint(*changed)
        if description["status"] in TERMINAL_STATUSES and history.caught_up:
            break
        sleep(interval if history.caught_up else CATCH_UP_SECONDS)
        description = executions.describe(sfn, arn)
    display.close()
    return Followed(description=description, run=run, events=history.events, training=training.progress)
