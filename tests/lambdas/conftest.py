"""Handlers against moto, every request also checked against botocore's service models.

moto 5.2.5 lacks UpdateEndpoint and StopTrainingJob, marks jobs Completed at once, accepts a
job name twice and knows an old list of endpoint instance types (no ml.g5); `AwsWorld` fills
these gaps the way AWS behaves, on moto's own backend, and the service-model validator checks
instance types against botocore's current list instead.
"""

from __future__ import annotations

import copy
import json

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sagemaker.models import FakeEndpointConfig, sagemaker_backends

from local_mode import aws_model_validation

REGION = "us-east-1"
ARTIFACTS = "ft-artifacts-123"
DATA = "ft-data-123"
GROUP = "fine-tuned-models"
EXECUTION = "nightly-2026-11-27T21:00:00Z"
TRAINING_IMAGE = (
    "763104351884.dkr.ecr.us-east-1.amazonaws.com/"
    "huggingface-pytorch-training:2.5.1-transformers4.49.0-gpu-py311-cu124-ubuntu22.04"
)
INFERENCE_IMAGE = (
    "763104351884.dkr.ecr.us-east-1.amazonaws.com/"
    "huggingface-pytorch-tgi-inference:2.6.0-tgi3.2.3-gpu-py311-cu124-ubuntu22.04"
)
STACK_DEFAULTS = {
    "base_model": {"hf_model_id": "Qwen/Qwen2.5-Coder-7B-Instruct"},
    "dataset": {"hf_dataset_id": "b-mc2/sql-create-context", "format": "sql-create-context"},
}


def _ok(parsed: dict):
    return AWSResponse(f"https://api.sagemaker.{REGION}.amazonaws.com", 200, {}, None), parsed


class AwsWorld:
    """Access to moto's SageMaker backend, and the AWS behaviour moto lacks."""

    def __init__(self, session: boto3.session.Session, kms_key_arn: str, topic_arn: str):
        self.session = session
        self.kms_key_arn = kms_key_arn
        self.topic_arn = topic_arn
        self.backend = sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION]
        self.calls: list[tuple[str, dict]] = []
        self.endpoint_updates: list[dict] = []
        self.stopped: list[str] = []
        events = session.events
        events.register("before-parameter-build.sagemaker", self._record, unique_id="test-record")
        events.register("before-call.sagemaker.UpdateEndpoint", self._update_endpoint, unique_id="test-update")
        events.register("before-call.sagemaker.StopTrainingJob", self._stop_training, unique_id="test-stop-t")
        events.register("before-call.sagemaker.StopProcessingJob", self._stop_processing, unique_id="test-stop-p")

    def _record(self, params, model, **_):
        self.calls.append((model.name, copy.deepcopy(params)))

    def calls_to(self, operation: str) -> list[dict]:
        return [body for name, body in self.calls if name == operation]

    def _update_endpoint(self, params, **_):
        body = json.loads(params["body"])
        endpoint = self.backend.endpoints[body["EndpointName"]]
        endpoint.endpoint_status = "Updating"
        self.endpoint_updates.append(body)
        return _ok({"EndpointArn": endpoint.arn})

    def _stop_training(self, params, **_):
        body = json.loads(params["body"])
        self.backend.training_jobs[body["TrainingJobName"]].training_job_status = "Stopping"
        self.stopped.append(body["TrainingJobName"])
        return _ok({})

    def _stop_processing(self, params, **_):
        body = json.loads(params["body"])
        self.backend.processing_jobs[body["ProcessingJobName"]].processing_job_status = "Stopping"
        self.stopped.append(body["ProcessingJobName"])
        return _ok({})

    def finish_update(self, name: str, rolled_back: bool = False, reason: str = "") -> None:
        endpoint = self.backend.endpoints[name]
        endpoint.endpoint_status = "InService"
        if rolled_back:
            endpoint.failure_reason = reason
        else:
            endpoint.endpoint_config_name = self.endpoint_updates[-1]["EndpointConfigName"]

    def put(self, key: str, body: str | bytes, bucket: str = ARTIFACTS) -> None:
        self.session.client("s3").put_object(Bucket=bucket, Key=key, Body=body)


@pytest.fixture
def lambda_env(monkeypatch):
    values = {
        "ARTIFACTS_BUCKET": ARTIFACTS,
        "DATA_BUCKET": DATA,
        "SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/fine-tune-sagemaker",
        "TRAINING_IMAGE_URI": TRAINING_IMAGE,
        "INFERENCE_IMAGE_URI": INFERENCE_IMAGE,
        "CODE_S3_URI": f"s3://{ARTIFACTS}/code/0a1b2c3d/",
        "MODEL_PACKAGE_GROUP_NAME": GROUP,
        "DEFAULTS_JSON": json.dumps(STACK_DEFAULTS),
        "SUBNET_IDS": "",
        "SECURITY_GROUP_IDS": "",
        "HF_TOKEN_SECRET_ARN": "",
        "POWERTOOLS_SERVICE_NAME": "fine-tune",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def aws(lambda_env, monkeypatch):
    """moto, with the validator installed on the default session the handlers use."""
    monkeypatch.setattr(FakeEndpointConfig, "validate_instance_type", lambda self, instance_type: None)
    with mock_aws():
        boto3.setup_default_session(region_name=REGION)
        session = boto3.DEFAULT_SESSION
        aws_model_validation.install(session)
        s3 = session.client("s3")
        for bucket in (ARTIFACTS, DATA):
            s3.create_bucket(Bucket=bucket)
        key = session.client("kms").create_key(Description="fine-tune")["KeyMetadata"]["Arn"]
        topic = session.client("sns").create_topic(Name="fine-tune-runs")["TopicArn"]
        monkeypatch.setenv("KMS_KEY_ARN", key)
        monkeypatch.setenv("TOPIC_ARN", topic)
        session.client("sagemaker").create_model_package_group(ModelPackageGroupName=GROUP)
        yield AwsWorld(session, key, topic)
        boto3.DEFAULT_SESSION = None


@pytest.fixture
def run(aws):
    """The `run` ValidateInput produces for a small input."""
    import validate

    return validate.handler({"step": "ValidateInput", "state": {}, "execution_name": EXECUTION}, None)
