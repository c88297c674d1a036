"""The run's SageMaker jobs as SageMaker describes them: status, secondary status, times, failure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from cdk_app.contract import JOB_APIS, JOB_KINDS

KINDS = JOB_KINDS
TERMINAL_JOB_STATUSES = ("Completed", "Failed", "Stopped")
LOG_GROUPS = {"training": "/aws/sagemaker/TrainingJobs", "processing": "/aws/sagemaker/ProcessingJobs"}


def api_of(kind: str) -> str:
    """The SageMaker API that runs a job kind: "training" or "processing"."""
    return JOB_APIS[kind]


@dataclass
class JobStatus:
    kind: str
    name: str
    status: str
    secondary: str | None = None
    message: str | None = None
    failure_reason: str | None = None
    started: datetime | None = None
    ended: datetime | None = None
    billable_seconds: int | None = None
    hyperparameters: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_JOB_STATUSES

    @property
    def seconds(self) -> float | None:
        if self.started and self.ended:
            return (self.ended - self.started).total_seconds()
        return None

    @property
    def shown(self) -> tuple:
        """What a watcher prints again when it changes."""
        return self.status, self.secondary, self.message


def describe_job(sagemaker: Any, kind: str, name: str) -> JobStatus | None:
    """The job, or None while SageMaker does not know it yet."""
    try:
        if api_of(kind) == "training":
            job = sagemaker.describe_training_job(TrainingJobName=name)
        else:
            job = sagemaker.describe_processing_job(ProcessingJobName=name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("ValidationException", "ResourceNotFound"):
            return None
        raise
    if api_of(kind) == "training":
        transitions = job.get("SecondaryStatusTransitions") or []
        return JobStatus(
            kind=kind,
            name=name,
            status=job["TrainingJobStatus"],
            secondary=job.get("SecondaryStatus"),
            message=transitions[-1].get("StatusMessage") if transitions else None,
            failure_reason=job.get("FailureReason"),
            started=job.get("TrainingStartTime"),
            ended=job.get("TrainingEndTime"),
            billable_seconds=job.get("BillableTimeInSeconds"),
            hyperparameters=job.get("HyperParameters") or {},
        )
    return JobStatus(
        kind=kind,
        name=name,
        status=job["ProcessingJobStatus"],
        message=job.get("ExitMessage"),
        failure_reason=job.get("FailureReason"),
        started=job.get("ProcessingStartTime"),
        ended=job.get("ProcessingEndTime"),
    )


class JobTracker:
    """Describes each started job until it ends; reports a job again only when what is shown changed."""

    def __init__(self, sagemaker: Any):
        self.sagemaker = sagemaker
        self.latest: dict[str, JobStatus] = {}

    def poll(self, started: dict[str, str]) -> list[JobStatus]:
        changed = []
        for kind, name in started.items():
            known = self.latest.get(kind)
            if known is not None and known.name == name and known.done:
                continue
            job = describe_job(self.sagemaker, kind, name)
            if job is None:
                continue
            if known is None or known.name != name or known.shown != job.shown:
                changed.append(job)
            self.latest[kind] = job
        return changed


class EndpointTracker:
    """The run's endpoint while it is created or updated: its status as SageMaker reports it."""

    SETTLED = ("InService", "Failed", "OutOfService")

    def __init__(self, sagemaker: Any):
        self.sagemaker = sagemaker
        self.name: str | None = None
        self.shown: tuple | None = None
        self.settled = False

    def poll(self, deployment: dict | None) -> tuple[str, str, str | None] | None:
        """(name, status, failure reason) when it changed since the last poll."""
        name = (deployment or {}).get("endpoint_name")
        if not name:
            return None
        if name != self.name:
            self.name, self.shown, self.settled = name, None, False
        if self.settled:
            return None
        try:
            endpoint = self.sagemaker.describe_endpoint(EndpointName=name)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ValidationException":
                return None
            raise
        current = (name, endpoint["EndpointStatus"], endpoint.get("FailureReason"))
        self.settled = current[1] in self.SETTLED
        if current == self.shown:
            return None
        self.shown = current
        return current
