"""The preflight finds every problem before a job starts; a dry run stops after it.

Quotas come from the emulated Service Quotas, the SageMaker role's access from IAM's simulation, and
Hub models from the local hub, so each check asks what it would ask in the cloud.
"""

import copy

import pytest

from local_mode.hub import HubRepo
from local_mode.run import RunRequest, prepare_input, summarize
from tests.e2e.conftest import EXAMPLE_DATA, TINY_INPUT, local_aws


@pytest.fixture(scope="module")
def account(stack_template, tmp_path_factory):
    with local_aws(tmp_path_factory.mktemp("preflight"), stack_template) as aws:
        yield aws


def dry_run(tiny_input=None, **changes):
    run_input = copy.deepcopy(tiny_input or TINY_INPUT)
    run_input["orchestration"]["dry_run"] = True
    for group, values in changes.items():
        run_input.setdefault(group, {}).update(values)
    return run_input


def run(account, name, run_input, model_dir=None, dataset=EXAMPLE_DATA):
    started = len(account.jobs.summaries())
    execution_input = prepare_input(account, RunRequest(run_input, name, model_dir=model_dir, dataset=dataset))
    arn = account.start_execution(execution_input, name)
    account.wait(arn, timeout=300)
    assert len(account.jobs.summaries()) == started, "a dry run or a failed preflight starts no job"
    return summarize(account, arn)


def test_a_dry_run_checks_everything_and_starts_nothing(account, tiny_model):
    summary = run(account, "dry-ok", dry_run(), model_dir=tiny_model)
    assert summary["status"] == "SUCCEEDED", summary["cause"]
    preflight = summary["output"]["preflight"]
    assert preflight["passed"] is True and preflight["problems"] == []
    checks = " | ".join(preflight["checks"])
    assert "ml.g5.2xlarge for spot training job usage" in checks
    assert "the SageMaker role may read it" in checks
    assert "fits the state machine's timeout" in checks


def test_every_problem_is_reported_at_once(account):
    account.quotas.set("ml.g5.2xlarge for spot training job usage", 1)
    run_input = dry_run(
        training={"instance_count": 2, "max_runtime_hours": 60, "max_wait_hours": 70},
        base_model={"hf_model_id": "acme/no-such-model"},
    )
    run_input["dataset"] = {**run_input["dataset"], "s3_uri": "s3://someone-elses-bucket/rows.jsonl"}
    try:
        summary = run(account, "dry-problems", run_input, dataset=None)
    finally:
        account.quotas.set("ml.g5.2xlarge for spot training job usage", 4)
    assert summary["status"] == "FAILED" and summary["error"] == "PreflightFailed"
    cause = summary["cause"]
    assert (
        "training.instance_type: 2 x ml.g5.2xlarge needs the quota 'ml.g5.2xlarge for spot training job usage'" in cause
        and "request-service-quota-increase" in cause
    )
    assert "dataset.s3_uri: 's3://someone-elses-bucket/rows.jsonl' is in bucket someone-elses-bucket" in cause
    assert "fine-tune:input_bucket_names" in cause
    assert "base_model.hf_model_id: 'acme/no-such-model' does not exist on the Hub" in cause
    assert "above the state machine's timeout of 72 h" in cause


def test_a_gated_model_without_a_token_is_refused_and_a_public_one_is_pinned(account, tiny_model):
    account.hub.add(HubRepo("acme/tiny-gated", tiny_model, gated=True, tokens={"hf_granted"}))
    public = account.hub.add(HubRepo("acme/tiny-public", tiny_model))
    gated = run(account, "dry-gated", dry_run(base_model={"hf_model_id": "acme/tiny-gated"}))
    assert gated["error"] == "PreflightFailed"
    assert "'acme/tiny-gated' is gated; set the context key fine-tune:hf_token_secret_arn" in gated["cause"]
    pinned = run(account, "dry-public", dry_run(base_model={"hf_model_id": "acme/tiny-public"}))
    assert pinned["status"] == "SUCCEEDED", pinned["cause"]
    assert pinned["output"]["preflight"]["base_model"] == {
        "source": "hub",
        "id": "acme/tiny-public",
        "revision": "main",
        "sha": public.sha,
        "gated": False,
    }
    missing = run(account, "dry-revision", dry_run(base_model={"hf_model_id": "acme/tiny-public", "revision": "v9"}))
    assert "base_model.revision: 'v9' is not a branch, tag or commit of acme/tiny-public" in missing["cause"]
    assert account.iam.summary()["denied"] == 0, account.iam.summary()["denials"]
