"""Stopping the local runner (SIGINT, SIGTERM) stops every process it started: no job or server outlives it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import TINY_INPUT

REPO_ROOT = Path(__file__).resolve().parents[2]


def processes_under(folder: Path) -> list[str]:
    """Command lines of live processes that mention `folder` (the runner's work folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in command:
            found.append(f"{entry.name}: {command[:160]}")
    return found


@pytest.fixture(scope="module")
def template_file(tmp_path_factory):
    from local_mode.stack import synthesize

    stack_name, template = synthesize(cache_dir=REPO_ROOT / ".cache" / "local-mode" / "templates")
    path = tmp_path_factory.mktemp("template") / f"{stack_name}.template.json"
    path.write_text(json.dumps(template))
    return path


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_runner_leaves_no_process_behind(tmp_path, template_file, stop_signal):
    run_input = json.loads(json.dumps(TINY_INPUT))
    run_input["training"]["hyperparameters"].update(max_steps=500, save_steps=1000)  # long enough to stop mid-way
    input_file = tmp_path / "input.json"
    input_file.write_text(json.dumps(run_input))
    workdir = tmp_path / "work"
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local_mode",
            "run",
            "--model",
            "tiny",
            "--input",
            str(input_file),
            "--workdir",
            str(workdir),
            "--template",
            str(template_file),
            "--brief-logs",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 600
    seen = []
    for line in runner.stdout:
        seen.append(line)
        if "-train]" in line and "step" in line:
            break  # the training process is running
        assert time.monotonic() < deadline, "".join(seen[-20:])
    else:
        pytest.fail("the runner ended before training started:\n" + "".join(seen[-30:]))
    assert processes_under(workdir), "the training job's process should be running now"
    runner.send_signal(stop_signal)
    rest, _ = runner.communicate(timeout=120)
    assert runner.returncode == 130, rest[-2000:]
    assert "local mode stopped" in rest
    time.sleep(1)
    assert processes_under(workdir) == []
