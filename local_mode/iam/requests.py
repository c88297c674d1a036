"""Which authorizations AWS performs for one API request.

The request itself (`CreateTrainingJob` -> `sagemaker:CreateTrainingJob` on the job's ARN), every
resource an operation names (`CreateEndpoint` and `UpdateEndpoint` authorize the endpoint and the
endpoint config), and what AWS checks on the caller's behalf:

- `iam:PassRole` for a role passed in `RoleArn` / `ExecutionRoleArn`, with `iam:PassedToService`;
- `sagemaker:AddTags` on the resource a `Create*` request tags;
- KMS for SSE-KMS objects (`kms:GenerateDataKey` to write, `kms:Decrypt` to read, through S3), for
  publishing to an encrypted topic (through SNS) and for reading a secret under a customer key.

Action names, resource types and ARN formats come from the Service Authorization Reference
(`catalog`). An operation this module cannot map raises `UnmodeledRequest`: local mode never lets a
request through that it did not check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from local_mode.iam import catalog


class UnmodeledRequest(RuntimeError):
    """Local mode does not know how AWS authorizes this request."""


@dataclass(frozen=True)
class Authorization:
    action: str
    resource: str
    context: dict[str, Any] = field(default_factory=dict)
    why: str = "request"  # what asked for it: the request itself, or an implicit check


class AccountView(Protocol):
    """What the mapping needs to know about the emulated account's resources."""

    account: str
    region: str
    partition: str

    def sagemaker_tags(self, resource_type: str, name: str) -> dict[str, str] | None: ...

    def bucket_kms_key(self, bucket: str) -> str | None: ...

    def object_kms_key(self, bucket: str, key: str) -> str | None: ...

    def topic_kms_key(self, topic_arn: str) -> str | None: ...

    def secret_kms_key(self, secret_id: str) -> str | None: ...

    def secret_arn(self, secret_id: str) -> str: ...

    def key_arn(self, key_id: str) -> str: ...

    def function_arn(self, name_or_arn: str) -> str: ...

    def next_model_package_version(self, group: str) -> int: ...


# Requests that need no authorization.
UNAUTHORIZED = {("sts", "GetCallerIdentity")}
# boto3 service name -> IAM service prefix, where they differ.
PREFIXES = {
    "sagemaker-runtime": "sagemaker",
    "stepfunctions": "states",
    "application-autoscaling": "application-autoscaling",
    "service-quotas": "servicequotas",
    "lambda": "lambda",
}
PASS_ROLE_PARAMETERS = ("RoleArn", "ExecutionRoleArn")
SERVICE_PRINCIPALS = {
    "sagemaker": "sagemaker.amazonaws.com",
    "states": "states.amazonaws.com",
    "lambda": "lambda.amazonaws.com",
    "events": "events.amazonaws.com",
}


def authorizations(
    service: str, operation: str, params: dict[str, Any], view: AccountView, secure_transport: bool = True
) -> list[Authorization]:
    """Every authorization AWS performs for `operation` of `service` with `params`."""
    if (service, operation) in UNAUTHORIZED:
        return []
    handler = _HANDLERS.get(service)
    if handler is None:
        raise UnmodeledRequest(f"{service}.{operation}: local mode does not evaluate IAM for {service} requests")
    checks = handler(operation, params, view)
    for check in checks:
        check.context.setdefault("aws:SecureTransport", secure_transport)
    return checks


# ---- S3 -----------------------------------------------------------------------------------------

_S3_OBJECT_ACTIONS = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "DeleteObject": "s3:DeleteObject",
    "GetObjectTagging": "s3:GetObjectTagging",
}
_S3_BUCKET_ACTIONS = {
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "GetBucketLocation": "s3:GetBucketLocation",
    "ListObjectVersions": "s3:ListBucketVersions",
}
_S3_WRITES = {"PutObject", "CreateMultipartUpload", "UploadPart", "CopyObject"}


def _s3(operation: str, params: dict, view: AccountView) -> list[Authorization]:
    bucket = params.get("Bucket", "")
    bucket_arn = f"arn:{view.partition}:s3:::{bucket}"
    via_s3 = {"kms:ViaService": f"s3.{view.region}.amazonaws.com", "kms:CallerAccount": view.account}
    if operation == "ListBuckets":
        return [Authorization("s3:ListAllMyBuckets", "*")]
    if operation in _S3_BUCKET_ACTIONS:
        context = {}
        if params.get("Prefix") is not None:
            context["s3:prefix"] = params["Prefix"]
        if params.get("Delimiter") is not None:
            context["s3:delimiter"] = params["Delimiter"]
        return [Authorization(_S3_BUCKET_ACTIONS[operation], bucket_arn, context)]
    if operation == "CopyObject":
        source = params["CopySource"]
        if isinstance(source, dict):
            source_bucket, source_key = source["Bucket"], source["Key"]
        else:
            source_bucket, _, source_key = str(source).lstrip("/").partition("/")
        checks = [Authorization("s3:GetObject", f"arn:{view.partition}:s3:::{source_bucket}/{source_key}")]
        source_kms = view.object_kms_key(source_bucket, source_key)
        if source_kms:
            checks.append(Authorization("kms:Decrypt", source_kms, dict(via_s3), "SSE-KMS of the source object"))
        checks.append(Authorization("s3:PutObject", f"{bucket_arn}/{params['Key']}"))
        target_kms = _write_key(params, bucket, view)
        if target_kms:
            checks.append(Authorization("kms:GenerateDataKey", target_kms, dict(via_s3), "SSE-KMS of the new object"))
        return checks
    action = _S3_OBJECT_ACTIONS.get(operation)
    if action is None:
        raise UnmodeledRequest(f"s3.{operation}: local mode does not map this S3 operation to IAM actions")
    key = params.get("Key", "")
    checks = [Authorization(action, f"{bucket_arn}/{key}")]
    if operation in _S3_WRITES or operation == "CreateMultipartUpload":
        kms_key = _write_key(params, bucket, view)
        if kms_key:
            checks.append(Authorization("kms:GenerateDataKey", kms_key, dict(via_s3), "SSE-KMS of the object"))
            if operation == "UploadPart":
                checks.append(Authorization("kms:Decrypt", kms_key, dict(via_s3), "multipart upload under SSE-KMS"))
    elif operation == "GetObject":  # HeadObject reads metadata only: no decryption
        kms_key = view.object_kms_key(bucket, key)
        if kms_key:
            checks.append(Authorization("kms:Decrypt", kms_key, dict(via_s3), "SSE-KMS of the object"))
    return checks


def _write_key(params: dict, bucket: str, view: AccountView) -> str | None:
    """The KMS key a write is encrypted with: the request's, else the bucket's default."""
    if params.get("ServerSideEncryption") == "aws:kms" or params.get("SSEKMSKeyId"):
        return view.key_arn(params["SSEKMSKeyId"]) if params.get("SSEKMSKeyId") else view.bucket_kms_key(bucket)
    if params.get("ServerSideEncryption") in ("AES256",):
        return None
    return view.bucket_kms_key(bucket)


# ---- SageMaker ----------------------------------------------------------------------------------

# Parameters that name a resource by ARN rather than by name.
_ARN_PARAMETERS = ("ModelPackageName", "ModelPackageArn", "ResourceArn")


def _tags_context(tags: list[dict] | None) -> dict[str, Any]:
    if not tags:
        return {}
    context: dict[str, Any] = {f"aws:RequestTag/{tag['Key']}": tag["Value"] for tag in tags}
    context["aws:TagKeys"] = [tag["Key"] for tag in tags]
    return context


def _resource_context(view: AccountView, resource_type: str, name: str) -> dict[str, Any]:
    tags = view.sagemaker_tags(resource_type, name) or {}
    context: dict[str, Any] = {}
    for key, value in tags.items():
        context[f"aws:ResourceTag/{key}"] = value
        context[f"sagemaker:ResourceTag/{key}"] = value
    return context


def _sagemaker_resources(entry: catalog.Action, params: dict, view: AccountView) -> list[tuple[str, str, str]]:
    """(ARN, resource type, name) for every resource type of the action the request identifies."""
    generic = {"Partition": view.partition, "Region": view.region, "Account": view.account}
    found = []
    for parameter in _ARN_PARAMETERS:
        value = params.get(parameter)
        if isinstance(value, str) and value.startswith("arn:"):
            resource = catalog.resource_type_of(entry, value)
            if resource is not None:
                found.append((value, resource.name, value.split("/", 1)[-1]))
    if found:
        return found
    for resource in entry.resource_types:
        values = {name: params[name] for name in resource.placeholders if isinstance(params.get(name), str)}
        if len(values) != len(resource.placeholders) or not values:
            if resource.required:
                raise UnmodeledRequest(
                    f"{entry.full_name}: the request does not name its {resource.name} "
                    f"({', '.join(resource.placeholders)}); local mode cannot tell which resource AWS authorizes"
                )
            continue
        arn = catalog.build_arn(resource.arn_format, {**generic, **values})
        found.append((arn, resource.name, "/".join(values.values())))
    return found


def _sagemaker(operation: str, params: dict, view: AccountView) -> list[Authorization]:
    entry = catalog.action(f"sagemaker:{operation}")
    if operation == "CreateModelPackage" and params.get("ModelPackageGroupName"):
        # The new version's ARN: model-package/<group, lower case>/<next version>.
        group = params["ModelPackageGroupName"]
        params = {**params, "ModelPackageName": f"{group.lower()}/{view.next_model_package_version(group)}"}
    resources = _sagemaker_resources(entry, params, view)
    tag_context = _tags_context(params.get("Tags"))
    checks = []
    if not resources:
        checks.append(Authorization(entry.full_name, "*", dict(tag_context)))
    creating = operation.startswith("Create")
    for arn, resource_type, name in resources:
        context = dict(tag_context)
        if not creating:
            context.update(_resource_context(view, resource_type, name))
        checks.append(Authorization(entry.full_name, arn, context))
    checks += _pass_role(params, "sagemaker")
    if creating and params.get("Tags"):
        created = _created_resource(operation, resources)
        if created is not None:
            checks.append(Authorization("sagemaker:AddTags", created, dict(tag_context), "Tags on the new resource"))
    return checks


def _created_resource(operation: str, resources: list[tuple[str, str, str]]) -> str | None:
    """The ARN of the resource a Create* request makes (the type named after the operation)."""
    noun = operation.removeprefix("Create")
    kebab = "".join("-" + char.lower() if char.isupper() else char for char in noun).lstrip("-")
    return next((arn for arn, resource_type, _ in resources if resource_type == kebab), None)


def _pass_role(params: dict, service: str) -> list[Authorization]:
    checks = []
    for parameter in PASS_ROLE_PARAMETERS:
        role = params.get(parameter)
        if isinstance(role, str) and role:
            checks.append(
                Authorization(
                    "iam:PassRole",
                    role,
                    {"iam:PassedToService": SERVICE_PRINCIPALS[service]},
                    f"{parameter} passed to {service}",
                )
            )
    return checks


def _sagemaker_runtime(operation: str, params: dict, view: AccountView) -> list[Authorization]:
    if operation not in ("InvokeEndpoint", "InvokeEndpointAsync", "InvokeEndpointWithResponseStream"):
        raise UnmodeledRequest(f"sagemaker-runtime.{operation}: not mapped")
    name = params["EndpointName"]
    arn = f"arn:{view.partition}:sagemaker:{view.region}:{view.account}:endpoint/{name}"
    return [Authorization("sagemaker:InvokeEndpoint", arn, _resource_context(view, "endpoint", name))]


# ---- SNS, KMS, Lambda, Secrets Manager ----------------------------------------------------------


def _sns(operation: str, params: dict, view: AccountView) -> list[Authorization]:
    if operation != "Publish":
        raise UnmodeledRequest(f"sns.{operation}: not mapped")
    topic = params.get("TopicArn") or params.get("TargetArn")
    checks = [Authorization("sns:Publish", topic)]
    key = view.topic_kms_key(topic)
    if key:
        via = {"kms:ViaService": f"sns.{view.region}.amazonaws.com", "kms:CallerAccount": view.account}
        checks.append(Authorization("kms:GenerateDataKey", key, dict(via), "encrypted topic"))
        checks.append(Authorization("kms:Decrypt", key, dict(via), "encrypted topic"))
    return checks


def _kms(operation: str, params: dict, view: AccountView) -> list[Authorization]:
    catalog.action(f"kms:{operation}")
    return [Authorization(f"kms:{operation}", view.key_arn(params["KeyId"]), {"kms:CallerAccount": view.account})]


def _lambda(operation: str, params: dict, view: AccountView) -> list[Authorization]:
    if operation != "Invoke":
        raise UnmodeledRequest(f"lambda.{operation}: not mapped")
    return [Authorization("lambda:InvokeFunction", view.function_arn(params["FunctionName"]))]


def _secretsmanager(operation: str, params: dict, view: AccountView) -> list[Authorization]:
    if operation not in ("GetSecretValue", "DescribeSecret"):
        raise UnmodeledRequest(f"secretsmanager.{operation}: not mapped")
    secret = params["SecretId"]
    checks = [Authorization(f"secretsmanager:{operation}", view.secret_arn(secret))]
    key = view.secret_kms_key(secret) if operation == "GetSecretValue" else None
    if key:
        checks.append(
            Authorization(
                "kms:Decrypt",
                key,
                {"kms:ViaService": f"secretsmanager.{view.region}.amazonaws.com", "kms:CallerAccount": view.account},
                "secret under a customer key",
            )
        )
    return checks


# ---- CloudWatch alarms and Application Auto Scaling --------------------------------------------


def _alarm_arn(view: AccountView, name: str) -> str:
    return f"arn:{view.partition}:cloudwatch:{view.region}:{view.account}:alarm:{name}"


def _cloudwatch(operation: str, params: dict, view: AccountView) -> list[Authorization]:
    if operation == "PutMetricAlarm":
        arn = _alarm_arn(view, params["AlarmName"])
        context = _tags_context(params.get("Tags"))
        checks = [Authorization("cloudwatch:PutMetricAlarm", arn, dict(context))]
        if params.get("Tags"):
            checks.append(Authorization("cloudwatch:TagResource", arn, dict(context), "Tags on the new alarm"))
        return checks
    if operation in ("DescribeAlarms", "DeleteAlarms"):
        names = params.get("AlarmNames") or []
        if not names:
            return [Authorization(f"cloudwatch:{operation}", "*")]
        return [Authorization(f"cloudwatch:{operation}", _alarm_arn(view, name)) for name in names]
    if operation == "PutMetricData":
        return [Authorization("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": params.get("Namespace")})]
    raise UnmodeledRequest(f"cloudwatch.{operation}: not mapped")


# Application Auto Scaling checks these for the caller (Service Authorization Reference and the
# service's "permissions required for API actions"): SageMaker's own calls when a variant is
# registered, its service-linked role, and the alarms a target-tracking policy manages.
AUTOSCALING_SERVICE_ROLE = (
    "aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)


def _autoscaling(operation: str, params: dict, view: AccountView) -> list[Authorization]:
    if operation in ("DescribeScalableTargets", "DescribeScalingPolicies", "DescribeScalingActivities"):
        return [Authorization(f"application-autoscaling:{operation}", "*")]
    if operation not in (
        "RegisterScalableTarget",
        "PutScalingPolicy",
        "DeregisterScalableTarget",
        "DeleteScalingPolicy",
    ):
        raise UnmodeledRequest(f"application-autoscaling.{operation}: not mapped")
    namespace, resource_id = params.get("ServiceNamespace", ""), params.get("ResourceId", "")
    context = {
        "application-autoscaling:service-namespace": namespace,
        "application-autoscaling:scalable-dimension": params.get("ScalableDimension", ""),
        **_tags_context(params.get("Tags")),
    }
    # A scalable target's ARN is made when it is registered, so the request authorizes "*".
    checks = [Authorization(f"application-autoscaling:{operation}", "*", context)]
    alarms = [_alarm_arn(view, f"TargetTracking-{resource_id}-{suffix}") for suffix in ("AlarmHigh", "AlarmLow")]
    if operation == "RegisterScalableTarget" and namespace == "sagemaker":
        endpoint = resource_id.split("/")[1] if resource_id.startswith("endpoint/") else ""
        endpoint_arn = f"arn:{view.partition}:sagemaker:{view.region}:{view.account}:endpoint/{endpoint}"
        checks.append(Authorization("sagemaker:DescribeEndpoint", endpoint_arn, {}, "registering a variant"))
        checks.append(
            Authorization(
                "sagemaker:UpdateEndpointWeightsAndCapacities",
                endpoint_arn,
                _resource_context(view, "endpoint", endpoint),
                "registering a variant",
            )
        )
        checks.append(
            Authorization(
                "iam:CreateServiceLinkedRole",
                f"arn:{view.partition}:iam::{view.account}:role/{AUTOSCALING_SERVICE_ROLE}",
                {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"},
                "Application Auto Scaling's service-linked role",
            )
        )
    elif operation == "PutScalingPolicy" and params.get("PolicyType") == "TargetTrackingScaling":
        checks += [
            Authorization(action, arn, {}, "alarms of the target-tracking policy")
            for arn in alarms
            for action in ("cloudwatch:DescribeAlarms", "cloudwatch:PutMetricAlarm")
        ]
    elif operation in ("DeregisterScalableTarget", "DeleteScalingPolicy"):
        checks += [
            Authorization(action, arn, {}, "alarms of the target-tracking policy")
            for arn in alarms
            for action in ("cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms")
        ]
    return checks


def _states(operation: str, params: dict, view: AccountView) -> list[Authorization]:
    if operation in ("GetExecutionHistory", "DescribeExecution", "StopExecution", "RedriveExecution"):
        return [Authorization(f"states:{operation}", params["executionArn"])]
    if operation in ("StartExecution", "ListExecutions", "DescribeStateMachine"):
        return [Authorization(f"states:{operation}", params["stateMachineArn"])]
    raise UnmodeledRequest(f"stepfunctions.{operation}: not mapped")


def _service_quotas(operation: str, params: dict, view: AccountView) -> list[Authorization]:
    if operation in ("ListServiceQuotas", "GetServiceQuota", "ListAWSDefaultServiceQuotas"):
        return [Authorization(f"servicequotas:{operation}", "*", {"servicequotas:service": params.get("ServiceCode")})]
    raise UnmodeledRequest(f"service-quotas.{operation}: not mapped")


def _iam(operation: str, params: dict, view: AccountView) -> list[Authorization]:
    if operation == "SimulatePrincipalPolicy":
        return [Authorization("iam:SimulatePrincipalPolicy", params["PolicySourceArn"])]
    raise UnmodeledRequest(f"iam.{operation}: not mapped")


_HANDLERS: dict[str, Callable[[str, dict, AccountView], list[Authorization]]] = {
    "s3": _s3,
    "sagemaker": _sagemaker,
    "sagemaker-runtime": _sagemaker_runtime,
    "sns": _sns,
    "kms": _kms,
    "lambda": _lambda,
    "secretsmanager": _secretsmanager,
    "cloudwatch": _cloudwatch,
    "application-autoscaling": _autoscaling,
    "stepfunctions": _states,
    "service-quotas": _service_quotas,
    "iam": _iam,
}


def register(service: str, handler: Callable[[str, dict, AccountView], list[Authorization]]) -> None:
    """Add the mapping for another service (kept next to the code that needs it)."""
    _HANDLERS[service] = handler
