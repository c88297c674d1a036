"""Endpoints served by a local TGI-compatible server, with SageMaker's lifecycles."""

import json
import time
import urllib.request

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local_mode import moto_patches
from local_mode.endpoints import EndpointEmulator, EndpointSettings
from local_mode.engines.tgi import Limits, RequestError, check_limits, cut_at_stop, parse_request
from local_mode.jobs import JobRunner
from local_mode.models import prepare_model
from local_mode.s3_transfer import upload_folder

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/sm"


def test_request_parsing_and_limits_follow_tgi():
    assert parse_request({"inputs": "hi", "parameters": {"max_new_tokens": 5}}) == ("hi", {"max_new_tokens": 5})
    with pytest.raises(RequestError, match="missing field `inputs`"):
        parse_request({"prompt": "hi"})
    with pytest.raises(RequestError, match="max_new_tokens"):
        parse_request({"inputs": "hi", "parameters": {"max_new_tokens": 0}})
    with pytest.raises(RequestError, match="unknown parameter"):
        parse_request({"inputs": "hi", "parameters": {"beams": 3}})
    with pytest.raises(RequestError, match="must be <= 10"):
        check_limits(8, 5, Limits(max_input_tokens=None, max_total_tokens=10))
    assert cut_at_stop("SELECT 1; more", [";"]) == "SELECT 1;"


def wait_status(sagemaker, name, statuses):
    for _ in range(600):
        endpoint = sagemaker.describe_endpoint(EndpointName=name)
        if endpoint["EndpointStatus"] in statuses:
            return endpoint
        time.sleep(0.2)
    raise AssertionError(endpoint)


def create_config(sagemaker, name, timeout=600):
    sagemaker.create_model(
        ModelName=f"{name}-model",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": "tgi",
            "Environment": {"HF_MODEL_ID": "/opt/ml/model", "MAX_INPUT_TOKENS": "256", "MAX_TOTAL_TOKENS": "300"},
            "ModelDataSource": {
                "S3DataSource": {"S3Uri": "s3://bkt/model/", "S3DataType": "S3Prefix", "CompressionType": "None"}
            },
        },
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"{name}-cfg",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{name}-model",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.g5.2xlarge",
                "ContainerStartupHealthCheckTimeoutInSeconds": timeout,
            }
        ],
    )


def test_endpoint_lifecycle_invoke_update_rollback_and_failure(tmp_path):
    model_dir = prepare_model("tiny", tmp_path / "cache")
    settings = EndpointSettings(health_check_timeout_cap=None)
    emulator = EndpointEmulator(tmp_path, settings=settings)
    with mock_aws(), moto_patches.installed(object(), JobRunner(tmp_path), emulator):
        try:
            s3 = boto3.client("s3", region_name=REGION)
            s3.create_bucket(Bucket="bkt")
            upload_folder(s3, model_dir, "s3://bkt/model/")
            sagemaker = boto3.client("sagemaker", region_name=REGION)
            runtime = boto3.client("sagemaker-runtime", region_name=REGION)
            create_config(sagemaker, "a")
            sagemaker.create_endpoint(EndpointName="ep", EndpointConfigName="a-cfg")
            assert sagemaker.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "Creating"
            with pytest.raises(ClientError, match="Cannot create already existing endpoint"):
                sagemaker.create_endpoint(EndpointName="ep", EndpointConfigName="a-cfg")
            assert wait_status(sagemaker, "ep", ("InService", "Failed"))["EndpointStatus"] == "InService"

            request = {"inputs": "SELECT name FROM", "parameters": {"max_new_tokens": 8, "do_sample": False}}
            answer = json.loads(
                runtime.invoke_endpoint(EndpointName="ep", ContentType="application/json", Body=json.dumps(request))[
                    "Body"
                ].read()
            )
            assert isinstance(answer, list) and isinstance(answer[0]["generated_text"], str)
            http = urllib.request.Request(
                f"{emulator.url('ep')}/invocations",
                data=json.dumps(request).encode(),
                headers={"Content-Type": "application/json"},
            )
            assert json.loads(urllib.request.urlopen(http).read()) == answer  # greedy: the same answer
            with pytest.raises(ClientError) as error:
                runtime.invoke_endpoint(
                    EndpointName="ep",
                    ContentType="application/json",
                    Body=json.dumps({"inputs": "x", "parameters": {"max_new_tokens": 500}}),
                )
            assert error.value.response["Error"]["Code"] == "ModelError"
            assert "must be <= 300" in str(error.value)
            with pytest.raises(ClientError, match="Endpoint nope of account"):
                runtime.invoke_endpoint(EndpointName="nope", Body=b"{}")

            # A blue/green update whose new server never becomes healthy rolls back.
            create_config(sagemaker, "b", timeout=60)
            settings.never_healthy = True
            settings.health_check_timeout_cap = 3  # the API allows no less than 60 s
            old_url = emulator.url("ep")
            sagemaker.update_endpoint(EndpointName="ep", EndpointConfigName="b-cfg")
            assert sagemaker.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "Updating"
            emulator.wait_idle()
            endpoint = sagemaker.describe_endpoint(EndpointName="ep")
            assert endpoint["EndpointStatus"] == "InService" and endpoint["EndpointConfigName"] == "a-cfg"
            assert "did not pass the ping health check" in endpoint["FailureReason"]
            assert emulator.url("ep") == old_url
            runtime.invoke_endpoint(EndpointName="ep", ContentType="application/json", Body=json.dumps(request))

            # A new endpoint that never becomes healthy fails after the config's start-up timeout.
            sagemaker.create_endpoint(EndpointName="ep2", EndpointConfigName="b-cfg")
            failed = wait_status(sagemaker, "ep2", ("InService", "Failed"))
            assert failed["EndpointStatus"] == "Failed"
            assert "production variant AllTraffic did not pass the ping health check" in failed["FailureReason"]

            sagemaker.delete_endpoint(EndpointName="ep")
            assert emulator.url("ep") is None
            with pytest.raises(ClientError, match="Could not find endpoint"):
                sagemaker.describe_endpoint(EndpointName="ep")
        finally:
            emulator.shutdown()


def test_an_error_of_the_emulation_itself_fails_the_endpoint_instead_of_leaving_it_creating(tmp_path, monkeypatch):
    emulator = EndpointEmulator(tmp_path)

    def broken_launch(backend, endpoint_name, config_name):
        raise OSError("no free port")

    monkeypatch.setattr(emulator, "_launch", broken_launch)
    with mock_aws(), moto_patches.installed(object(), JobRunner(tmp_path), emulator):
        try:
            sagemaker = boto3.client("sagemaker", region_name=REGION)
            create_config(sagemaker, "a")
            sagemaker.create_endpoint(EndpointName="ep", EndpointConfigName="a-cfg")
            failed = wait_status(sagemaker, "ep", ("InService", "Failed"))
            assert failed["EndpointStatus"] == "Failed"
            assert failed["FailureReason"] == (
                "InternalServerError: local mode could not start the server: OSError: no free port"
            )
            [deployment] = emulator.deployments("ep")
            assert deployment["status"] == "Failed" and deployment["seconds"] >= 0
        finally:
            emulator.shutdown()
