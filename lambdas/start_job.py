"""StartPrepare / StartTrain / StartEvaluate / StartServingCheck: start the run's job of `kind`, or adopt it."""

from __future__ import annotations

from common import jobs
from common.environment import LambdaEnvironment
from common.errors import translate_throttling
from common.job_requests import BUILDERS, RunContext
from common.observability import logger, tracer
from common.run import next_wait_seconds, run_of


@tracer.capture_lambda_handler
@translate_throttling
def handler(event: dict, context: object) -> dict:
    kind = event.get("kind")
    if kind not in BUILDERS:
        raise ValueError(f"payload kind {kind!r} is not a job kind; allowed: {', '.join(BUILDERS)}")
    run = run_of(event)
    ctx = RunContext.from_run(run, LambdaEnvironment.from_os(), event["state"].get("preflight"))
    logger.append_keys(run_id=ctx.run_id, kind=kind)
    state = jobs.start(kind, BUILDERS[kind](ctx))
    logger.info("job adopted" if state.adopted else "job started", extra={"job": state.as_dict()})
    return {**state.as_dict(), "poll_seconds": next_wait_seconds(run, kind, state.started_at)}
