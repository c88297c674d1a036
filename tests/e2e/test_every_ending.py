"""Every ending gets its Cleanup: an aborted execution and one that times out, through EventBridge.

Neither passes through a Catch, so the workflow's own Cleanup never runs; the stack's rule on the
state machine's status changes invokes Cleanup with the event, and Cleanup stops the training job
the history says was started. An execution whose own Cleanup ran is not cleaned up twice.
"""

import copy
import time

import pytest

from local_mode.run import RunRequest, prepare_input, summarize
from tests.e2e.conftest import EXAMPLE_DATA, TINY_INPUT, local_aws


def long_training_input():
    run_input = copy.deepcopy(TINY_INPUT)
    run_input["training"]["hyperparameters"].update(max_steps=2000, save_steps=5000)
    run_input["deployment"]["endpoint_name"] = "never-reached"
    return run_input


def wait_for_training(aws, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        training = [
            job
            for job in aws.jobs.summaries()
            if job["kind"] == "training" and job["status"] == "InProgress" and job["attempts"] >= 1
        ]
        if training:
            return training[-1]
        time.sleep(0.5)
    raise AssertionError("training never started")


def job_status(aws, name):
    return aws.sagemaker.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]


@pytest.fixture(scope="module")
def account(stack_template, tmp_path_factory):
    with local_aws(tmp_path_factory.mktemp("endings"), stack_template) as aws:
        yield aws


def test_an_aborted_execution_is_cleaned_up(account, tiny_model):
    execution_input = prepare_input(
        account, RunRequest(long_training_input(), "aborted", model_dir=tiny_model, dataset=EXAMPLE_DATA)
    )
    arn = account.start_execution(execution_input, "aborted")
    training = wait_for_training(account)
    account.sfn.stop_execution(executionArn=arn, error="Operator", cause="changed my mind")
    [delivery] = account.endings.wait_delivered(arn, timeout=120)
    assert delivery["error"] is None, delivery
    result = delivery["result"]
    # StopExecution's own error when the emulation carries it, else the name Cleanup gives an abort.
    assert result["status"] == "ABORTED" and result["error"] in ("Operator", "ExecutionAborted")
    assert result["stopped_jobs"] == [training["name"]]
    deadline = time.monotonic() + 60
    while job_status(account, training["name"]) != "Stopped":
        assert time.monotonic() < deadline
        time.sleep(0.5)


def test_a_failure_the_workflow_cleaned_up_is_not_cleaned_up_twice(account):
    arn = account.start_execution({"dataset": {"format": "tsv"}}, "bad-input-ending")
    account.wait(arn, timeout=120)
    [delivery] = account.endings.wait_delivered(arn, timeout=60)
    assert "already ran" in delivery["result"]["skipped"]
    assert summarize(account, arn)["status"] == "FAILED"
