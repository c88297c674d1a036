"""FSDP end to end on two CPU processes (gloo), through launch.py and torchrun as a job runs it.

It shards, trains, writes FSDP checkpoints that resume, and ends with the adapter and merged model a
single process gives for the same seed, data and global batch; QLoRA trains under FSDP too; and the
merge at the end cannot trip a collective timeout.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from local_mode.job_network import build_job_network

from .conftest import REPO_ROOT_FOR_TESTS, run_training

TRAINING = REPO_ROOT_FOR_TESTS / "training"
# Same seed, data and global batch (2 processes x 4 = 1 process x 8); no dropout, no warm-up.
SETTINGS = {
    "max_steps": 3,
    "logging_steps": 1,
    "save_steps": 2,
    "gradient_checkpointing": "false",
    "max_length": 128,
    "learning_rate": 0.01,
    "batching": "padding",
    "lora_dropout": 0,
    "warmup_ratio": 0,
    "lora_r": 16,
    "lora_alpha": 32,
    "gradient_accumulation_steps": 1,
}
SHARD_LINE = re.compile(r"fsdp: parameters ([0-9.]+) MiB in all, ([0-9.]+) MiB held by each of 2 processes")
STEP_LOSS = re.compile(r"train_metrics: step=(\d+) loss=([0-9.]+)")


def _job_folder(root: Path, model_dir: Path, train_dir: Path, **hyperparameters) -> Path:
    opt_ml = root / "opt_ml"
    (opt_ml / "input" / "data").mkdir(parents=True)
    os.symlink(train_dir, opt_ml / "input" / "data" / "train")
    os.symlink(model_dir, opt_ml / "input" / "data" / "model")
    (opt_ml / "input" / "config").mkdir(parents=True)
    write_hyperparameters(opt_ml, hyperparameters)
    return opt_ml


def write_hyperparameters(opt_ml: Path, hyperparameters: dict) -> None:
    (opt_ml / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps({name: str(value) for name, value in hyperparameters.items()})
    )


def offline(command: list[str], folder: Path, **env: str) -> subprocess.CompletedProcess:
    """Run `command` as a network-isolated local job does (no interface but lo, where root allows),
    so its rendezvous port cannot meet another process on this machine."""
    network = build_job_network(["algo-1"], isolated=True, folder=folder / "network")
    try:
        return subprocess.run(
            network.command("algo-1", command),
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TRAINING), **env},
        )
    finally:
        network.close()


def launch_two_processes(opt_ml: Path) -> str:
    """`python3 launch.py train.py` with two processes on this host, as a job with 2 'GPUs' runs it."""
    result = offline(
        [sys.executable, str(TRAINING / "launch.py"), "train.py"],
        opt_ml.parent,
        OPT_ML=str(opt_ml),
        LAUNCH_NPROC_PER_NODE="2",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory, tiny_model_dir, sql_train_dir):
    opt_ml = _job_folder(
        tmp_path_factory.mktemp("fsdp"),
        tiny_model_dir,
        sql_train_dir,
        **SETTINGS,
        per_device_train_batch_size=4,
        fsdp="full_shard auto_wrap",
    )
    return opt_ml, launch_two_processes(opt_ml)


@pytest.fixture(scope="module")
def single_process_run(tmp_path_factory, tiny_model_dir, sql_train_dir):
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        output = run_training(
            tmp_path_factory.mktemp("single"), tiny_model_dir, sql_train_dir, **SETTINGS, per_device_train_batch_size=8
        )
    return output, stdout.getvalue()


def test_fsdp_shards_the_model_over_both_processes(fsdp_run):
    opt_ml, output = fsdp_run
    total, held = (float(value) for value in SHARD_LINE.search(output).groups())
    assert 0.4 <= held / total <= 0.6  # each process holds about half of every parameter
    checkpoint = opt_ml / "checkpoints" / "checkpoint-2"
    # accelerate's FSDP checkpoint format (adapter-only model state, sharded optimizer gathered on save).
    assert (checkpoint / "pytorch_model_fsdp.bin").is_file() and (checkpoint / "optimizer.bin").is_file()
    assert {path.name for path in checkpoint.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    metrics = json.loads((opt_ml / "model" / "training_metrics.json").read_text())
    assert metrics["num_processes"] == 2 and metrics["fsdp"] == "full_shard auto_wrap"
    assert metrics["global_step"] == 3


def test_fsdp_gives_the_adapter_and_merged_model_of_a_single_process_run(fsdp_run, single_process_run):
    opt_ml, output = fsdp_run
    single, single_stdout = single_process_run
    assert [float(loss) for _, loss in STEP_LOSS.findall(output)] == pytest.approx(
        [float(loss) for _, loss in STEP_LOSS.findall(single_stdout)], abs=1e-3
    )
    # The adapter is fp32; the merged model is saved in the serving dtype (bf16), where equal fp32
    # merges may still round one unit in the last place (2**-7 of the value) apart.
    for name, rtol, atol in (
        ("adapter/adapter_model.safetensors", 0.0, 1e-3),
        ("merged/model.safetensors", 2**-7, 1e-4),
    ):
        sharded, reference = load_file(opt_ml / "model" / name), load_file(single / name)
        assert set(sharded) == set(reference), name
        for key in reference:
            assert sharded[key].dtype == reference[key].dtype, (name, key)
            assert torch.allclose(sharded[key].float(), reference[key].float(), rtol=rtol, atol=atol), (name, key)
    merged = AutoModelForCausalLM.from_pretrained(opt_ml / "model" / "merged")
    assert "quantization_config" not in merged.config.to_dict()


def test_fsdp_checkpoints_resume(fsdp_run, tmp_path):
    finished, _ = fsdp_run
    opt_ml = tmp_path / "opt_ml"
    shutil.copytree(finished / "input", opt_ml / "input", symlinks=True)
    shutil.copytree(finished / "checkpoints", opt_ml / "checkpoints")
    write_hyperparameters(
        opt_ml, {**SETTINGS, "per_device_train_batch_size": 4, "fsdp": "full_shard auto_wrap", "max_steps": 5}
    )
    output = launch_two_processes(opt_ml)
    assert "pytorch_model_fsdp.bin" in output and "optimizer.bin" in output  # accelerate's FSDP loaders
    assert [int(step) for step, _ in STEP_LOSS.findall(output)] == [4, 5]
    metrics = json.loads((opt_ml / "model" / "training_metrics.json").read_text())
    assert metrics["global_step"] == 5 and metrics["resumed_from"].endswith("checkpoint-3")


def test_qlora_trains_under_fsdp_and_merges_into_unquantized_serving_weights(tmp_path, tiny_model_dir, sql_train_dir):
    opt_ml = _job_folder(
        tmp_path,
        tiny_model_dir,
        sql_train_dir,
        **{**SETTINGS, "max_steps": 2, "save_steps": 100},
        per_device_train_batch_size=4,
        fsdp="full_shard auto_wrap",
        quantization="4bit",
    )
    output = launch_two_processes(opt_ml)
    total, held = (float(value) for value in SHARD_LINE.search(output).groups())
    assert held < total
    metrics = json.loads((opt_ml / "model" / "training_metrics.json").read_text())
    assert metrics["quantization"] == "4bit" and metrics["num_processes"] == 2 and metrics["global_step"] == 2
    config = json.loads((opt_ml / "model" / "merged" / "config.json").read_text())
    assert "quantization_config" not in config  # merged into the unquantized base, never into 4-bit weights
    merged = AutoModelForCausalLM.from_pretrained(opt_ml / "model" / "merged", dtype="auto")
    # Merged from the unquantized base and saved in the serving dtype, never from 4-bit weights.
    assert config["dtype"] == "bfloat16"
    assert all(parameter.dtype == torch.bfloat16 for parameter in merged.parameters())


MERGE_SCRIPT = """
import datetime, os, sys, time
import torch.distributed as dist
from distributed_setup import release_ranks_then
dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=3))
rank = dist.get_rank()
def merge():
    time.sleep(8)            # a merge that takes longer than the collective timeout
    return "merged"
if sys.argv[1] == "released":
    print(f"rank {rank}:", release_ranks_then(merge, rank == 0), flush=True)
else:                        # the old way: the other ranks wait in a barrier while rank 0 merges
    result = merge() if rank == 0 else None
    dist.barrier()
    print(f"rank {rank}:", result, flush=True)
"""


@pytest.mark.parametrize("how", ["released", "waiting"])
def test_the_merge_cannot_trip_the_collective_timeout(tmp_path, how):
    script = tmp_path / "merge.py"
    script.write_text(MERGE_SCRIPT)
    result = offline(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_addr=127.0.0.1",
            "--master_port=29531",
            str(script),
            how,
        ],
        tmp_path,
    )
    if how == "released":
        assert result.returncode == 0, result.stderr[-3000:]
        assert "rank 0: merged" in result.stdout and "rank 1: None" in result.stdout
    else:  # proves the timeout is real: waiting for the merge in a collective fails the job
        assert result.returncode != 0 and "rank 1:" not in result.stdout
