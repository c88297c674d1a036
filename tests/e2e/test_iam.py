"""IAM in local mode: every request is decided against the synthesized policies.

One emulated account sees the life of an endpoint: a first deploy, a blue/green update of the same
endpoint, an update that rolls back (then Cleanup), the gate comparing with production, and a
training job that fails. Not one check may be denied (test_iam_missing_grant.py removes a grant).
"""

import copy
import shutil

import pytest

from local_mode.run import RunRequest, run_execution
from tests.e2e.conftest import EXAMPLE_DATA, TINY_INPUT, local_aws

ENDPOINT = "iam-checked"


def production_input(tiny_input):
    run_input = copy.deepcopy(tiny_input)
    run_input["evaluation"]["gate"]["compare_to_production"] = True
    run_input["deployment"]["endpoint_name"] = ENDPOINT
    return run_input


@pytest.fixture(scope="module")
def account(stack_template, tmp_path_factory):
    with local_aws(tmp_path_factory.mktemp("iam"), stack_template) as aws:
        yield aws


@pytest.fixture(scope="module")
def runs(account, tiny_model, tmp_path_factory):
    run_input = production_input(TINY_INPUT)
    results = {}
    results["create"] = run_execution(
        account, RunRequest(run_input, "iam-create", model_dir=tiny_model, dataset=EXAMPLE_DATA, timeout_seconds=600)
    )
    results["update"] = run_execution(
        account, RunRequest(run_input, "iam-update", model_dir=tiny_model, dataset=EXAMPLE_DATA, timeout_seconds=600)
    )
    account.endpoints.settings.never_healthy = True
    account.endpoints.settings.health_check_timeout_cap = 5
    try:
        results["rollback"] = run_execution(
            account,
            RunRequest(run_input, "iam-rollback", model_dir=tiny_model, dataset=EXAMPLE_DATA, timeout_seconds=600),
        )
    finally:
        account.endpoints.settings.never_healthy = False
    broken = tmp_path_factory.mktemp("broken") / "model"
    shutil.copytree(tiny_model, broken)
    (broken / "model.safetensors").write_bytes(b"not weights")
    results["failed_training"] = run_execution(
        account, RunRequest(run_input, "iam-train-fails", model_dir=broken, dataset=EXAMPLE_DATA, timeout_seconds=600)
    )
    return results


def test_the_endpoint_lifecycle_runs_without_a_single_denial(account, runs):
    assert runs["create"]["status"] == "SUCCEEDED", runs["create"]["cause"]
    assert runs["create"]["endpoint"]["deployments"][0]["action"] == "create"
    assert runs["update"]["status"] == "SUCCEEDED", runs["update"]["cause"]
    assert [d["action"] for d in runs["update"]["endpoint"]["deployments"]] == ["update"]
    assert any("production model" in reason for reason in runs["update"]["gate"]["reasons"])
    assert runs["rollback"]["status"] == "FAILED" and "rolled back" in runs["rollback"]["cause"]
    assert runs["rollback"]["cleanup"]["notes"] or runs["rollback"]["cleanup"]["deleted"]
    assert runs["failed_training"]["status"] == "FAILED"
    assert runs["failed_training"]["error"] == "TrainingJobFailed"
    summary = account.iam.summary()
    assert summary["denied"] == 0, summary["denials"]
    # Every kind of principal was evaluated: Lambdas' roles, the state machine's role, a service.
    principals = set(summary["by_principal"])
    assert any("StateMachineRole" in name for name in principals)
    assert any("CleanupRole" in name for name in principals)
    assert any(name.startswith("logs.") for name in principals)
    # Each run's summary counts its own checks (how many depends on how often the jobs were polled).
    assert all(run["iam"]["checks"] > 0 and run["iam"]["denied"] == 0 for run in runs.values())


def test_every_check_is_in_the_table(account, runs):
    table = account.iam.table().splitlines()
    assert table[0].split()[:4] == ["PRINCIPAL", "ACTION", "RESOURCE", "DECISION"]
    assert any("sagemaker:UpdateEndpoint" in line and "endpoint-config/" in line for line in table)
    assert any("iam:PassRole" in line for line in table)
    assert any("kms:GenerateDataKey" in line for line in table)
