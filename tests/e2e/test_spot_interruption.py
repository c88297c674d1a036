"""A managed-spot interruption mid-training: the job restarts and resumes from its checkpoint."""

import json

from local_mode.run import RunRequest, run_execution
from tests.e2e.conftest import EXAMPLE_DATA, local_aws


def test_training_resumes_from_the_checkpoint_after_an_interruption(stack_template, tiny_model, tiny_input, tmp_path):
    # Checkpoints far enough apart to stay on disk until the emulation has synced one (it interrupts right
    # after), and enough steps after it that the interruption lands mid-training.
    tiny_input["training"]["hyperparameters"].update(max_steps=200, save_steps=50)
    tiny_input["deployment"]["enabled"] = False
    with local_aws(tmp_path, stack_template, simulate_spot_interruption=True) as aws:
        summary = run_execution(
            aws, RunRequest(tiny_input, "spot", model_dir=tiny_model, dataset=EXAMPLE_DATA, timeout_seconds=600)
        )
    assert summary["status"] == "SUCCEEDED", (summary["error"], summary["cause"])
    train = next(job for job in summary["jobs"] if job["kind"] == "training")
    assert train["status"] == "Completed" and train["attempts"] == 2
    folder = tmp_path / "runs" / summary["run_id"]
    log = (folder / "jobs" / f"{summary['run_id']}-train" / "job.log").read_text()
    first_attempt, second_attempt = log.split("[local mode] attempt 2:")
    steps_before = [int(s.split()[0]) for s in first_attempt.split("train_metrics: step=")[1:]]
    steps_after = [int(s.split()[0]) for s in second_attempt.split("train_metrics: step=")[1:]]
    assert steps_before and steps_after
    assert steps_after[0] > 1, "the restarted job began again from step 1"
    assert steps_after[-1] == 200
    metrics = json.loads(next((folder / "s3").rglob("training_metrics.json")).read_text())
    assert "checkpoint-" in metrics["resumed_from"]
