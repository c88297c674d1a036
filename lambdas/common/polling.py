"""How long the workflow waits between two looks at a job or an endpoint.

A Standard execution keeps at most 25,000 history events, and each look (Wait, the describe task,
the Choice) costs nine. So the wait grows with the time a stage has already taken (a tenth of it),
from the input's `poll_interval_seconds`, up to a cap that keeps even the longest stage the input
accepts within its share of looks (`LOOKS`). A short job is seen finishing at once; a week-long one
is looked at every few minutes.
"""

from __future__ import annotations

import math

GROWTH = 0.1
# Looks each stage may take at most (the plateau; the growing part adds about 10 * ln(cap / base)).
LOOKS = {"prepare": 200, "train": 1000, "evaluate": 300, "serving_check": 60, "endpoint": 200}
SERVING_CHECK_HOURS = 2  # the serving check job's MaxRuntimeInSeconds (job_requests.py)
EVENTS_PER_LOOK = 9
HISTORY_LIMIT = 25_000


def cap_seconds(stage: str, max_stage_seconds: float, base_seconds: int) -> int:
    """The longest wait of a stage that may last `max_stage_seconds`."""
    return max(base_seconds, math.ceil(max_stage_seconds / LOOKS[stage]))


def next_wait(elapsed_seconds: float, base_seconds: int, cap: int) -> int:
    """The wait before the next look, `elapsed_seconds` into the stage (whole seconds, as Wait needs)."""
    return int(min(cap, max(base_seconds, math.ceil(GROWTH * max(0.0, elapsed_seconds)))))


def looks_for(duration_seconds: float, base_seconds: int, cap: int) -> int:
    """How many looks a stage of `duration_seconds` takes with these waits (for the history's arithmetic)."""
    elapsed, looks = 0.0, 0
    while elapsed < duration_seconds:
        elapsed += next_wait(elapsed, base_seconds, cap)
        looks += 1
    return looks


def stage_limits(config: dict) -> dict[str, float]:
    """The longest each stage can last for this input, in seconds (what SageMaker lets it run)."""
    training = config["training"]
    train_hours = training.get("max_wait_hours") or (
        min(2 * training["max_runtime_hours"], 672) if training.get("use_spot") else training["max_runtime_hours"]
    )
    deployment = config.get("deployment") or {}
    blue_green = deployment.get("blue_green") or {}
    endpoint_seconds = (
        (deployment.get("model_data_download_timeout_seconds") or 3600)
        + (deployment.get("container_startup_timeout_seconds") or 3600)
        + blue_green.get("maximum_execution_timeout_seconds", 3600)
        + blue_green.get("termination_wait_seconds", 0)
    )
    return {
        "prepare": config["preparation"]["max_runtime_hours"] * 3600,
        "train": max(train_hours, training["max_runtime_hours"]) * 3600,
        "evaluate": config["evaluation"]["max_runtime_hours"] * 3600,
        "serving_check": SERVING_CHECK_HOURS * 3600,
        "endpoint": endpoint_seconds,
    }


def caps_for(config: dict) -> dict[str, int]:
    base = config["orchestration"]["poll_interval_seconds"]
    return {stage: cap_seconds(stage, seconds, base) for stage, seconds in stage_limits(config).items()}
