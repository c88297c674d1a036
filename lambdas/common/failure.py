"""Turn the state machine's `$.error` ({"Error", "Cause"}) into what the Fail state shows."""

from __future__ import annotations

import json
import re

_JOB_ERROR = {
    "prepare": "PrepareJobFailed",
    "train": "TrainingJobFailed",
    "evaluate": "EvaluationJobFailed",
    "serving_check": "ServingCheckFailed",
}
_JOB_MESSAGE = re.compile(r"^(prepare|train|evaluate|serving_check) job ")


def describe_failure(error: dict | None) -> tuple[str, str]:
    """(error class, human-readable cause) from a caught error."""
    if not isinstance(error, dict):
        return "UnknownError", "the workflow failed without an error description"
    name = str(error.get("Error") or "UnknownError")
    cause = error.get("Cause") or ""
    message = cause
    try:
        parsed = json.loads(cause) if isinstance(cause, str) and cause.startswith("{") else None
    except json.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        message = parsed.get("errorMessage") or parsed.get("Cause") or cause
        name = str(parsed["errorType"]) if name in ("Lambda.Unknown", "") and parsed.get("errorType") else name
    if name == "JobFailed":
        match = _JOB_MESSAGE.match(str(message))
        name = _JOB_ERROR[match.group(1)] if match else name
    return name, str(message) or name
