"""The `run` value ValidateInput stores at `$.run`, and access to it from later steps."""

from __future__ import annotations

from common.environment import LambdaEnvironment
from common.naming import RunNames, run_id_from_execution_name
from common.polling import caps_for
from common.s3_paths import RunPaths


def build_run(execution_name: str, config: dict, env: LambdaEnvironment) -> dict:
    run_id = run_id_from_execution_name(execution_name)
    endpoint_name = config.get("deployment", {}).get("endpoint_name")
    names = RunNames.for_run(run_id, endpoint_name, env.model_package_group_name)
    paths = RunPaths.for_run(env.artifacts_bucket, run_id, names.train)
    return {
        "run_id": run_id,
        "execution_name": execution_name,
        "config": config,
        "names": names.as_dict(),
        "paths": paths.as_dict(),
        "poll_seconds": config["orchestration"]["poll_interval_seconds"],
        "poll_caps": caps_for(config),
    }


def run_of(event: dict) -> dict:
    """`$.run` from a handler's payload, with a clear error when the state lacks it."""
    state = event.get("state") or {}
    run = state.get("run")
    if not isinstance(run, dict) or "run_id" not in run:
        raise ValueError(
            f"the payload's state has no run (ValidateInput stores it at $.run); state keys: {sorted(state)}"
        )
    return run


def next_wait_seconds(run: dict, stage: str, started_at: float | None) -> int:
    """The wait before the next look at `stage` (prepare, train, evaluate, endpoint); see polling.py."""
    import time

    from common.polling import next_wait

    base = run["poll_seconds"]
    cap = (run.get("poll_caps") or {}).get(stage, base)
    elapsed = time.time() - started_at if started_at else 0.0
    return next_wait(elapsed, base, cap)
