"""launch.py: installs only what is missing (from the wheelhouse), and starts torchrun or python as the job needs."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import launch
import pytest

from local_mode.job_network import build_job_network

from .conftest import REPO_ROOT_FOR_TESTS


def _resourceconfig(opt_ml: Path, hosts, current, interface="eth0") -> None:
    config = opt_ml / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": current, "hosts": hosts, "network_interface_name": interface})
    )


def test_two_hosts_with_four_gpus_each_run_torchrun_on_the_second_node(tmp_path):
    _resourceconfig(tmp_path, ["algo-1", "algo-2"], "algo-2")
    cluster = launch.read_cluster(tmp_path, {"SM_NUM_GPUS": "4"})
    command = launch.build_command(Path("/code/train.py"), ["--epochs", "1"], cluster, python="python3")
    assert command == [
        "python3",
        "-m",
        "torch.distributed.run",
        "--nnodes=2",
        "--node_rank=1",
        "--nproc_per_node=4",
        "--master_addr=algo-1",
        "--master_port=29500",
        "/code/train.py",
        "--epochs",
        "1",
    ]
    env = launch.child_environment(cluster, {"PATH": "/bin"})
    assert env["NCCL_SOCKET_IFNAME"] == "eth0" and env["GLOO_SOCKET_IFNAME"] == "eth0"


def test_one_host_with_several_gpus_uses_torchrun_locally(tmp_path):
    _resourceconfig(tmp_path, ["algo-1"], "algo-1")
    cluster = launch.read_cluster(tmp_path, {"SM_NUM_GPUS": "8"})
    command = launch.build_command(Path("/code/train.py"), [], cluster, python="python3")
    assert command[3:6] == ["--nnodes=1", "--node_rank=0", "--nproc_per_node=8"]
    assert "--master_addr=127.0.0.1" in command
    assert "NCCL_SOCKET_IFNAME" not in launch.child_environment(cluster, {})


def test_one_gpu_or_cpu_runs_plain_python(tmp_path):
    _resourceconfig(tmp_path, ["algo-1"], "algo-1")
    cluster = launch.read_cluster(tmp_path, {"SM_NUM_GPUS": "1"})
    assert launch.build_command(Path("/code/train.py"), ["--x", "1"], cluster, python="python3") == [
        "python3",
        "/code/train.py",
        "--x",
        "1",
    ]
    no_config = launch.read_cluster(tmp_path / "elsewhere", {"SM_NUM_GPUS": "0"})
    assert no_config.hosts == ("localhost",) and not no_config.distributed


def test_other_scripts_never_run_distributed(tmp_path):
    _resourceconfig(tmp_path, ["algo-1", "algo-2"], "algo-1")
    cluster = launch.read_cluster(tmp_path, {"SM_NUM_GPUS": "4"})
    assert launch.build_command(Path("/code/evaluate.py"), ["--a"], cluster, python="python3") == [
        "python3",
        "/code/evaluate.py",
        "--a",
    ]


def test_forced_process_count_and_unknown_current_host(tmp_path):
    assert launch.read_cluster(tmp_path, {"LAUNCH_NPROC_PER_NODE": "2"}).processes_per_host == 2
    _resourceconfig(tmp_path, ["algo-1"], "algo-9")
    with pytest.raises(ValueError, match="current_host 'algo-9' is not among hosts"):
        launch.read_cluster(tmp_path, {})


def test_only_missing_or_different_versions_are_installed(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "# pinned\ntransformers==5.23.0\ntrl[peft]==1.16.0\n\npeft==0.21.2  # adapters\n-r other.txt\n"
    )
    pins = launch.read_pins(requirements)
    assert pins == [("transformers", "5.23.0"), ("trl", "1.16.0"), ("peft", "0.21.2")]
    installed = {"transformers": "5.23.0", "trl": "1.15.0"}
    assert launch.missing_pins(pins, installed.get) == ["trl==1.16.0", "peft==0.21.2"]
    assert launch.missing_pins(pins, {"transformers": "5.23.0", "trl": "1.16.0", "peft": "0.21.2"}.get) == []


def test_nothing_is_installed_when_the_environment_satisfies_every_pin(monkeypatch, tmp_path):
    # This repository's own environment is built from training/requirements.txt.
    pins = launch.read_pins(REPO_ROOT_FOR_TESTS / "training" / "requirements.txt")
    assert pins and launch.missing_pins(pins) == []
    calls = []
    monkeypatch.setattr(launch.wheelhouse, "install", lambda *args, **kwargs: calls.append(args))
    executed = []
    launch.main(
        ["train.py", "--max_steps", "1"],
        environ={"OPT_ML": str(tmp_path), "SM_NUM_GPUS": "0"},
        execute=lambda path, argv, env: executed.append(argv),
    )
    assert calls == []
    assert executed == [[sys.executable, str(launch.HERE / "train.py"), "--max_steps", "1"]]


def test_a_missing_pin_without_a_wheelhouse_fails_the_job_with_what_to_run(monkeypatch, tmp_path):
    monkeypatch.setattr(launch, "missing_pins", lambda pins: ["trl==1.16.0"])
    monkeypatch.setattr(launch, "HERE", tmp_path / "code")
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "requirements.txt").write_text("trl==1.16.0\n")
    (tmp_path / "code" / "train.py").write_text("")
    with pytest.raises(SystemExit, match="make wheelhouse"):
        launch.main(["train.py"], environ={"OPT_ML": str(tmp_path / "opt_ml")}, execute=lambda *args: None)
    failure = (tmp_path / "opt_ml" / "output" / "failure").read_text()
    assert "wheelhouse/manifest.json not found" in failure and "make wheelhouse" in failure


def test_unknown_script_is_reported():
    with pytest.raises(FileNotFoundError, match=re.escape("'nope.py' not found")):
        launch.main(["nope.py"], environ={}, execute=lambda *args: None)


def test_torchrun_with_two_cpu_processes_trains(tmp_path, tiny_model_dir, sql_train_dir):
    opt_ml = tmp_path / "opt_ml"
    (opt_ml / "input" / "data").mkdir(parents=True)
    os.symlink(sql_train_dir, opt_ml / "input" / "data" / "train")
    os.symlink(tiny_model_dir, opt_ml / "input" / "data" / "model")
    config = opt_ml / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(
        json.dumps(
            {
                "max_steps": "3",
                "per_device_train_batch_size": "4",
                "gradient_accumulation_steps": "1",
                "logging_steps": "1",
                "save_steps": "100",
                "gradient_checkpointing": "false",
                "max_length": "128",
                "learning_rate": "0.01",
                "batching": "padding",
            }
        )
    )
    env = {
        **os.environ,
        "OPT_ML": str(opt_ml),
        "LAUNCH_NPROC_PER_NODE": "2",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO_ROOT_FOR_TESTS / "training"),
    }
    # In a network namespace of its own where root allows: torchrun's port meets no other process here.
    network = build_job_network(["algo-1"], isolated=True, folder=tmp_path / "network")
    try:
        result = subprocess.run(
            network.command(
                "algo-1", [sys.executable, str(REPO_ROOT_FOR_TESTS / "training" / "launch.py"), "train.py"]
            ),
            env=env,
            capture_output=True,
            text=True,
            timeout=540,
        )
    finally:
        network.close()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "torch.distributed.run" in result.stdout and "--nproc_per_node=2" in result.stdout
    metrics = json.loads((opt_ml / "model" / "training_metrics.json").read_text())
    assert metrics["num_processes"] == 2 and metrics["global_step"] == 3
    # Each optimizer step consumed one batch per process.
    assert metrics["real_tokens"] > 0
    assert result.stdout.count("train_metrics: step=") == 3  # printed by the main process only
    assert (opt_ml / "model" / "merged" / "model.safetensors").is_file()


def test_in_a_serving_image_only_the_scripts_absent_extras_are_added(monkeypatch, tmp_path):
    pins = [("transformers", "5.23.0"), ("sqlglot", "30.30.0")]
    assert launch.image_extras("evaluate.py", pins, {}.get) == ["sqlglot==30.30.0"]
    # an image that has sqlglot at any version keeps it; other scripts get nothing
    assert launch.image_extras("evaluate.py", pins, {"sqlglot": "25.0.0"}.get) == []
    assert launch.image_extras("check_serving.py", pins, {}.get) == []
    installed = []
    monkeypatch.setattr(launch, "image_extras", lambda script, pins: ["sqlglot==30.30.0"])
    monkeypatch.setattr(
        launch.wheelhouse, "install_pure", lambda requirements, house, target: installed.append((requirements, target))
    )
    monkeypatch.setattr(launch.wheelhouse, "install", lambda *a, **k: pytest.fail("the image's software was replaced"))
    executed = []
    launch.main(
        ["--image-software", "evaluate.py", "--skip-base"],
        environ={"OPT_ML": str(tmp_path), "PYTHONPATH": "/image/lib"},
        execute=lambda path, argv, env: executed.append((argv, env)),
    )
    [(requirements, target)] = installed
    [(argv, env)] = executed
    assert requirements == ["sqlglot==30.30.0"]
    assert argv == [sys.executable, str(launch.HERE / "evaluate.py"), "--skip-base"]
    assert env["PYTHONPATH"] == f"{target}{os.pathsep}/image/lib"


def test_the_images_cuda_compat_script_sets_the_library_path_as_its_entrypoint_would(tmp_path):
    script = tmp_path / "start_cuda_compat.sh"
    script.write_text(
        'echo "[cuda-compat] enabling"\nexport LD_LIBRARY_PATH="/usr/local/cuda/compat:${LD_LIBRARY_PATH:-}"\n'
    )
    env = launch.cuda_compat_environment({"PATH": os.environ["PATH"], "LD_LIBRARY_PATH": "/opt/lib"}, script)
    assert env["LD_LIBRARY_PATH"] == "/usr/local/cuda/compat:/opt/lib"
    assert launch.cuda_compat_environment({"PATH": os.environ["PATH"]}, tmp_path / "absent.sh") == {
        "PATH": os.environ["PATH"]
    }
    script.write_text("return 3\n")  # a script that fails leaves the host driver's libraries in place
    assert launch.cuda_compat_environment({"PATH": os.environ["PATH"]}, script) == {"PATH": os.environ["PATH"]}
