"""Describe…: the job's status for the poll loop; raises JobFailed with SageMaker's reason."""
from __future__ import annotations

from common import jobs
from common.errors import translate_throttling
from common.observability import logger, tracer
from common.run import next_wait_seconds, run_of


@tracer.capture_lambda_handler
@translate_throttling
def handler(event: dict, context: object) -> dict:
    kind = event.get("kind")
    run = run_of(event)
    if kind not in jobs.KINDS:
        raise ValueError(f"payload kind {kind!r} is not a job kind; allowed: {', '.join(jobs.KINDS)}")
    known = (event["state"].get("jobs") or {}).get(kind) or {}
    name = known.get("name") or run["names"][kind]
    state = jobs.follow(kind, name)
    logger.info("job status", extra={"run_id": run["run_id"], "job": state.as_dict()})
    return {**state.as_dict(), "adopted": bool(known.get("adopted")),
            "poll_seconds": next_wait_seconds(run, kind, state.started_at)}
