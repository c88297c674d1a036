"""A job that is not network-isolated reaches the emulated account, as its execution role, and nothing else.

A probe job (a processing job whose code is a small script) calls STS and Secrets Manager with the
credentials the job was given, and tries to reach the internet. The stack grants its SageMaker role no
secret, so IAM denies the read; the same probe with network isolation cannot reach the account at all.
"""

import json
import time
from pathlib import Path

import boto3
import pytest

from tests.e2e.conftest import local_aws

PROBE = r"""
import json, os, socket, sys
import boto3
from botocore.exceptions import ClientError, EndpointConnectionError, ConnectTimeoutError
result = {"endpoint": os.environ.get("AWS_ENDPOINT_URL")}
try:
    result["caller"] = boto3.client("sts").get_caller_identity()["Account"]
    try:
        boto3.client("secretsmanager").get_secret_value(SecretId=sys.argv[1])
        result["secret"] = "read"
    except ClientError as error:
        result["secret"] = error.response["Error"]["Code"] + ": " + error.response["Error"]["Message"]
except (EndpointConnectionError, ConnectTimeoutError, ValueError) as error:
    result["caller"] = "unreachable: " + type(error).__name__
try:
    socket.create_connection(("1.1.1.1", 443), timeout=3)
    result["internet"] = "reached"
except OSError as error:
    result["internet"] = "refused: " + str(error)
print("PROBE " + json.dumps(result), flush=True)
"""


def probe_job(aws, name, isolated, secret_arn, code_uri):
    role = aws.stack.output("SageMakerRoleArn")
    code_dir = "/opt/ml/processing/input/code"
    aws.sagemaker.create_processing_job(
        ProcessingJobName=name,
        RoleArn=role,
        AppSpecification={
            "ImageUri": aws.stack.functions[next(iter(aws.stack.functions))].environment["TRAINING_IMAGE_URI"],
            "ContainerEntrypoint": ["python3", f"{code_dir}/probe.py", secret_arn],
        },
        ProcessingInputs=[
            {
                "InputName": "code",
                "S3Input": {"S3Uri": code_uri, "LocalPath": code_dir, "S3DataType": "S3Prefix", "S3InputMode": "File"},
            }
        ],
        ProcessingResources={
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 1}
        },
        StoppingCondition={"MaxRuntimeInSeconds": 300},
        NetworkConfig={"EnableNetworkIsolation": isolated},
        Tags=[{"Key": "fine-tune:run-id", "Value": name}],
    )
    deadline = time.monotonic() + 300
    while aws.sagemaker.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"] in (
        "InProgress",
        "Stopping",
    ):
        assert time.monotonic() < deadline, f"{name} did not finish"
        time.sleep(0.5)
    job = next(job for job in aws.jobs.summaries() if job["name"] == name)
    log = (Path(job["folder"]) / "job.log").read_text()
    line = next(line for line in log.splitlines() if "PROBE " in line)
    return json.loads(line.split("PROBE ", 1)[1])


@pytest.fixture(scope="module")
def account(stack_template, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gateway")
    with local_aws(workdir, stack_template) as aws:
        probe = workdir / "probe.py"
        probe.write_text(PROBE)
        aws.upload_file(probe, f"s3://{aws.data_bucket}/probe/probe.py")
        yield aws


def test_a_job_calls_aws_as_its_role_and_reaches_nothing_else(account):
    secret = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="hub-token", SecretString="hf_local"
    )["ARN"]
    result = probe_job(account, "gateway-open", False, secret, f"s3://{account.data_bucket}/probe/")
    assert result["endpoint"].startswith("http://10.0.0.254:")
    assert result["caller"] == account.stack.account
    # The stack's SageMaker role reads no secret unless one is configured: IAM says no, as AWS would.
    assert result["secret"].startswith("AccessDeniedException: User: arn:aws:sts::")
    assert "SageMakerRole" in result["secret"] and "secretsmanager:GetSecretValue" in result["secret"]
    assert result["internet"].startswith("refused")
    denials = account.iam.summary()["denials"]
    assert [(d["action"], d["resource"]) for d in denials] == [("secretsmanager:GetSecretValue", secret)]


def test_an_isolated_job_cannot_reach_the_account(account):
    result = probe_job(account, "gateway-isolated", True, "hub-token", f"s3://{account.data_bucket}/probe/")
    assert result["endpoint"] is None or not result["endpoint"].startswith("http://10.0.0.254")
    assert result["caller"].startswith("unreachable") or result["caller"] != account.stack.account
    assert result["internet"].startswith("refused")
