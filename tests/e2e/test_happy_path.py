"""The whole workflow on the tiny model: SUCCEEDED, registered, deployed, answering; then a bad update."""

import json
import urllib.request
from datetime import datetime

import boto3
import pytest

from local_mode.run import RunRequest, run_execution
from tests.e2e.conftest import EXAMPLE_DATA, TINY_INPUT, local_aws


@pytest.fixture(scope="module")
def account(stack_template, tmp_path_factory):
    with local_aws(tmp_path_factory.mktemp("happy"), stack_template) as aws:
        yield aws


@pytest.fixture(scope="module")
def first_run(account, tiny_model):
    return run_execution(
        account, RunRequest(TINY_INPUT, "happy-path", model_dir=tiny_model, dataset=EXAMPLE_DATA, timeout_seconds=600)
    )


def test_succeeds_with_metrics_package_and_endpoint(account, first_run):
    summary = first_run
    assert summary["status"] == "SUCCEEDED", (summary["error"], summary["cause"])
    assert [(job["kind"], job["status"]) for job in summary["jobs"]] == [
        ("processing", "Completed"),
        ("training", "Completed"),
        ("processing", "Completed"),
        ("processing", "Completed"),
    ]
    # Each job's own time, in order: one starts after the one before it ended.
    times = [(datetime.fromisoformat(job["started"]), datetime.fromisoformat(job["ended"])) for job in summary["jobs"]]
    assert all(start < end for start, end in times)
    assert all(times[index][1] <= times[index + 1][0] for index in range(len(times) - 1))
    assert all(
        job["seconds"] == pytest.approx((end - start).total_seconds(), abs=0.01)
        for job, (start, end) in zip(summary["jobs"], times, strict=True)
    )
    for model in ("base", "fine_tuned"):
        assert summary["metrics"][model]["count"] == 6
        assert 0.0 <= summary["metrics"][model]["execution_accuracy"] <= 1.0
    check = summary["serving_check"]  # the merged model, read by the serving image's own transformers
    assert check["passed"] is True and check["mismatches"] == [], check
    assert check["software"]["transformers"] == "4.51.0" and check["rows"]["compared"] > 0
    assert check["rows"]["matching"] == check["rows"]["compared"]
    assert summary["gate"]["passed"] is True
    package = account.sagemaker.describe_model_package(ModelPackageName=summary["model_package"]["arn"])
    assert package["ModelApprovalStatus"] == "Approved"
    assert summary["endpoint"]["status"] == "InService"
    [deployment] = summary["endpoint"]["deployments"]
    assert (deployment["action"], deployment["status"]) == ("create", "InService") and deployment["seconds"] > 0
    assert summary["endpoint_check"]["passed"] is True
    # The run's artifacts are on disk: the S3 copy, the job folders, the summary.
    folder = account.workdir / "runs" / summary["run_id"]
    assert json.loads((folder / "summary.json").read_text())["status"] == "SUCCEEDED"
    assert list((folder / "s3").rglob("metrics.json"))
    assert (folder / "jobs" / f"{summary['run_id']}-train" / "job.log").is_file()


def test_endpoint_answers_through_invoke_endpoint_and_plain_http(account, first_run):
    request = {"inputs": "SELECT", "parameters": {"max_new_tokens": 8, "do_sample": False}}
    runtime = boto3.client("sagemaker-runtime", region_name="us-east-1")
    runtime_answer = json.loads(
        runtime.invoke_endpoint(EndpointName="sql-assistant", ContentType="application/json", Body=json.dumps(request))[
            "Body"
        ].read()
    )
    http = urllib.request.Request(
        first_run["endpoint"]["url"] + "/invocations",
        data=json.dumps(request).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(http, timeout=60) as response:
        assert json.loads(response.read()) == runtime_answer
    assert isinstance(runtime_answer[0]["generated_text"], str)


def test_unhealthy_new_model_fails_and_the_serving_endpoint_keeps_serving(account, first_run, tiny_model):
    """A second run updates the same endpoint with a server that never becomes healthy."""
    serving_config = account.sagemaker.describe_endpoint(EndpointName="sql-assistant")["EndpointConfigName"]
    account.endpoints.settings.never_healthy = True
    account.endpoints.settings.health_check_timeout_cap = 5
    try:
        summary = run_execution(
            account,
            RunRequest(TINY_INPUT, "unhealthy-update", model_dir=tiny_model, dataset=EXAMPLE_DATA, timeout_seconds=600),
        )
    finally:
        account.endpoints.settings.never_healthy = False
    assert summary["status"] == "FAILED"
    assert "ping health check" in summary["cause"]
    endpoint = account.sagemaker.describe_endpoint(EndpointName="sql-assistant")
    assert endpoint["EndpointStatus"] == "InService" and endpoint["EndpointConfigName"] == serving_config
    run_id = summary["run_id"]
    configs = account.sagemaker.list_endpoint_configs()["EndpointConfigs"]
    assert not [c for c in configs if c["EndpointConfigName"].startswith(run_id)], "the failed run's config remains"
    models = account.sagemaker.list_models()["Models"]
    assert not [m for m in models if m["ModelName"].startswith(run_id)], "the failed run's model remains"
    answer = boto3.client("sagemaker-runtime", region_name="us-east-1").invoke_endpoint(
        EndpointName="sql-assistant",
        ContentType="application/json",
        Body=json.dumps({"inputs": "SELECT", "parameters": {"max_new_tokens": 4}}),
    )
    assert json.loads(answer["Body"].read())[0]["generated_text"] is not None
