"""What AWS services check when they act for a principal, outside any API call the code makes.

- Lambda decrypts a function's environment under a customer key as the function's role; an
  invocation fails when it cannot.
- Lambda sends an asynchronous event whose invocation failed to the function's dead-letter queue
  as the function's role (SendMessage over TLS, and the queue's customer key through SQS).
- The Lambda runtime writes each invocation's logs to the function's log group and, with active
  tracing, sends trace segments, as the function's role.
- CloudWatch Logs uses the KMS key of an encrypted log group, as the logs service principal, with
  the log group's ARN in the encryption context.
- Step Functions sends trace segments for an execution with tracing on, as the state machine's role.
- SageMaker pulls a job's or endpoint's image, reads its S3 inputs, writes its outputs, logs and
  metrics, as the execution role.

A missing permission for logs or traces does not fail an invocation in AWS (the logs are lost), so
those checks are recorded, not raised; a job or endpoint that cannot read its inputs fails.
"""

from __future__ import annotations

from local_mode.iam.requests import AccountView, Authorization, authorizations
from local_mode.s3_transfer import split_s3_uri


def lambda_runtime(view: AccountView, function_name: str, log_group: str | None, tracing: bool) -> list[Authorization]:
    group = log_group or f"/aws/lambda/{function_name}"
    stream = f"{group}:log-stream:local"
    arn = f"arn:{view.partition}:logs:{view.region}:{view.account}:log-group:{stream}"
    checks = [
        Authorization("logs:CreateLogStream", arn, why="Lambda runtime logs"),
        Authorization("logs:PutLogEvents", arn, why="Lambda runtime logs"),
    ]
    if tracing:
        checks += [
            Authorization("xray:PutTraceSegments", "*", why="active tracing"),
            Authorization("xray:PutTelemetryRecords", "*", why="active tracing"),
        ]
    return checks


def lambda_environment(view: AccountView, key_arn: str, function_arn: str) -> Authorization:
    """Lambda decrypting a function's environment variables, through Lambda, for that function."""
    context = {
        "kms:ViaService": f"lambda.{view.region}.amazonaws.com",
        "kms:CallerAccount": view.account,
        "kms:EncryptionContext:aws:lambda:FunctionArn": function_arn,
    }
    return Authorization("kms:Decrypt", key_arn, context, "environment variables under a customer key")


def dead_letter_delivery(view: AccountView, queue_arn: str, key_arn: str | None) -> list[Authorization]:
    """Lambda sending a failed asynchronous event to the function's dead-letter queue."""
    checks = [Authorization("sqs:SendMessage", queue_arn, {"aws:SecureTransport": True}, "dead-letter queue")]
    if key_arn:
        via = {"kms:ViaService": f"sqs.{view.region}.amazonaws.com", "kms:CallerAccount": view.account}
        checks += [
            Authorization(action, key_arn, dict(via), "encrypted dead-letter queue")
            for action in ("kms:GenerateDataKey", "kms:Decrypt")
        ]
    return checks


def log_group_encryption(view: AccountView, log_group: str, key_arn: str) -> list[Authorization]:
    """CloudWatch Logs encrypting a log group's events with its key."""
    group_arn = f"arn:{view.partition}:logs:{view.region}:{view.account}:log-group:{log_group}"
    context = {"kms:EncryptionContext:aws:logs:arn": group_arn, "kms:CallerAccount": view.account}
    return [
        Authorization(action, key_arn, dict(context), f"encrypted log group {log_group}")
        for action in ("kms:GenerateDataKey", "kms:Decrypt")
    ]


def execution_tracing() -> list[Authorization]:
    return [
        Authorization("xray:PutTraceSegments", "*", why="state machine tracing"),
        Authorization("xray:PutTelemetryRecords", "*", why="state machine tracing"),
    ]


def image_pull(view: AccountView, image_uri: str) -> list[Authorization]:
    """ECR: the login token and the image's layers (the repository lives in the image's account)."""
    registry, _, path = image_uri.partition("/")
    account, region = registry.split(".")[0], registry.split(".")[3]
    repository = path.split("@")[0].split(":")[0]
    arn = f"arn:{view.partition}:ecr:{region}:{account}:repository/{repository}"
    return [Authorization("ecr:GetAuthorizationToken", "*", why=f"pull {image_uri}")] + [
        Authorization(action, arn, why=f"pull {image_uri}")
        for action in ("ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage")
    ]


def read_prefix(view: AccountView, uri: str, keys: list[str]) -> list[Authorization]:
    """Listing an S3 prefix and reading each object under it (with KMS for SSE-KMS objects)."""
    bucket, prefix = split_s3_uri(uri)
    checks = authorizations("s3", "ListObjectsV2", {"Bucket": bucket, "Prefix": prefix}, view)
    for key in keys:
        checks += authorizations("s3", "GetObject", {"Bucket": bucket, "Key": key}, view)
    return checks


def write_objects(view: AccountView, bucket: str, keys: list[str], kms_key: str | None = None) -> list[Authorization]:
    """Writing objects, encrypted with `kms_key` when the request names one (else the bucket's default)."""
    checks = []
    for key in keys:
        params = {"Bucket": bucket, "Key": key}
        if kms_key:
            params.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=kms_key)
        checks += authorizations("s3", "PutObject", params, view)
    return checks


def job_logs_and_metrics(view: AccountView, kind: str, job_name: str) -> list[Authorization]:
    """The job's CloudWatch log stream (/aws/sagemaker/<Kind>Jobs) and its metrics namespace."""
    group = f"/aws/sagemaker/{kind}"
    group_arn = f"arn:{view.partition}:logs:{view.region}:{view.account}:log-group:{group}"
    stream_arn = f"{group_arn}:log-stream:{job_name}/algo-1"
    checks = [
        Authorization("logs:CreateLogGroup", group_arn, why="job logs"),
        Authorization("logs:CreateLogStream", stream_arn, why="job logs"),
        Authorization("logs:PutLogEvents", stream_arn, why="job logs"),
    ]
    checks.append(Authorization("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": group}, why="job metrics"))
    return checks


def endpoint_logs(view: AccountView, endpoint_name: str, variant: str) -> list[Authorization]:
    group_arn = (
        f"arn:{view.partition}:logs:{view.region}:{view.account}:log-group:/aws/sagemaker/Endpoints/{endpoint_name}"
    )
    stream_arn = f"{group_arn}:log-stream:{variant}/local"
    return [
        Authorization("logs:CreateLogGroup", group_arn, why="endpoint logs"),
        Authorization("logs:CreateLogStream", stream_arn, why="endpoint logs"),
        Authorization("logs:PutLogEvents", stream_arn, why="endpoint logs"),
    ]


def vpc_interfaces() -> list[Authorization]:
    """The network interfaces SageMaker creates in the job's or endpoint's subnets."""
    return [
        Authorization(action, "*", why="VPC attachment")
        for action in (
            "ec2:CreateNetworkInterface",
            "ec2:CreateNetworkInterfacePermission",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeVpcs",
            "ec2:DescribeDhcpOptions",
            "ec2:DescribeSubnets",
            "ec2:DescribeSecurityGroups",
            "ec2:DeleteNetworkInterface",
        )
    ]
