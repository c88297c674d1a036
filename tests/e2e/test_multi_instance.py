"""The workflow with a training job of two instances: two hosts, one torchrun job, one merged model."""

import json
import math

import pytest
from transformers import AutoModelForCausalLM

from local_mode.job_network import namespaces_available
from local_mode.run import RunRequest, run_execution
from tests.e2e.conftest import EXAMPLE_DATA, local_aws


@pytest.mark.skipif(not namespaces_available(), reason="several hosts need network namespaces (root)")
def test_two_instances_rendezvous_train_on_the_global_batch_and_merge(stack_template, tiny_model, tiny_input, tmp_path):
    tiny_input["training"]["instance_count"] = 2
    # Whole epochs, so the step count follows from the rows and the global batch (2 hosts x 4 rows).
    tiny_input["training"]["hyperparameters"].update(
        max_steps=-1, epochs=1, per_device_train_batch_size=4, save_steps=100, max_length=384
    )
    tiny_input["deployment"]["enabled"] = False
    with local_aws(tmp_path, stack_template) as aws:
        summary = run_execution(
            aws, RunRequest(tiny_input, "two-hosts", model_dir=tiny_model, dataset=EXAMPLE_DATA, timeout_seconds=600)
        )
        run_id = summary["run_id"]
        request = json.loads((tmp_path / "runs" / run_id / "jobs" / f"{run_id}-train" / "request.json").read_text())
    assert summary["status"] == "SUCCEEDED", (summary["error"], summary["cause"])
    assert request["ResourceConfig"]["InstanceCount"] == 2 and request["EnableInterContainerTrafficEncryption"]
    folder = tmp_path / "runs" / run_id / "jobs" / f"{run_id}-train"
    second = json.loads((folder / "algo-2" / "opt_ml" / "input" / "config" / "resourceconfig.json").read_text())
    assert second["current_host"] == "algo-2" and second["hosts"] == ["algo-1", "algo-2"]
    log = (folder / "job.log").read_text()
    # The real launch.py -> torchrun path, rendezvous at algo-1 over the job's own network.
    assert "[algo-2] launch:" in log and "--nnodes=2 --node_rank=1 --nproc_per_node=1 --master_addr=algo-1" in log
    metrics = json.loads(next((tmp_path / "runs" / run_id / "s3").rglob("training_metrics.json")).read_text())
    assert metrics["num_processes"] == 2 and metrics["train_rows"] > 32
    assert metrics["global_step"] == math.ceil(metrics["train_rows"] / (4 * 2))  # one process alone: rows / 4
    merged = next((tmp_path / "runs" / run_id / "s3").rglob("merged/model.safetensors")).parent
    assert AutoModelForCausalLM.from_pretrained(merged).config.use_cache is True
    assert summary["metrics"]["fine_tuned"]["count"] == 6  # evaluated like a one-instance run
