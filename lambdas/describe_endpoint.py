"""DescribeEndpoint: wait for InService on this run's config; a rollback or failure raises."""

from __future__ import annotations

from common import endpoints
from common.errors import EndpointFailed, translate_throttling
from common.observability import logger, tracer
from common.run import next_wait_seconds


@tracer.capture_lambda_handler
@translate_throttling
def handler(event: dict, context: object) -> dict:
    deployment = (event.get("state") or {}).get("deployment")
    if not isinstance(deployment, dict) or "endpoint_name" not in deployment:
        raise ValueError("the state has no deployment at $.deployment; DescribeEndpoint runs after Deploy")
    name, ours = deployment["endpoint_name"], deployment["endpoint_config_name"]
    endpoint = endpoints.describe_endpoint(name)
    if endpoint is None:
        raise EndpointFailed(f"endpoint {name} does not exist (deleted while deploying?)")
    status, reason = endpoint["EndpointStatus"], endpoint.get("FailureReason") or "no reason given"
    logger.info("endpoint status", extra={"endpoint": name, "status": status, "config": endpoint["EndpointConfigName"]})
    if status in endpoints.IN_PROGRESS and endpoints.IN_PROGRESS[status] != "Failed":
        run = (event.get("state") or {}).get("run") or {}
        wait = (
            next_wait_seconds(run, "endpoint", deployment.get("started_at"))
            if run.get("poll_seconds")
            else deployment.get("poll_seconds", 60)
        )
        return {**deployment, "status": endpoints.IN_PROGRESS[status], "poll_seconds": wait}
    if status == "InService":
        if endpoint["EndpointConfigName"] != ours:
            raise EndpointFailed(
                f"update rolled back: {reason} (endpoint {name} still serves "
                f"{endpoint['EndpointConfigName']}, not {ours})"
            )
        return {**deployment, "status": "InService"}
    raise EndpointFailed(f"endpoint {name} is {status}: {reason}")
