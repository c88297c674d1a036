"""What this stack did not create is never adopted, updated or deleted; what it creates says whose it is."""

import boto3
import cleanup
import deploy
import pytest
import start_job
import validate
from common.errors import ResourceConflict

from tests.lambdas.helpers import put_merged_model

STACK = "arn:aws:cloudformation:us-east-1:123456789012:stack/LlmFineTuning/0f3c2e1a-aaaa-bbbb-cccc-1234567890ab"
ENDPOINT = "sql-assistant"


@pytest.fixture
def owned(aws, monkeypatch):
    monkeypatch.setenv("STACK_TAG", STACK)
    return aws


def _run(name, **deployment):
    return validate.handler(
        {"execution_name": name, "state": {"deployment": {"endpoint_name": ENDPOINT, **deployment}}}, None
    )


def test_everything_a_run_creates_carries_the_run_and_the_stack(owned):
    run = _run("tagged")
    put_merged_model(owned, run, size=1000)
    start_job.handler({"kind": "prepare", "state": {"run": run}, "execution_name": "tagged"}, None)
    deploy.handler({"state": {"run": run}, "execution_name": "tagged"}, None)
    for call in ("CreateProcessingJob", "CreateModel", "CreateEndpointConfig", "CreateEndpoint"):
        (request,) = owned.calls_to(call)
        assert {"Key": "fine-tune:stack", "Value": STACK} in request["Tags"], call
        assert {"Key": "fine-tune:run-id", "Value": run["run_id"]} in request["Tags"], call


def test_an_endpoint_of_another_owner_is_neither_updated_nor_deleted(owned):
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    sagemaker.create_model(
        ModelName="theirs", PrimaryContainer={"Image": "x"}, ExecutionRoleArn="arn:aws:iam::123456789012:role/theirs"
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="theirs-cfg",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "theirs",
                "InstanceType": "ml.g5.2xlarge",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sagemaker.create_endpoint(
        EndpointName=ENDPOINT,
        EndpointConfigName="theirs-cfg",
        Tags=[{"Key": "fine-tune:run-id", "Value": "someone"}, {"Key": "fine-tune:stack", "Value": "another-stack"}],
    )
    run = _run("intruder")
    put_merged_model(owned, run, size=1000)
    with pytest.raises(ResourceConflict, match="was not created by this stack"):
        deploy.handler({"state": {"run": run}, "execution_name": "intruder"}, None)
    assert owned.endpoint_updates == []
    result = cleanup.handler({"state": {"run": run, "error": {"Error": "ResourceConflict", "Cause": "x"}}}, None)
    assert any("not created by this stack" in note for note in result["notes"])
    assert sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == "theirs-cfg"
    assert f"endpoint/{ENDPOINT}" not in result["deleted"]


def test_a_job_under_the_run_name_that_is_not_the_runs_is_not_adopted(owned):
    run = _run("adopt-check")
    request = start_job.BUILDERS["prepare"](start_job.RunContext.from_run(run, start_job.LambdaEnvironment.from_os()))
    request["Tags"] = [{"Key": "fine-tune:run-id", "Value": "another-run"}]
    boto3.client("sagemaker", region_name="us-east-1").create_processing_job(**request)
    with pytest.raises(ResourceConflict, match="was not started by this run"):
        start_job.handler({"kind": "prepare", "state": {"run": run}, "execution_name": "adopt-check"}, None)
