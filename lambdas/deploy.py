"""Deploy: serve the merged model on TGI; a new endpoint is created, an existing one updated blue/green."""

from __future__ import annotations

import time

from common import endpoints
from common.environment import LambdaEnvironment
from common.errors import translate_throttling
from common.job_requests import RunContext
from common.observability import logger, tracer
from common.run import next_wait_seconds, run_of


@tracer.capture_lambda_handler
@translate_throttling
def handler(event: dict, context: object) -> dict:
    run = run_of(event)
    ctx = RunContext.from_run(run, LambdaEnvironment.from_os(), event["state"].get("preflight"))
    result = endpoints.deploy(ctx)
    logger.info("deployment started", extra={"run_id": ctx.run_id, **result})
    started = time.time()
    return {
        **result,
        "status": "Updating" if result["action"] == "update" else "Creating",
        "started_at": started,
        "poll_seconds": next_wait_seconds(run, "endpoint", started),
    }
