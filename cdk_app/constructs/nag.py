"""Acknowledging cdk-nag AwsSolutions findings, each with its reason, as narrowly as possible.

cdk-nag reports every wildcard of a policy as its own finding
(`AwsSolutions-IAM5[Resource::<ArtifactsBucket.Arn>/runs/*]`), so acknowledgments here cover one
finding on one construct, never a whole rule. `PipelineFindings` is an aspect: it looks at each
policy once the tree is complete, acknowledges only the wildcard findings the policy really has,
and fails synthesis for a wildcard that no rule below explains. docs/security.md lists every
reason.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Optional

import jsii
from aws_cdk import Acknowledgment, IAspect, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import IConstruct

PACK = "AwsSolutions"
BUCKET_DEPLOYMENT_PATH = "Custom::CDKBucketDeployment"

# Actions that have no resource-level permissions in IAM, so their statements must use "*".
ACTIONS_WITHOUT_RESOURCES = {
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
    "xray:GetSamplingTargets", "ecr:GetAuthorizationToken", "cloudwatch:PutMetricData",
    "ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission", "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups",
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    # Listing model packages names the group as a filter; the request authorizes no ARN.
    "sagemaker:ListModelPackages",
    # Scalable targets get their ARN when registered; the statements are held to the sagemaker
    # namespace and the variant's instance-count dimension by conditions.
    "application-autoscaling:RegisterScalableTarget", "application-autoscaling:PutScalingPolicy",
    "application-autoscaling:DeregisterScalableTarget", "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DescribeScalingPolicies",
    # The preflight lists the account's SageMaker quotas.
    "servicequotas:ListServiceQuotas",
}

REASON_RESOURCE_STAR = ("Only actions without resource-level permissions use Resource '*' (X-Ray "
                        "tracing, ECR login, CloudWatch metrics limited to the /aws/sagemaker/ namespace, "
                        "Step Functions log delivery, listing the model packages of a group and the service quotas, Application "
                        "Auto Scaling of SageMaker variants (held to the sagemaker namespace and the variant "
                        "dimension by conditions), and network interfaces for jobs in your VPC)")
REASON_RUNS = ("Run artifacts live under runs/{run_id}/ with run ids chosen per execution; access "
               "stays inside the runs/ prefix of the pipeline's own bucket")
REASON_CODE = "Training code versions live under code/{asset hash}/ of the artifacts bucket; read only"
REASON_BUCKET_OBJECTS = ("Data sets and artifacts have keys chosen per run; access is limited to the "
                         "objects of the pipeline's own buckets")
REASON_JOBS = ("Job names are {run_id}-prep, -train, -eval and -chk, derived from the execution name at run "
               "time; the suffix limits access to this workflow's jobs, creating them requires the run's tags and "
               "this stack's fine-tune:stack tag, and stopping them a job this stack tagged")
REASON_SERVING = ("Model and endpoint-config names are {run_id}-model and {run_id}-cfg, derived at run "
                  "time; creating them requires this stack's fine-tune:stack tag, deleting them a resource this "
                  "stack tagged")
REASON_ENDPOINT = ("The endpoint name comes from the execution input; creating an endpoint requires this "
                   "stack's fine-tune:stack tag, and updating, invoking or deleting one an endpoint this stack "
                   "tagged")
REASON_PACKAGES = ("Model package versions of this stack's own model package group; SageMaker numbers "
                   "the versions")
REASON_SAGEMAKER_LOGS = "SageMaker names its job and endpoint log groups itself, under /aws/sagemaker/"
REASON_ALARMS = ("The endpoint alarms are named <endpoint>-invocation-5xx-errors and <endpoint>-model-latency "
                 "after the endpoint, which the execution input names")
REASON_TARGET_TRACKING_ALARMS = ("Target tracking policies create and delete their own alarms, named "
                                 "TargetTracking-endpoint/<endpoint>/variant/AllTraffic-..., as the caller")
REASON_EXECUTIONS = ("Cleanup reads the history of the executions of this stack's own state machine, whose "
                     "names are chosen per run")
REASON_FUNCTION_VERSIONS = ("Step Functions may invoke any version of the workflow's own functions "
                            "(statement generated by the CDK Lambda task)")
REASON_BUCKET_DEPLOYMENT = ("CDK's BucketDeployment provider copies the training code asset into the "
                            "artifacts bucket; its role, policy and runtime are generated by the CDK")
REASON_RUNTIME = ("Python 3.13 is the newest runtime the public Powertools for AWS Lambda layer used "
                  "by the handlers is built for")

# (pattern of a Resource finding, reason); first match wins.
RESOURCE_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^/runs/\*$"), REASON_RUNS),
    (re.compile(r"^/code/\*$"), REASON_CODE),
    (re.compile(r"^/\*$"), REASON_BUCKET_OBJECTS),
]
ARN_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r":sagemaker:.*:(processing-job/\*-(prep|eval|chk)|training-job/\*-train)$"), REASON_JOBS),
    (re.compile(r":sagemaker:.*:(model/\*-model|endpoint-config/\*-cfg)$"), REASON_SERVING),
    (re.compile(r":sagemaker:.*:endpoint/\*$"), REASON_ENDPOINT),
    (re.compile(r":sagemaker:.*:model-package/[a-z0-9-]+/\*$"), REASON_PACKAGES),
    (re.compile(r":logs:.*:log-group:/aws/sagemaker/\*$"), REASON_SAGEMAKER_LOGS),
    (re.compile(r":cloudwatch:.*:alarm:\*-(invocation-5xx-errors|model-latency)$"), REASON_ALARMS),
    (re.compile(r":cloudwatch:.*:alarm:TargetTracking-endpoint/\*$"), REASON_TARGET_TRACKING_ALARMS),
    (re.compile(r":states:.*:execution:<[A-Za-z0-9]+\.Name>:\*$"), REASON_EXECUTIONS),
    (re.compile(r"^<[A-Za-z0-9]+\.Arn>:\*$"), REASON_FUNCTION_VERSIONS),
]


def acknowledge(construct: IConstruct, rule: str, reason: str, findings: Iterable[str] = ()) -> None:
    """Acknowledge `rule` (e.g. `IAM5`) on `construct`, one acknowledgment per finding when given."""
    findings = list(findings)
    ids = [f"{PACK}::{PACK}-{rule}[{finding}]" for finding in findings] or [f"{PACK}::{PACK}-{rule}"]
    Validations.of(construct).acknowledge(*[Acknowledgment(id=rule_id, reason=reason) for rule_id in ids])


@jsii.implements(IAspect)
class PipelineFindings:
    """Acknowledges the explained wildcard findings of the pipeline's IAM policies.

    Added to the stack (the CDK places the BucketDeployment provider at the stack's root), it only
    touches constructs under `pipeline_path` and the provider; the rest of the stack is left alone.
    """

    def __init__(self, pipeline_path: str) -> None:
        self.pipeline_prefix = pipeline_path.rstrip("/") + "/"

    def visit(self, node: IConstruct) -> None:
        in_bucket_deployment = BUCKET_DEPLOYMENT_PATH in node.node.path
        if not (in_bucket_deployment or node.node.path.startswith(self.pipeline_prefix)):
            return
        if isinstance(node, iam.CfnPolicy):
            document = Stack.of(node).resolve(node.policy_document)
            try:
                findings = _wildcard_findings(document, in_bucket_deployment)
            except ValueError as error:
                raise ValueError(f"{node.node.path}: {error}") from None
            for finding, reason in findings:
                acknowledge(node, "IAM5", reason, [finding])
        elif in_bucket_deployment and isinstance(node, iam.CfnRole):
            for arn in Stack.of(node).resolve(node.managed_policy_arns) or []:
                acknowledge(node, "IAM4", REASON_BUCKET_DEPLOYMENT, ["Policy::" + _render(arn)])
        elif in_bucket_deployment and isinstance(node, lambda_.CfnFunction):
            acknowledge(node, "L1", REASON_BUCKET_DEPLOYMENT)


def acknowledge_runtime(function: lambda_.Function) -> None:
    """The handlers' runtime is pinned to the Powertools layer's runtime, not the newest one."""
    acknowledge(function.node.default_child, "L1", REASON_RUNTIME)


def _wildcard_findings(document: dict[str, Any], in_bucket_deployment: bool) -> list[tuple[str, str]]:
    found: dict[str, str] = {}
    for statement in document.get("Statement", []):
        actions = _as_list(statement.get("Action"))
        for action in actions:
            if "*" in action:
                if not in_bucket_deployment:
                    raise ValueError(f"policy action {action!r} has a wildcard that no rule explains")
                found[f"Action::{action}"] = REASON_BUCKET_DEPLOYMENT
        for resource in _as_list(statement.get("Resource")):
            text = _render(resource)
            if "*" not in text:
                continue
            reason = _resource_reason(text, actions, in_bucket_deployment)
            found[f"Resource::{text}"] = reason
    return sorted(found.items())


def _resource_reason(text: str, actions: list[str], in_bucket_deployment: bool) -> str:
    if in_bucket_deployment:
        return REASON_BUCKET_DEPLOYMENT
    if text == "*":
        unexplained = sorted(set(actions) - ACTIONS_WITHOUT_RESOURCES)
        if unexplained:
            raise ValueError(f"actions {unexplained} on Resource '*' have resource-level permissions; scope them")
        return REASON_RESOURCE_STAR
    bucket = re.match(r"^(<[A-Za-z0-9]+\.Arn>|arn:<AWS::Partition>:s3:::[a-z0-9.-]+)(/.*)$", text)
    if bucket:
        for pattern, reason in RESOURCE_RULES:
            if pattern.match(bucket.group(2)):
                return reason
    for pattern, reason in ARN_RULES:
        if pattern.search(text):
            return reason
    raise ValueError(f"policy resource {text!r} has a wildcard that no rule explains")


def _as_list(value: Optional[Any]) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _render(value: Any) -> str:
    """A resolved CloudFormation value as cdk-nag prints it (`<Logical.Arn>`, `<AWS::Region>`)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(_render(part) for part in parts)
        if "Fn::GetAtt" in value:
            return "<" + ".".join(value["Fn::GetAtt"]) + ">"
        if "Ref" in value:
            return "<" + value["Ref"] + ">"
        if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
            return re.sub(r"\$\{([^}]+)\}", r"<\1>", value["Fn::Sub"])
        if "Fn::FindInMap" in value:
            return "<" + ".".join(_render(part) for part in value["Fn::FindInMap"]) + ">"
    raise ValueError(f"cannot render {value!r} as a cdk-nag finding")
