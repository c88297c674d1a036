"""ValidateInput: resolve the execution input (defaults + input), validate it, record it."""

from __future__ import annotations

from common.environment import LambdaEnvironment
from common.errors import translate_throttling
from common.observability import logger, tracer
from common.run import build_run
from common.s3_paths import write_json
from common.validation import resolve


@tracer.capture_lambda_handler
@translate_throttling
def handler(event: dict, context: object) -> dict:
    env = LambdaEnvironment.from_os()
    execution_input = event.get("state")  # ValidateInput is the first state: $ is the input
    config = resolve(execution_input if execution_input is not None else {}, env.defaults)
    run = build_run(event.get("execution_name") or "", config, env)
    logger.append_keys(run_id=run["run_id"])
    write_json(
        run["paths"]["input"],
        {"execution_name": run["execution_name"], "run_id": run["run_id"], "config": config},
        env.kms_key_arn,
    )
    logger.info("execution input is valid", extra={"input_uri": run["paths"]["input"]})
    return run
