"""SageMaker model, endpoint config and endpoint of one run: create, update blue/green, remove."""

from __future__ import annotations

from botocore.exceptions import ClientError

from common import alarms, aws, scaling
from common.contract import RUN_ID_TAG, STACK_TAG
from common.errors import ResourceConflict, is_already_exists, is_not_found
from common.instance_types import has_local_storage
from common.job_requests import RunContext, owned_by
from common.s3_paths import prefix_size_bytes
from common.serving import (
    VARIANT_NAME,
    container_environment,
    engine_of,
    inference_ami_version,
    model_data_source,
    timeout_for_size,
)

ROLLBACK_ALARMS_LIMIT = 10
IN_PROGRESS = {
    "Creating": "Creating",
    "Updating": "Updating",
    "SystemUpdating": "Updating",
    "RollingBack": "Updating",
    "UpdateRollbackFailed": "Failed",
}


def _describe(call: str, **kwargs) -> dict | None:
    try:
        return getattr(aws.client("sagemaker"), call)(**kwargs)
    except ClientError as error:
        if is_not_found(error):
            return None
        raise


def describe_endpoint(name: str) -> dict | None:
    return _describe("describe_endpoint", EndpointName=name)


def describe_endpoint_config(name: str) -> dict | None:
    return _describe("describe_endpoint_config", EndpointConfigName=name)


def describe_model(name: str) -> dict | None:
    return _describe("describe_model", ModelName=name)


def _create(call: str, request: dict) -> None:
    """Create, treating 'already exists' as this run's earlier attempt (the names are the run's)."""
    try:
        getattr(aws.client("sagemaker"), call)(**request)
    except ClientError as error:
        if not is_already_exists(error):
            raise


def model_request(ctx: RunContext) -> dict:
    deployment = ctx.config["deployment"]
    request = {
        "ModelName": ctx.names["model"],
        "PrimaryContainer": {
            "Image": ctx.env.serving_image(deployment),
            "ModelDataSource": model_data_source(ctx.paths["merged"]),
            "Environment": container_environment(deployment),
        },
        "ExecutionRoleArn": ctx.env.sagemaker_role_arn,
        "EnableNetworkIsolation": True,
        "Tags": ctx.tags,
    }
    if ctx.env.vpc_config:
        request["VpcConfig"] = ctx.env.vpc_config
    return request


def endpoint_config_request(ctx: RunContext, model_size_bytes: int) -> dict:
    deployment = ctx.config["deployment"]
    instance_type = deployment["instance_type"]
    variant = {
        "VariantName": VARIANT_NAME,
        "ModelName": ctx.names["model"],
        "InstanceType": instance_type,
        "InitialInstanceCount": deployment["instance_count"],
        "InitialVariantWeight": 1.0,
        "ContainerStartupHealthCheckTimeoutInSeconds": timeout_for_size(
            model_size_bytes, deployment.get("container_startup_timeout_seconds")
        ),
        "ModelDataDownloadTimeoutInSeconds": timeout_for_size(
            model_size_bytes, deployment.get("model_data_download_timeout_seconds")
        ),
    }
    ami = inference_ami_version(ctx.env.serving_image(deployment))
    if ami:
        variant["InferenceAmiVersion"] = ami  # the image's CUDA needs this AMI's driver
    request = {"EndpointConfigName": ctx.names["endpoint_config"], "ProductionVariants": [variant], "Tags": ctx.tags}
    if ctx.env.kms_key_arn and not has_local_storage(instance_type):
        request["KmsKeyId"] = ctx.env.kms_key_arn  # instance storage is encrypted in hardware
    return request


def deployment_config(deployment: dict, endpoint_alarms: list[str] | None = None) -> dict:
    """Blue/green: the new fleet takes all traffic at once, is watched, and rolls back on failure
    (or when one of the endpoint's alarms, or the input's own alarms, goes off while it bakes)."""
    blue_green = deployment["blue_green"]
    config = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "ALL_AT_ONCE",
                "WaitIntervalInSeconds": blue_green["wait_interval_seconds"],
            },
            "TerminationWaitInSeconds": blue_green["termination_wait_seconds"],
            "MaximumExecutionTimeoutInSeconds": blue_green["maximum_execution_timeout_seconds"],
        }
    }
    names = list(dict.fromkeys(list(endpoint_alarms or []) + list(blue_green.get("rollback_alarm_names") or [])))
    if names:
        config["AutoRollbackConfiguration"] = {
            "Alarms": [{"AlarmName": name} for name in names[:ROLLBACK_ALARMS_LIMIT]]
        }
    return config


def deploy(ctx: RunContext) -> dict:
    """Create the run's model and config, then create the endpoint or update it blue/green.

    The endpoint's alarms are made after a new endpoint exists (Cleanup removes both together) and
    before an update, whose automatic rollback watches them.
    """
    _create("create_model", model_request(ctx))
    size = prefix_size_bytes(ctx.paths["merged"])
    _create("create_endpoint_config", endpoint_config_request(ctx, size))
    name, config_name = ctx.names["endpoint"], ctx.names["endpoint_config"]
    deployment = ctx.config["deployment"]
    result = {
        "endpoint_name": name,
        "endpoint_config_name": config_name,
        "model_name": ctx.names["model"],
        "previous_endpoint_config_name": None,
        "engine": engine_of(deployment),
        "alarms": [],
        "scaling_removed": None,
    }
    endpoint = describe_endpoint(name)
    sagemaker = aws.client("sagemaker")
    if endpoint is None:
        try:
            sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=config_name, Tags=ctx.tags)
        except ClientError as error:
            if not is_already_exists(error):
                raise
        return {**result, "action": "create", "alarms": alarms.ensure_alarms(name, deployment["alarms"], ctx.tags)}
    check_owned(endpoint, ctx.env.stack_tag)
    if endpoint["EndpointConfigName"] == config_name or _pending_config(endpoint) == config_name:
        created_here = created_by(endpoint, ctx.run_id, ctx.env.stack_tag)
        return {
            **result,
            "action": "create" if created_here else "update",
            "adopted": True,
            "alarms": alarms.alarm_names(name) if deployment["alarms"].get("enabled", True) else [],
        }
    endpoint_alarms = alarms.ensure_alarms(name, deployment["alarms"], ctx.tags)
    result["alarms"] = endpoint_alarms
    if _instance_type_changes(endpoint, deployment["instance_type"]):
        # SageMaker refuses to change the instance type of a variant registered for auto scaling.
        result["scaling_removed"] = scaling.deregister(name)
    sagemaker.update_endpoint(
        EndpointName=name,
        EndpointConfigName=config_name,
        RetainAllVariantProperties=False,
        DeploymentConfig=deployment_config(deployment, endpoint_alarms),
    )
    return {**result, "action": "update", "previous_endpoint_config_name": endpoint["EndpointConfigName"]}


def _instance_type_changes(endpoint: dict, instance_type: str) -> bool:
    serving = describe_endpoint_config(endpoint["EndpointConfigName"]) or {}
    current = {variant.get("InstanceType") for variant in serving.get("ProductionVariants", [])}
    return bool(current) and current != {instance_type}


def _pending_config(endpoint: dict) -> str | None:
    return (endpoint.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")


def tags_of(arn: str) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in aws.client("sagemaker").list_tags(ResourceArn=arn).get("Tags", [])}


def created_by(endpoint: dict, run_id: str, stack_tag: str) -> bool:
    """Whether this run (of this stack) created the endpoint."""
    return owned_by(tags_of(endpoint["EndpointArn"]), run_id, stack_tag)


def check_owned(endpoint: dict, stack_tag: str) -> None:
    """An endpoint another stack (or anyone else) created is never updated, adopted or deleted."""
    tags = tags_of(endpoint["EndpointArn"])
    if not owned_by(tags, None, stack_tag) or RUN_ID_TAG not in tags:
        raise ResourceConflict(
            f"endpoint {endpoint['EndpointName']} exists and was not created by this stack (its {STACK_TAG} tag "
            f"is {tags.get(STACK_TAG)!r}); it is left as it is: choose another deployment.endpoint_name"
        )
