"""The CloudWatch alarms that watch an endpoint, and that blue/green updates roll back on.

Each endpoint gets two alarms: invocation 5xx errors (a model that crashes on requests) and model
latency (a model that answers far slower than the one it replaces). Deploy creates them before the
first update that names them in `AutoRollbackConfiguration`, so a new fleet that trips either during
the update's baking time is rolled back and the old one keeps serving.
"""

from __future__ import annotations

from common import aws
from common.serving import VARIANT_NAME

NAMESPACE = "AWS/SageMaker"
ALARM_SUFFIXES = {"errors": "-invocation-5xx-errors", "latency": "-model-latency"}


def alarm_names(endpoint_name: str) -> list[str]:
    return [endpoint_name + suffix for suffix in ALARM_SUFFIXES.values()]


def alarm_requests(endpoint_name: str, settings: dict, tags: list[dict]) -> list[dict]:
    """PutMetricAlarm requests for one endpoint's alarms (`deployment.alarms` of the input)."""
    dimensions = [{"Name": "EndpointName", "Value": endpoint_name}, {"Name": "VariantName", "Value": VARIANT_NAME}]
    periods = settings["evaluation_minutes"]
    common = {
        "Namespace": NAMESPACE,
        "Dimensions": dimensions,
        "Period": 60,
        "EvaluationPeriods": periods,
        "DatapointsToAlarm": periods,
        "TreatMissingData": "notBreaching",
        "ActionsEnabled": False,
        "Tags": tags,
    }
    return [
        {
            "AlarmName": endpoint_name + ALARM_SUFFIXES["errors"],
            "AlarmDescription": (
                f"{endpoint_name}: invocations answered with a 5xx error (rolls back blue/green updates)"
            ),
            "MetricName": "Invocation5XXErrors",
            "Statistic": "Sum",
            "Threshold": float(settings["max_5xx_errors_per_minute"]),
            "ComparisonOperator": "GreaterThanThreshold",
            **common,
        },
        {
            "AlarmName": endpoint_name + ALARM_SUFFIXES["latency"],
            "AlarmDescription": f"{endpoint_name}: p90 model latency above {settings['max_model_latency_ms']} ms "
            "(rolls back blue/green updates)",
            "MetricName": "ModelLatency",
            "ExtendedStatistic": "p90",
            "Threshold": float(settings["max_model_latency_ms"]) * 1000.0,  # ModelLatency is in microseconds
            "ComparisonOperator": "GreaterThanThreshold",
            **common,
        },
    ]


def ensure_alarms(endpoint_name: str, settings: dict, tags: list[dict]) -> list[str]:
    """Create or refresh the endpoint's alarms; returns their names ([] when alarms are off)."""
    if not settings.get("enabled", True):
        return []
    cloudwatch = aws.client("cloudwatch")
    for request in alarm_requests(endpoint_name, settings, tags):
        cloudwatch.put_metric_alarm(**request)
    return alarm_names(endpoint_name)


def delete_alarms(endpoint_name: str) -> list[str]:
    """Remove the endpoint's alarms; returns the names that existed."""
    cloudwatch = aws.client("cloudwatch")
    existing = [
        alarm["AlarmName"]
        for alarm in cloudwatch.describe_alarms(AlarmNames=alarm_names(endpoint_name))["MetricAlarms"]
    ]
    if existing:
        cloudwatch.delete_alarms(AlarmNames=existing)
    return existing
