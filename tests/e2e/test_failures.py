"""Runs that must fail: a rejected model, a crashing training job, bad input; and a doubled start."""

import shutil

import pytest
from botocore.exceptions import ClientError

from local_mode.run import RunRequest, prepare_input, run_execution, summarize
from tests.e2e.conftest import EXAMPLE_DATA, local_aws


@pytest.fixture(scope="module")
def account(stack_template, tmp_path_factory):
    with local_aws(tmp_path_factory.mktemp("failures"), stack_template) as aws:
        yield aws


def endpoint_exists(aws, name):
    try:
        aws.sagemaker.describe_endpoint(EndpointName=name)
        return True
    except ClientError:
        return False


def test_gate_rejects_an_unreachable_threshold(account, tiny_model, tiny_input):
    tiny_input["evaluation"]["gate"] = {
        "min_execution_accuracy": 1.0,
        "min_improvement_over_base": 1.0,
        "compare_to_production": False,
    }
    tiny_input["deployment"]["endpoint_name"] = "rejected-model"
    summary = run_execution(
        account, RunRequest(tiny_input, "gate-rejects", model_dir=tiny_model, dataset=EXAMPLE_DATA, timeout_seconds=600)
    )
    assert summary["status"] == "FAILED"
    assert summary["error"] == "EvaluationGateFailed"
    assert "execution accuracy" in summary["cause"] and "minimum 1.0" in summary["cause"]
    assert summary["gate"]["passed"] is False and summary["gate"]["reasons"]
    package = account.sagemaker.describe_model_package(ModelPackageName=summary["model_package"]["arn"])
    assert package["ModelApprovalStatus"] == "Rejected"
    assert summary["metrics"]["fine_tuned"]["count"] == 6
    assert not endpoint_exists(account, "rejected-model")


def test_crashing_training_job_fails_the_run_and_a_doubled_start_runs_each_job_once(
    account, tiny_model, tiny_input, tmp_path
):
    # A base model whose weights file is garbage: valid input, but train.py fails when it loads it.
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model, broken)
    (broken / "model.safetensors").write_bytes(b"these are not weights")
    tiny_input["deployment"]["endpoint_name"] = "never-deployed"
    execution_input = prepare_input(account, RunRequest(tiny_input, "crash", model_dir=broken, dataset=EXAMPLE_DATA))
    first = account.start_execution(execution_input, "crash")
    second = account.start_execution(execution_input, "crash")  # same name, same input, still running
    assert first == second
    account.wait(first, timeout=600)
    summary = summarize(account, first)
    assert summary["status"] == "FAILED"
    train = next(job for job in summary["jobs"] if job["kind"] == "training")
    assert train["status"] == "Failed" and train["failure_reason"].startswith("AlgorithmError: ExitCode")
    assert train["failure_reason"] in summary["cause"]
    assert summary["cleanup"] is not None
    assert not endpoint_exists(account, "never-deployed")
    assert [job["kind"] for job in summary["jobs"]] == ["processing", "training"]  # evaluation never started
    names = [job["name"] for job in account.jobs.summaries() if job["run_id"] == summary["run_id"]]
    assert len(names) == len(set(names)) == 2 and all(job["attempts"] == 1 for job in summary["jobs"])
    with pytest.raises(ClientError) as error:  # a finished execution's name is taken
        account.start_execution(execution_input, "crash")
    assert error.value.response["Error"]["Code"] == "ExecutionAlreadyExists"


def test_bad_input_fails_in_validation_before_any_job(account):
    bad = {
        "dataset": {"format": "tsv", "s3_uri": "not-a-uri"},
        "training": {"instance_type": "ml.banana.large"},
        "surprise": True,
    }
    started_jobs = len(account.jobs.summaries())
    arn = account.start_execution(bad, "bad-input")
    account.wait(arn, timeout=120)
    summary = summarize(account, arn)
    assert summary["status"] == "FAILED"
    assert summary["error"] == "InvalidInput"
    for field in ("dataset.format", "dataset.s3_uri", "training.instance_type", "surprise"):
        assert field in summary["cause"], field
    assert len(account.jobs.summaries()) == started_jobs
    entered = [e["stateEnteredEventDetails"]["name"] for e in account.history(arn) if "stateEnteredEventDetails" in e]
    assert not any(name.startswith("Start") for name in entered)
