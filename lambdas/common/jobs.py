"""Start and follow SageMaker jobs by name; a job that already exists is adopted, never doubled."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from botocore.exceptions import ClientError

from common import aws
from common.errors import JobFailed, is_already_exists, is_not_found

# kind -> (API noun, describe call, create call, stop call, name key, arn key, status key)
_API = {
    "prepare": ("Processing", "describe_processing_job", "create_processing_job", "stop_processing_job",
                "ProcessingJobName", "ProcessingJobArn", "ProcessingJobStatus"),
    "train": ("Training", "describe_training_job", "create_training_job", "stop_training_job",
              "TrainingJobName", "TrainingJobArn", "TrainingJobStatus"),
    "evaluate": ("Processing", "describe_processing_job", "create_processing_job", "stop_processing_job",
                 "ProcessingJobName", "ProcessingJobArn", "ProcessingJobStatus"),
}
KINDS = tuple(_API)
RUNNING = {"InProgress", "Stopping"}


@dataclass(frozen=True)
class JobState:
    """The contract's `$.jobs.<kind>` value."""

    name: str
    kind: str
    arn: str
    status: str
    adopted: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def _api(kind: str):
    if kind not in _API:
        raise ValueError(f"kind {kind!r} is not a job kind; allowed: {', '.join(KINDS)}")
    return _API[kind]


def describe(kind: str, name: str) -> dict | None:
    """The job's description, or None when no job has this name."""
    _, describe_call, *_ = _api(kind)
    sagemaker = aws.client("sagemaker")
    try:
        return getattr(sagemaker, describe_call)(**{_api(kind)[4]: name})
    except ClientError as error:
        if is_not_found(error):
            return None
        raise


def _state(kind: str, description: dict, adopted: bool) -> JobState:
    _, _, _, _, name_key, arn_key, status_key = _api(kind)
    return JobState(name=description[name_key], kind=kind, arn=description[arn_key],
                    status=collapse_status(description[status_key]), adopted=adopted)


def collapse_status(status: str) -> str:
    """The state machine's loop knows InProgress and Completed; ends in failure keep their name."""
    return "Completed" if status == "Completed" else status if status in ("Failed", "Stopped") else "InProgress"


def start(kind: str, request: dict) -> JobState:
    """Create the job unless one with its name exists; adopt an existing one (also after a race)."""
    _, _, create_call, _, name_key, _, _ = _api(kind)
    name = request[name_key]
    existing = describe(kind, name)
    if existing is not None:
        return _state(kind, existing, adopted=True)
    try:
        getattr(aws.client("sagemaker"), create_call)(**request)
    except ClientError as error:
        if not is_already_exists(error):
            raise
        raced = describe(kind, name)
        if raced is None:
            raise
        return _state(kind, raced, adopted=True)
    created = describe(kind, name)
    if created is None:
        raise RuntimeError(f"{kind} job {name} was created but cannot be described")
    return _state(kind, created, adopted=False)


def follow(kind: str, name: str) -> JobState:
    """The job's collapsed status; raises JobFailed with SageMaker's reason when it failed."""
    description = describe(kind, name)
    if description is None:
        raise JobFailed(f"{kind} job {name} failed: no such job (was it deleted?)")
    state = _state(kind, description, adopted=False)
    if state.status in ("Failed", "Stopped"):
        raw = description[_api(kind)[6]]
        reason = description.get("FailureReason") or description.get("ExitMessage") or "no reason given"
        secondary = description.get("SecondaryStatus")
        detail = f" (status {raw}" + (f", secondary status {secondary})" if secondary else ")")
        raise JobFailed(f"{kind} job {name} failed: {reason}{detail}")
    return state


def stop_if_running(kind: str, name: str) -> bool:
    """Stop this job when it is still running; True when a stop was requested."""
    description = describe(kind, name)
    if description is None or description[_api(kind)[6]] != "InProgress":
        return False
    _, _, _, stop_call, name_key, _, _ = _api(kind)
    getattr(aws.client("sagemaker"), stop_call)(**{name_key: name})
    return True
