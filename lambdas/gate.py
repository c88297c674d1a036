"""Gate: decide from the evaluation metrics whether the model may be registered Approved."""

from __future__ import annotations

from common import model_registry
from common.environment import LambdaEnvironment
from common.errors import translate_throttling
from common.gate_rules import decide
from common.observability import logger, tracer
from common.run import run_of
from common.s3_paths import read_json


@tracer.capture_lambda_handler
@translate_throttling
def handler(event: dict, context: object) -> dict:
    env = LambdaEnvironment.from_os()
    run = run_of(event)
    gate = run["config"]["evaluation"]["gate"]
    metrics = read_json(run["paths"]["metrics"])
    production = None
    if gate.get("compare_to_production", True):
        # Production is what the endpoint serves now, as recorded by the deployment that last passed its check.
        production = model_registry.production_accuracy(run["names"]["endpoint"], env.stack_tag, run["run_id"])
    decision = decide(metrics, gate, production)
    logger.info("gate decided", extra={"run_id": run["run_id"], **decision.as_dict()})
    return decision.as_dict()
