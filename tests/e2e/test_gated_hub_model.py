"""A gated Hub base model and data set: every job that downloads them reads the stack's token, at the pinned commit.

The stack is synthesized with `fine-tune:hf_token_secret_arn`; the account holds that secret; the
local hub serves the tiny model and the example data as gated repositories that only the secret's
token may read. The prepare job downloads the data set, the training job the model, the evaluation
job the model again to score the base, and the model package records both commits. A stack
without the token is refused by Preflight (tests/e2e/test_preflight.py).
"""

import copy
import shutil

import pytest

from local_mode.hub import HubRepo
from local_mode.run import RunRequest, run_execution
from local_mode.stack import synthesize
from tests.e2e.conftest import EXAMPLE_DATA, REPO_ROOT, TINY_INPUT, local_aws

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:hub-token-AbCdEf"
TOKEN = "hf_granted_to_this_stack"


@pytest.fixture(scope="module")
def template_with_token():
    return synthesize(
        context={"fine-tune:hf_token_secret_arn": SECRET_ARN},
        cache_dir=REPO_ROOT / ".cache" / "local-mode" / "templates",
    )


def test_prepare_train_and_base_evaluation_download_gated_repositories_with_the_token(
    template_with_token, tiny_model, tmp_path
):
    data_folder = tmp_path / "data-repo"
    data_folder.mkdir()
    shutil.copy(EXAMPLE_DATA, data_folder / "train.jsonl")
    run_input = copy.deepcopy(TINY_INPUT)
    run_input["base_model"] = {"hf_model_id": "acme/tiny-gated"}
    run_input["dataset"] = {**run_input["dataset"], "hf_dataset_id": "acme/sql-gated", "hf_split": "train"}
    run_input["deployment"] = {**run_input["deployment"], "enabled": False}
    with local_aws(tmp_path, template_with_token) as aws:
        aws.add_secret(SECRET_ARN, TOKEN)
        repo = aws.hub.add(HubRepo("acme/tiny-gated", tiny_model, gated=True, tokens={TOKEN}))
        data = aws.hub.add(HubRepo("acme/sql-gated", data_folder, kind="dataset", gated=True, tokens={TOKEN}))
        summary = run_execution(aws, RunRequest(run_input, "gated-hub", timeout_seconds=900))
        package = aws.sagemaker.describe_model_package(ModelPackageName=summary["model_package"]["arn"])
        downloads = [request for request in aws.hub.requests if "/resolve/" in request["path"]]
        prepared = aws.read_json(f"s3://{aws.artifacts_bucket}/runs/{summary['run_id']}/data/report.json")
    assert summary["status"] == "SUCCEEDED", summary.get("cause")
    assert summary["output"]["preflight"]["base_model"]["sha"] == repo.sha
    assert summary["output"]["preflight"]["dataset"]["sha"] == data.sha
    assert prepared["input"] == "acme/sql-gated" and prepared["counts"]["train"] > 0
    assert {"training", "processing"} <= {job["kind"] for job in summary["jobs"]}
    assert summary["metrics"]["base"] is not None and summary["metrics"]["base"]["count"] == 6
    # Each download named the pinned commit and carried the token (the hub refuses gated files otherwise).
    assert any("/datasets/acme/sql-gated/resolve/" in request["path"] for request in downloads)
    assert any("/acme/tiny-gated/resolve/" in request["path"] for request in downloads)
    assert all(
        f"/resolve/{repo.sha}/" in request["path"] or f"/resolve/{data.sha}/" in request["path"]
        for request in downloads
    )
    assert all(request["token"] == TOKEN for request in downloads)
    recorded = package["CustomerMetadataProperties"]
    assert recorded["base_model"] == "hf://acme/tiny-gated" and recorded["base_model_revision"] == repo.sha
    assert recorded["dataset"] == "hf://acme/sql-gated" and recorded["dataset_revision"] == data.sha
    assert recorded["train_sha256"] != "not recorded"
