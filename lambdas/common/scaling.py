"""Application Auto Scaling of an endpoint's variant: a scalable target and one target-tracking policy.

Registered once the endpoint is InService (`deployment.autoscaling`), kept through blue/green
updates, and removed with the endpoint when a run deletes an endpoint it created. SageMaker refuses
an update that changes the instance type of a variant registered as a scalable target, so Deploy
deregisters first in that case and records what it removed, for Cleanup to restore after a rollback.
"""

from __future__ import annotations

from common import aws
from common.serving import VARIANT_NAME

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRICS = {
    "invocations_per_instance": "SageMakerVariantInvocationsPerInstance",
    "concurrent_requests_per_model": "SageMakerVariantConcurrentRequestsPerModelHighResolution",
}


def resource_id(endpoint_name: str) -> str:
    return f"endpoint/{endpoint_name}/variant/{VARIANT_NAME}"


def policy_name(endpoint_name: str) -> str:
    return f"{endpoint_name}-target-tracking"


def target_request(endpoint_name: str, settings: dict) -> dict:
    return {
        "ServiceNamespace": NAMESPACE,
        "ResourceId": resource_id(endpoint_name),
        "ScalableDimension": DIMENSION,
        "MinCapacity": settings["min_instances"],
        "MaxCapacity": settings["max_instances"],
    }


def policy_request(endpoint_name: str, settings: dict) -> dict:
    return {
        "PolicyName": policy_name(endpoint_name),
        "ServiceNamespace": NAMESPACE,
        "ResourceId": resource_id(endpoint_name),
        "ScalableDimension": DIMENSION,
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": float(settings["target_value"]),
            "PredefinedMetricSpecification": {"PredefinedMetricType": METRICS[settings["metric"]]},
            "ScaleInCooldown": settings["scale_in_cooldown_seconds"],
            "ScaleOutCooldown": settings["scale_out_cooldown_seconds"],
        },
    }


def configure(endpoint_name: str, settings: dict) -> dict:
    """Register the variant and put its policy (both idempotent); returns what was applied."""
    client = aws.client("application-autoscaling")
    target, policy = target_request(endpoint_name, settings), policy_request(endpoint_name, settings)
    client.register_scalable_target(**target)
    client.put_scaling_policy(**policy)
    return {"target": target, "policy": policy}


def registered(endpoint_name: str) -> dict | None:
    """The variant's scalable target and policies, or None when it is not registered."""
    client = aws.client("application-autoscaling")
    targets = client.describe_scalable_targets(
        ServiceNamespace=NAMESPACE, ResourceIds=[resource_id(endpoint_name)], ScalableDimension=DIMENSION
    )["ScalableTargets"]
    if not targets:
        return None
    policies = client.describe_scaling_policies(
        ServiceNamespace=NAMESPACE, ResourceId=resource_id(endpoint_name), ScalableDimension=DIMENSION
    )["ScalingPolicies"]
    target = targets[0]
    return {
        "target": {
            key: target[key]
            for key in ("ServiceNamespace", "ResourceId", "ScalableDimension", "MinCapacity", "MaxCapacity")
        },
        "policies": [
            {
                key: policy[key]
                for key in (
                    "PolicyName",
                    "ServiceNamespace",
                    "ResourceId",
                    "ScalableDimension",
                    "PolicyType",
                    "TargetTrackingScalingPolicyConfiguration",
                )
                if key in policy
            }
            for policy in policies
            if policy.get("PolicyType") == "TargetTrackingScaling"
        ],
    }


def deregister(endpoint_name: str) -> dict | None:
    """Remove the variant's scalable target (its policies go with it); returns what was removed."""
    current = registered(endpoint_name)
    if current is not None:
        aws.client("application-autoscaling").deregister_scalable_target(
            ServiceNamespace=NAMESPACE, ResourceId=resource_id(endpoint_name), ScalableDimension=DIMENSION
        )
    return current


def restore(saved: dict) -> None:
    """Register again what `deregister` removed."""
    client = aws.client("application-autoscaling")
    client.register_scalable_target(**saved["target"])
    for policy in saved.get("policies", []):
        client.put_scaling_policy(**policy)
