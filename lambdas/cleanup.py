"""Cleanup: after any error, stop this run's jobs and remove its endpoint resources that never served.

It runs twice over for safety, and each time finds only what is left: inside the workflow (every
task's Catch), and from EventBridge for every execution that ends FAILED, TIMED_OUT or ABORTED, which
a Catch never sees (the state machine's timeout, StopExecution, a failure of Cleanup itself).

An endpoint that served before this run is never deleted: after a failed update its old config
keeps serving, and only this run's new config and model are removed.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError
from common import alarms, aws, endpoints, execution_history, jobs, model_registry, scaling
from common.environment import LambdaEnvironment
from common.errors import ThrottlingException, is_not_found, is_throttling, translate_throttling
from common.failure import describe_failure
from common.observability import logger, tracer


def _stop_jobs(names: dict) -> list[str]:
    stopped = []
    for kind in jobs.KINDS:
        if names.get(kind) and jobs.stop_if_running(kind, names[kind]):
            stopped.append(names[kind])
    return stopped


def _delete(call: str, **kwargs) -> bool:
    try:
        getattr(aws.client("sagemaker"), call)(**kwargs)
        return True
    except ClientError as error:
        if is_not_found(error):
            return False
        raise


def _delete_runs_endpoint(endpoint_name: str) -> list[str]:
    """This run's own endpoint never served anyone else: it goes, with its scaling and alarms."""
    deleted: list[str] = []
    if scaling.deregister(endpoint_name) is not None:
        deleted.append(f"scalable-target/{scaling.resource_id(endpoint_name)}")
    if _delete("delete_endpoint", EndpointName=endpoint_name):
        deleted.append(f"endpoint/{endpoint_name}")
    deleted.extend(f"alarm/{name}" for name in alarms.delete_alarms(endpoint_name))
    return deleted


def _return_to_previous_config(endpoint_name: str, deployment: dict) -> list[str]:
    """An endpoint updated to this run's config goes back to the one it had, when that still exists."""
    previous = deployment.get("previous_endpoint_config_name")
    if not (previous and endpoints.describe_endpoint_config(previous)):
        return [f"endpoint {endpoint_name} serves this run's config and no previous config is known; left as is"]
    aws.client("sagemaker").update_endpoint(
        EndpointName=endpoint_name, EndpointConfigName=previous, RetainAllVariantProperties=False
    )
    notes = [f"endpoint {endpoint_name} is being returned to {previous}"]
    if deployment.get("scaling_removed"):
        notes.append(
            f"auto scaling of {endpoint_name} was removed for this run's update; register it "
            f"again once the endpoint is InService: {deployment['scaling_removed']}"
        )
    return notes


def _keep_serving_endpoint(endpoint_name: str, endpoint: dict, deployment: dict) -> list[str]:
    """An endpoint that served before this run keeps its config, and gets back scaling this run removed."""
    notes = [f"endpoint {endpoint_name} served before this run and keeps {endpoint['EndpointConfigName']}"]
    removed = deployment.get("scaling_removed")
    if removed and endpoint["EndpointStatus"] == "InService":
        scaling.restore(removed)  # Deploy removed it to change the instance type; the old fleet keeps it
        notes.append(f"auto scaling of {endpoint_name} restored as it was before this run")
    return notes


def _settle_endpoint(
    endpoint: dict, names: dict, run_id: str, deployment: dict, stack_tag: str, deleted: list, notes: list
) -> bool:
    """Act on this stack's endpoint as its state requires; True when it still uses this run's config."""
    endpoint_name, config_name = names["endpoint"], names["endpoint_config"]
    on_our_config = endpoint["EndpointConfigName"] == config_name
    pending_ours = (endpoint.get("PendingDeploymentSummary") or {}).get("EndpointConfigName") == config_name
    if endpoints.created_by(endpoint, run_id, stack_tag):
        deleted.extend(_delete_runs_endpoint(endpoint_name))
        return False
    if on_our_config:
        notes.extend(_return_to_previous_config(endpoint_name, deployment))
        return True
    if pending_ours or endpoint["EndpointStatus"] in ("Updating", "RollingBack"):
        notes.append(
            f"endpoint {endpoint_name} is {endpoint['EndpointStatus']}; "
            f"this run's config and model are kept until it settles"
        )
        return True
    notes.extend(_keep_serving_endpoint(endpoint_name, endpoint, deployment))
    return False


def _delete_config_and_model(config_name: str, model_name: str) -> list[str]:
    # Described first: IAM decides a delete before SageMaker looks for the resource, and the
    # tag condition on deletes cannot hold for a resource that was never created.
    deleted: list[str] = []
    if endpoints.describe_endpoint_config(config_name) is not None and _delete(
        "delete_endpoint_config", EndpointConfigName=config_name
    ):
        deleted.append(f"endpoint-config/{config_name}")
    if endpoints.describe_model(model_name) is not None and _delete("delete_model", ModelName=model_name):
        deleted.append(f"model/{model_name}")
    return deleted


def _remove_endpoint_resources(
    names: dict, run_id: str, deployment: dict, stack_tag: str
) -> tuple[list[str], list[str]]:
    """(deleted resource names, notes on what was kept and why)."""
    deleted: list[str] = []
    notes: list[str] = []
    endpoint_name = names["endpoint"]
    endpoint = endpoints.describe_endpoint(endpoint_name)
    if endpoint is not None and not endpoints.owned_by(endpoints.tags_of(endpoint["EndpointArn"]), None, stack_tag):
        notes.append(f"endpoint {endpoint_name} was not created by this stack; left as it is")
        endpoint = None
    config_in_use = endpoint is not None and _settle_endpoint(
        endpoint, names, run_id, deployment, stack_tag, deleted, notes
    )
    if not config_in_use:
        deleted.extend(_delete_config_and_model(names["endpoint_config"], names["model"]))
    return deleted, notes


@tracer.capture_lambda_handler
@translate_throttling
def handler(event: dict, context: object) -> dict:
    if event.get("detail-type") == execution_history.STATUS_CHANGE:
        return _after_execution_ended(event["detail"])
    return clean_up(event.get("state") or {})


def _after_execution_ended(detail: dict) -> dict:
    """An execution ended outside the workflow's Catch: clean up what its history says it started."""
    events = execution_history.history(detail["executionArn"])
    status = detail.get("status", "FAILED")
    if execution_history.cleanup_ran(events):
        return {"skipped": f"the workflow's own Cleanup already ran for {detail.get('name')}", "status": status}
    state = execution_history.last_state(events)
    cause = detail.get("cause") or f"the execution {detail.get('name')} ended {status}"
    state["error"] = {
        "Error": detail.get("error") or execution_history.ENDING_ERRORS.get(status, status),
        "Cause": cause,
    }
    result = clean_up(state)
    logger.info(
        "cleaned up after the execution ended", extra={"execution": detail.get("executionArn"), "status": status}
    )
    return {**result, "status": status}


def clean_up(state: dict) -> dict:
    error, cause = describe_failure(state.get("error"))
    run = state.get("run") or {}
    result: dict[str, Any] = {
        "stopped_jobs": [],
        "deleted": [],
        "notes": [],
        "problems": [],
        "error": error,
        "cause": cause,
    }
    if not run.get("names"):
        return result  # failed before ValidateInput produced names: nothing was started
    steps = (
        ("stop jobs", lambda: result["stopped_jobs"].extend(_stop_jobs(run["names"]))),
        ("remove endpoint resources", lambda: _remove(run, state, result)),
        ("reject the package", lambda: _reject_package(state, error, cause, result)),
    )
    for label, step in steps:
        try:
            step()
        except ClientError as problem:
            if is_throttling(problem):
                raise ThrottlingException(f"AWS throttled cleanup: {problem}") from problem
            result["problems"].append(f"{label}: {problem}")
    logger.info("cleaned up", extra={"run_id": run.get("run_id"), **result})
    return result


def _reject_package(state: dict, error: str, cause: str, result: dict) -> None:
    """The run registered an Approved package, then failed (deployment, rollback, check): it is not production."""
    package = state.get("model_package") or {}
    if package.get("status") == "Approved" and package.get("arn"):
        model_registry.reject(package["arn"], f"the run failed after approval: {error}: {cause}")
        result["notes"].append(f"model package {package['arn']} set to Rejected: the run failed after approval")


def _remove(run: dict, state: dict, result: dict) -> None:
    stack_tag = LambdaEnvironment.from_os(required=()).stack_tag
    deleted, notes = _remove_endpoint_resources(run["names"], run["run_id"], state.get("deployment") or {}, stack_tag)
    result["deleted"].extend(deleted)
    result["notes"].extend(notes)
