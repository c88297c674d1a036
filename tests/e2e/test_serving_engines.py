"""Both serving engines, auto scaling and the endpoint's alarms, end to end on the tiny model.

A first run serves with vLLM's contract and registers the variant for auto scaling; a second run
moves the same endpoint to TGI on another instance type (auto scaling is taken off for the update,
as SageMaker requires, and put back once it is InService); a third update is rolled back by an
endpoint alarm that went off. IAM denies nothing on the way.
"""

import copy
import json

import boto3
import pytest

from local_mode.run import RunRequest, run_execution
from tests.e2e.conftest import EXAMPLE_DATA, TINY_INPUT, local_aws

ENDPOINT = "two-engines"
SCALING = {"min_instances": 1, "max_instances": 3, "metric": "concurrent_requests_per_model", "target_value": 4}


def engine_input(engine, instance_type):
    run_input = copy.deepcopy(TINY_INPUT)
    run_input["deployment"].update(
        endpoint_name=ENDPOINT, engine=engine, instance_type=instance_type, autoscaling=SCALING
    )
    # The tiny model's 16-wide heads are more than vLLM's CPU build runs; test_vllm_evaluation.py
    # evaluates with vLLM itself.
    run_input["evaluation"]["generation"] = "transformers"
    return run_input


@pytest.fixture(scope="module")
def account(stack_template, tmp_path_factory):
    with local_aws(tmp_path_factory.mktemp("engines"), stack_template) as aws:
        yield aws


@pytest.fixture(scope="module")
def vllm_run(account, tiny_model):
    return run_execution(
        account,
        RunRequest(
            engine_input("vllm", "ml.g5.2xlarge"),
            "engine-vllm",
            model_dir=tiny_model,
            dataset=EXAMPLE_DATA,
            timeout_seconds=600,
        ),
    )


@pytest.fixture(scope="module")
def tgi_run(account, tiny_model, vllm_run):
    return run_execution(
        account,
        RunRequest(
            engine_input("tgi", "ml.g6.2xlarge"),
            "engine-tgi",
            model_dir=tiny_model,
            dataset=EXAMPLE_DATA,
            timeout_seconds=600,
        ),
    )


def scalable_targets():
    client = boto3.client("application-autoscaling", region_name="us-east-1")
    return client.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]


def test_vllm_serves_the_evaluated_answers_and_the_variant_scales(account, vllm_run):
    assert vllm_run["status"] == "SUCCEEDED", vllm_run["cause"]
    assert vllm_run["endpoint_check"]["engine"] == "vllm" and vllm_run["endpoint_check"]["passed"]
    endpoint = account.sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    config = account.sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    [variant] = config["ProductionVariants"]
    assert variant["InferenceAmiVersion"] == "al2023-ami-sagemaker-inference-gpu-4-1"  # a CUDA 13 image
    model = account.sagemaker.describe_model(ModelName=variant["ModelName"])
    assert "/huggingface-vllm:" in model["PrimaryContainer"]["Image"]
    environment = model["PrimaryContainer"]["Environment"]
    assert environment["SM_VLLM_MODEL"] == "/opt/ml/model"
    assert environment["SM_VLLM_MAX_MODEL_LEN"] == str(TINY_INPUT["deployment"]["max_total_tokens"])
    [target] = scalable_targets()
    assert (target["ResourceId"], target["MinCapacity"], target["MaxCapacity"]) == (
        f"endpoint/{ENDPOINT}/variant/AllTraffic",
        1,
        3,
    )
    assert vllm_run["output"]["scaling"]["configured"] is True
    # The endpoint answers vLLM's own request format, and refuses TGI's as vLLM would.
    runtime = boto3.client("sagemaker-runtime", region_name="us-east-1")
    chat = {"messages": [{"role": "user", "content": "How many rows?"}], "max_tokens": 4, "temperature": 0}
    answer = json.loads(
        runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType="application/json", Body=json.dumps(chat))[
            "Body"
        ].read()
    )
    assert answer["object"] == "chat.completion" and isinstance(answer["choices"][0]["message"]["content"], str)
    with pytest.raises(runtime.exceptions.ModelError, match="400"):
        runtime.invoke_endpoint(
            EndpointName=ENDPOINT, ContentType="application/json", Body=json.dumps({"inputs": "SELECT"})
        )
    alarms = boto3.client("cloudwatch", region_name="us-east-1").describe_alarms()["MetricAlarms"]
    assert sorted(alarm["AlarmName"] for alarm in alarms) == [
        f"{ENDPOINT}-invocation-5xx-errors",
        f"{ENDPOINT}-model-latency",
    ]


def test_moving_to_tgi_on_another_instance_type_keeps_auto_scaling(account, tgi_run):
    assert tgi_run["status"] == "SUCCEEDED", tgi_run["cause"]
    assert tgi_run["endpoint_check"]["engine"] == "tgi" and tgi_run["endpoint_check"]["passed"]
    deployment = tgi_run["output"]["deployment"]
    assert deployment["action"] == "update"
    assert deployment["scaling_removed"]["target"]["MaxCapacity"] == 3  # taken off for the new instance type
    [target] = scalable_targets()  # and registered again once InService
    assert target["ResourceId"] == f"endpoint/{ENDPOINT}/variant/AllTraffic"


def test_an_alarm_that_goes_off_rolls_the_update_back(account, tiny_model, tgi_run):
    serving = account.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    cloudwatch.set_alarm_state(
        AlarmName=f"{ENDPOINT}-invocation-5xx-errors",
        StateValue="ALARM",
        StateReason="errors while the new fleet bakes",
    )
    try:
        summary = run_execution(
            account,
            RunRequest(
                engine_input("tgi", "ml.g6.2xlarge"),
                "engine-alarm",
                model_dir=tiny_model,
                dataset=EXAMPLE_DATA,
                timeout_seconds=600,
            ),
        )
    finally:
        cloudwatch.set_alarm_state(AlarmName=f"{ENDPOINT}-invocation-5xx-errors", StateValue="OK", StateReason="ok")
    assert summary["status"] == "FAILED" and "rolled back" in summary["cause"]
    assert f"{ENDPOINT}-invocation-5xx-errors" in summary["cause"]
    endpoint = account.sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService" and endpoint["EndpointConfigName"] == serving
    assert scalable_targets()  # the serving fleet keeps its auto scaling


def test_no_request_was_denied(account, tgi_run):
    summary = account.iam.summary()
    assert summary["denied"] == 0, summary["denials"]
    actions = {record.action for record in account.iam.enforcer.records}
    assert {
        "application-autoscaling:RegisterScalableTarget",
        "iam:CreateServiceLinkedRole",
        "cloudwatch:PutMetricAlarm",
        "application-autoscaling:DeregisterScalableTarget",
    } <= actions
