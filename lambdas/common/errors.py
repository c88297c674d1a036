"""Errors the handlers raise. Step Functions matches Retry and Catch on the class name."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
        "RequestThrottled",
        "LimitExceededException",
        "Throttled",
    }
)


class InvalidInput(Exception):
    """The execution input breaks the schema; the message lists every problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            f"{len(problems)} problem(s) in the execution input:\n" + "\n".join(f"- {p}" for p in problems)
        )


class PreflightFailed(Exception):
    """The run would fail (a quota, an input, the base model, its time); the message lists every problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            f"{len(problems)} problem(s) found before any job started:\n" + "\n".join(f"- {p}" for p in problems)
        )


class ConfigurationError(Exception):
    """The Lambda environment the stack set is incomplete or inconsistent."""


class JobFailed(Exception):
    """A SageMaker job ended Failed or Stopped."""


class DataSetRefused(Exception):
    """prepare_data.py refused the data set; its report.json (in S3) lists every bad row."""


class EndpointFailed(Exception):
    """The endpoint failed to create, or an update rolled back."""


class EndpointMismatch(Exception):
    """The live endpoint does not answer what the evaluated model answered."""


class ResourceConflict(Exception):
    """A resource with the run's name exists but was not created by this run (or this stack)."""


class ThrottlingException(Exception):
    """AWS throttled a call after the client's own retries; the state machine retries later."""


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def error_message(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Message", "")


def is_throttling(error: ClientError) -> bool:
    return error_code(error) in THROTTLING_CODES


def is_not_found(error: ClientError) -> bool:
    """SageMaker answers a missing resource with ResourceNotFound or a ValidationException."""
    code, message = error_code(error), error_message(error).lower()
    if code in ("ResourceNotFound", "ResourceNotFoundException", "NoSuchKey", "404", "NotFound"):
        return True
    return code == "ValidationException" and any(
        hint in message for hint in ("could not find", "not found", "does not exist")
    )


def is_already_exists(error: ClientError) -> bool:
    """Creating a name that exists: ResourceInUse, or a ValidationException saying so."""
    code, message = error_code(error), error_message(error).lower()
    if code in ("ResourceInUse", "ResourceInUseException", "ConflictException"):
        return True
    return code == "ValidationException" and any(
        hint in message for hint in ("already exists", "already existing", "must be unique")
    )


def translate_throttling(function: Callable[..., Any]) -> Callable[..., Any]:
    """Re-raise a throttled AWS call as ThrottlingException, so Retry can match one name."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except ClientError as error:
            if is_throttling(error):
                raise ThrottlingException(f"AWS throttled the request: {error}") from error
            raise

    return wrapper
