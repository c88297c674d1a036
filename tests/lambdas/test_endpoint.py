"""Deploy (create or blue/green update), DescribeEndpoint, and Cleanup of endpoint resources."""

import cleanup
import deploy
import describe_endpoint
import pytest
import validate
from common.errors import EndpointFailed

from .helpers import put_merged_model

ENDPOINT = "sql-assistant"


def _run(aws, execution_name, **deployment):
    run = validate.handler(
        {"execution_name": execution_name, "state": {"deployment": {"endpoint_name": ENDPOINT, **deployment}}}, None
    )
    put_merged_model(aws, run, size=2_000_000)
    return run


def _deploy(run):
    return deploy.handler({"state": {"run": run}, "execution_name": run["execution_name"]}, None)


def _describe(run, deployment):
    return describe_endpoint.handler({"state": {"run": run, "deployment": deployment}}, None)


def _cleanup(run, deployment, error="EndpointFailed", message="update rolled back"):
    cause = f'{{"errorMessage": "{message}", "errorType": "{error}"}}'
    return cleanup.handler(
        {"state": {"run": run, "deployment": deployment, "error": {"Error": error, "Cause": cause}}}, None
    )


def test_first_deploy_creates_the_endpoint(aws):
    run = _run(aws, "first")
    deployment = _deploy(run)
    assert deployment["action"] == "create" and deployment["status"] == "Creating"
    (model,) = aws.calls_to("CreateModel")
    container = model["PrimaryContainer"]
    assert container["ModelDataSource"]["S3DataSource"] == {
        "S3Uri": run["paths"]["merged"],
        "S3DataType": "S3Prefix",
        "CompressionType": "None",
    }
    assert container["Environment"] == {
        "HF_MODEL_ID": "/opt/ml/model",
        "SM_NUM_GPUS": "1",
        "MAX_INPUT_TOKENS": "1536",
        "MAX_TOTAL_TOKENS": "2048",
    }
    assert model["EnableNetworkIsolation"] is True
    (config,) = aws.calls_to("CreateEndpointConfig")
    variant = config["ProductionVariants"][0]
    # 2 MB of weights: the 600 s floor of 600 s + 90 s/GB.
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 600
    assert variant["ModelDataDownloadTimeoutInSeconds"] == 600
    assert "KmsKeyId" not in config  # ml.g5 instance storage is encrypted by the hardware
    assert aws.calls_to("UpdateEndpoint") == []
    assert _describe(run, deployment)["status"] == "InService"  # moto creates endpoints InService

    again = _deploy(run)  # a retried Deploy adopts what the first attempt made
    assert again["action"] == "create" and len(aws.calls_to("CreateEndpoint")) == 1


@pytest.mark.parametrize(
    "size, configured, expected",
    [(14_000_000_000, None, 1860), (60_000_000_000, None, 3600), (14_000_000_000, 900, 900)],
)
def test_timeouts_grow_with_the_model(size, configured, expected):
    from common.serving import timeout_for_size

    assert timeout_for_size(size, configured) == expected


def test_kms_key_on_endpoints_without_instance_storage(aws):
    run = _run(aws, "cpu-free", instance_type="ml.p3.2xlarge")
    _deploy(run)
    (config,) = aws.calls_to("CreateEndpointConfig")
    assert config["KmsKeyId"] == aws.kms_key_arn


def _serving_then_update(aws, **deployment):
    first = _run(aws, "first")
    _deploy(first)
    second = _run(aws, "second", **deployment)
    return first, second, _deploy(second)


def test_existing_endpoint_is_updated_blue_green(aws):
    first, second, deployment = _serving_then_update(
        aws, blue_green={"rollback_alarm_names": ["sql-assistant-5xx"], "wait_interval_seconds": 600}
    )
    assert deployment["action"] == "update" and deployment["status"] == "Updating"
    assert deployment["previous_endpoint_config_name"] == first["names"]["endpoint_config"]
    (update,) = aws.endpoint_updates
    assert update["RetainAllVariantProperties"] is False
    policy = update["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 600}
    # The endpoint's own alarms (5xx errors, model latency) first, then the input's.
    assert update["DeploymentConfig"]["AutoRollbackConfiguration"] == {
        "Alarms": [
            {"AlarmName": "sql-assistant-invocation-5xx-errors"},
            {"AlarmName": "sql-assistant-model-latency"},
            {"AlarmName": "sql-assistant-5xx"},
        ]
    }
    assert deployment["alarms"] == ["sql-assistant-invocation-5xx-errors", "sql-assistant-model-latency"]
    assert _describe(second, deployment)["status"] == "Updating"
    aws.finish_update(ENDPOINT)
    assert _describe(second, deployment)["status"] == "InService"


def test_failed_update_keeps_the_old_endpoint_serving(aws):
    first, second, deployment = _serving_then_update(aws)
    aws.finish_update(ENDPOINT, rolled_back=True, reason="health check failed")
    with pytest.raises(EndpointFailed, match="update rolled back: health check failed"):
        _describe(second, deployment)
    result = _cleanup(second, deployment)
    sagemaker = aws.session.client("sagemaker")
    endpoint = sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointConfigName"] == first["names"]["endpoint_config"]
    sagemaker.describe_endpoint_config(EndpointConfigName=first["names"]["endpoint_config"])
    sagemaker.describe_model(ModelName=first["names"]["model"])
    assert sorted(result["deleted"]) == [
        f"endpoint-config/{second['names']['endpoint_config']}",
        f"model/{second['names']['model']}",
    ]
    assert aws.calls_to("DeleteEndpoint") == []
    assert result["error"] == "EndpointFailed" and result["cause"] == "update rolled back"


def test_cleanup_deletes_an_endpoint_this_run_created(aws):
    run = _run(aws, "first")
    deployment = _deploy(run)
    result = _cleanup(run, deployment, error="EndpointMismatch", message="endpoint matched 1 of 3")
    assert sorted(result["deleted"]) == sorted(
        [
            f"endpoint/{ENDPOINT}",
            f"alarm/{ENDPOINT}-invocation-5xx-errors",
            f"alarm/{ENDPOINT}-model-latency",
            f"endpoint-config/{run['names']['endpoint_config']}",
            f"model/{run['names']['model']}",
        ]
    )
    assert aws.session.client("sagemaker").list_endpoints()["Endpoints"] == []
    assert aws.session.client("cloudwatch").describe_alarms()["MetricAlarms"] == []


def test_failed_endpoint_raises_with_the_reason(aws):
    run = _run(aws, "first")
    deployment = _deploy(run)
    endpoint = aws.backend.endpoints[ENDPOINT]
    endpoint.endpoint_status, endpoint.failure_reason = "Failed", "CUDA out of memory while loading"
    with pytest.raises(EndpointFailed, match="is Failed: CUDA out of memory while loading"):
        _describe(run, deployment)
