"""Start and follow SageMaker jobs by name; a job that already exists is adopted, never doubled."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from botocore.exceptions import ClientError

from common import aws
from common.contract import JOB_APIS, JOB_KINDS
from common.errors import JobFailed, ResourceConflict, is_already_exists, is_not_found


@dataclass(frozen=True)
class JobApi:
    """The SageMaker calls and response keys of one kind of job."""

    noun: str  # "Training" or "Processing"

    @property
    def name_key(self) -> str:
        return f"{self.noun}JobName"

    @property
    def arn_key(self) -> str:
        return f"{self.noun}JobArn"

    @property
    def status_key(self) -> str:
        return f"{self.noun}JobStatus"

    def call(self, verb: str, **kwargs) -> dict:
        return getattr(aws.client("sagemaker"), f"{verb}_{self.noun.lower()}_job")(**kwargs)


APIS = {kind: JobApi(api.capitalize()) for kind, api in JOB_APIS.items()}
KINDS = JOB_KINDS


@dataclass(frozen=True)
class JobState:
    """The contract's `$.jobs.<kind>` value."""

    name: str
    kind: str
    arn: str
    status: str
    adopted: bool = False
    started_at: float | None = None  # the job's CreationTime, epoch seconds (for the next wait)

    def as_dict(self) -> dict:
        return asdict(self)


def _api(kind: str) -> JobApi:
    if kind not in APIS:
        raise ValueError(f"kind {kind!r} is not a job kind; allowed: {', '.join(KINDS)}")
    return APIS[kind]


def collapse_status(status: str) -> str:
    """The state machine's loop knows InProgress and Completed; ends in failure keep their name."""
    if status in ("Completed", "Failed", "Stopped"):
        return status
    return "InProgress"


def describe(kind: str, name: str) -> dict | None:
    """The job's description, or None when no job has this name."""
    api = _api(kind)
    try:
        return api.call("describe", **{api.name_key: name})
    except ClientError as error:
        if is_not_found(error):
            return None
        raise


def _state(kind: str, description: dict, adopted: bool) -> JobState:
    api = _api(kind)
    created = description.get("CreationTime")
    return JobState(
        name=description[api.name_key],
        kind=kind,
        arn=description[api.arn_key],
        status=collapse_status(description[api.status_key]),
        adopted=adopted,
        started_at=created.timestamp() if created is not None and hasattr(created, "timestamp") else None,
    )


def _check_adoptable(kind: str, description: dict, request: dict) -> None:
    """A job found under the run's name is this run's only if it carries every tag the run would give it."""
    wanted = {tag["Key"]: tag["Value"] for tag in request.get("Tags") or []}
    arn = description[_api(kind).arn_key]
    found = {tag["Key"]: tag["Value"] for tag in aws.client("sagemaker").list_tags(ResourceArn=arn).get("Tags", [])}
    differing = {key: found.get(key) for key, value in wanted.items() if found.get(key) != value}
    if differing:
        raise ResourceConflict(
            f"{kind} job {description[_api(kind).name_key]} exists but was not started by this run "
            f"(tags {differing}, expected {wanted}); it is not adopted"
        )


def start(kind: str, request: dict) -> JobState:
    """Create the job unless one with its name exists; adopt an existing one of this run (also after a race)."""
    api = _api(kind)
    name = request[api.name_key]
    existing = describe(kind, name)
    if existing is not None:
        _check_adoptable(kind, existing, request)
        return _state(kind, existing, adopted=True)
    try:
        api.call("create", **request)
    except ClientError as error:
        if not is_already_exists(error):
            raise
        raced = describe(kind, name)
        if raced is None:
            raise
        _check_adoptable(kind, raced, request)
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
        raw = description[_api(kind).status_key]
        # A processing job's FailureReason is often generic; its container's own words are in ExitMessage.
        failure, exit_message = description.get("FailureReason"), description.get("ExitMessage")
        reason = failure or exit_message or "no reason given"
        if failure and exit_message and exit_message.strip() not in failure:
            reason = f"{failure}; the job's exit message: {exit_message.strip()}"
        secondary = description.get("SecondaryStatus")
        detail = f" (status {raw}" + (f", secondary status {secondary})" if secondary else ")")
        raise JobFailed(f"{kind} job {name} failed: {reason}{detail}")
    return state


def stop_if_running(kind: str, name: str) -> bool:
    """Stop this job when it is still running; True when a stop was requested."""
    description = describe(kind, name)
    api = _api(kind)
    if description is None or description[api.status_key] != "InProgress":
        return False
    api.call("stop", **{api.name_key: name})
    return True
