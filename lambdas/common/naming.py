"""Names derived from the execution name, so re-running or redriving finds the same resources.

SageMaker names: at most 63 characters matching ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass

from common.contract import NAME_SUFFIXES

SAGEMAKER_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
MAX_NAME_LENGTH = 63
HASH_LENGTH = 8
SUFFIXES = NAME_SUFFIXES
# The longest suffix a run appends to its run_id leaves room for the rest.
MAX_RUN_ID_LENGTH = MAX_NAME_LENGTH - max(len(s) for s in SUFFIXES.values())


def run_id_from_execution_name(execution_name: str) -> str:
    """Sanitized, shortened execution name plus an 8-character hash of the full name."""
    if not execution_name:
        raise ValueError("execution_name is empty; the state machine passes $$.Execution.Name")
    digest = hashlib.sha256(execution_name.encode("utf-8")).hexdigest()[:HASH_LENGTH]
    readable = re.sub(r"[^a-zA-Z0-9]+", "-", execution_name).strip("-")
    readable = readable[: MAX_RUN_ID_LENGTH - HASH_LENGTH - 1].rstrip("-") or "run"
    return f"{readable}-{digest}"


def is_sagemaker_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and SAGEMAKER_NAME.fullmatch(name) is not None


@dataclass(frozen=True)
class RunNames:
    """Every SageMaker name one run uses; keys of `prepare`/`train`/`evaluate` match job kinds."""

    prepare: str
    train: str
    evaluate: str
    serving_check: str
    model: str
    endpoint_config: str
    endpoint: str
    model_package_group: str

    @classmethod
    def for_run(cls, run_id: str, endpoint_name: str | None, model_package_group: str) -> RunNames:
        names = {key: run_id + suffix for key, suffix in SUFFIXES.items()}
        if endpoint_name:
            names["endpoint"] = endpoint_name
        return cls(model_package_group=model_package_group, **names)

    def as_dict(self) -> dict:
        return asdict(self)
