"""ConfigureScaling: once the endpoint is InService, register its variant for auto scaling (when asked)."""

from __future__ import annotations

from common import scaling
from common.errors import translate_throttling
from common.observability import logger, tracer
from common.run import run_of


@tracer.capture_lambda_handler
@translate_throttling
def handler(event: dict, context: object) -> dict:
    run = run_of(event)
    deployment = (event.get("state") or {}).get("deployment")
    if not isinstance(deployment, dict) or "endpoint_name" not in deployment:
        raise ValueError("the state has no deployment at $.deployment; ConfigureScaling runs after Deploy")
    name = deployment["endpoint_name"]
    settings = run["config"]["deployment"].get("autoscaling")
    if not settings:
        return {"configured": False, "endpoint_name": name}
    applied = scaling.configure(name, settings)
    result = {
        "configured": True,
        "endpoint_name": name,
        "resource_id": applied["target"]["ResourceId"],
        "min_instances": settings["min_instances"],
        "max_instances": settings["max_instances"],
        "metric": settings["metric"],
        "target_value": settings["target_value"],
        "policy_name": applied["policy"]["PolicyName"],
    }
    logger.info("auto scaling configured", extra={"run_id": run["run_id"], **result})
    return result
