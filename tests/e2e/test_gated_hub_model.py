"""A gated Hub base model: every job that downloads it reads the stack's token, at the commit Preflight pinned.

The stack is synthesized with `fine-tune:hf_token_secret_arn`; the account holds that secret; the
local hub serves the tiny model as a gated repository that only the secret's token may read. The
training job downloads it to train, the evaluation job to score the base model, and the model
package records the commit. A stack without the token is refused by Preflight (tests/e2e/test_preflight.py).
"""
import copy

import pytest

from local_mode.hub import HubRepo
from local_mode.run import RunRequest, run_execution
from local_mode.stack import synthesize
from tests.e2e.conftest import EXAMPLE_DATA, REPO_ROOT, TINY_INPUT, local_aws

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:hub-token-AbCdEf"
TOKEN = "hf_granted_to_this_stack"


@pytest.fixture(scope="module")
def template_with_token():
    return synthesize(context={"fine-tune:hf_token_secret_arn": SECRET_ARN},
                      cache_dir=REPO_ROOT / ".cache" / "local-mode" / "templates")


def test_training_and_base_evaluation_download_the_gated_model_with_the_token(template_with_token, tiny_model,
                                                                               tmp_path):
    run_input = copy.deepcopy(TINY_INPUT)
    run_input["base_model"] = {"hf_model_id": "acme/tiny-gated"}
    run_input["deployment"] = {**run_input["deployment"], "enabled": False}
    with local_aws(tmp_path, template_with_token) as aws:
        aws.add_secret(SECRET_ARN, TOKEN)
        repo = aws.hub.add(HubRepo("acme/tiny-gated", tiny_model, gated=True, tokens={TOKEN}))
        summary = run_execution(aws, RunRequest(run_input, "gated-hub", dataset=EXAMPLE_DATA, timeout_seconds=900))
        package = aws.sagemaker.describe_model_package(ModelPackageName=summary["model_package"]["arn"])
        downloads = [request for request in aws.hub.requests if "/resolve/" in request["path"]]
    assert summary["status"] == "SUCCEEDED", summary.get("cause")
    assert summary["output"]["preflight"]["base_model"]["sha"] == repo.sha
    kinds = {job["kind"]: job for job in summary["jobs"]}
    assert {"training", "processing"} <= {job["kind"] for job in summary["jobs"]}
    assert summary["metrics"]["base"] is not None and summary["metrics"]["base"]["count"] == 6
    # Each download named the pinned commit and carried the token (the hub refuses gated files otherwise).
    assert downloads and all(f"/resolve/{repo.sha}/" in request["path"] for request in downloads)
    assert all(request["token"] == TOKEN for request in downloads)
    recorded = package["CustomerMetadataProperties"]
    assert recorded["base_model"] == "hf://acme/tiny-gated" and recorded["base_model_revision"] == repo.sha
    assert kinds
