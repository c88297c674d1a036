"""The CLI against local mode: `local up` serves the emulated account, the other commands use it over HTTP.

One real run of the tiny model end to end (start --watch), then watch, logs, list and status of it,
a second execution stopped while it trains, and the server stopped with SIGTERM: no process of it
may outlive it. Every command runs as its own process, as a user's terminal would run it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from llm_finetune_cli.errors import ExitCode
from llm_finetune_cli.local_connection import connection_path
from local_mode.stack import synthesize
from tests.e2e.conftest import TINY_INPUT

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_CACHE = REPO_ROOT / ".cache" / "local-mode" / "templates"
SCHEMA = REPO_ROOT / "lambdas" / "common" / "execution_input.schema.json"
COMMAND_TIMEOUT = 900


@dataclass
class Result:
    code: int
    out: str
    err: str


def cli(workdir: Path, *args: str, timeout: float = COMMAND_TIMEOUT) -> Result:
    done = subprocess.run(
        [sys.executable, "-m", "llm_finetune_cli", "--local", "--workdir", str(workdir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
        env={**os.environ, "COLUMNS": "200"},
    )
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def template_file(tmp_path_factory):
    stack_name, template = synthesize(cache_dir=TEMPLATE_CACHE)
    path = tmp_path_factory.mktemp("template") / f"{stack_name}.template.json"
    path.write_text(json.dumps(template))
    return path


@pytest.fixture(scope="module")
def server(template_file, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cli-local")
    with open(workdir / "server.log", "w") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llm_finetune_cli",
                "--local",
                "--workdir",
                str(workdir),
                "local",
                "up",
                "--model",
                "tiny",
                "--template",
                str(template_file),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
        deadline = time.monotonic() + 600
        while not connection_path(workdir).exists():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"local up did not come up: {(workdir / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        try:
            yield process, workdir
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(60)


@pytest.fixture(scope="module")
def input_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    tiny = folder / "tiny.json"
    tiny.write_text(json.dumps(TINY_INPUT))
    long_training = json.loads(json.dumps(TINY_INPUT))
    long_training["training"]["hyperparameters"].update({"max_steps": 2000, "save_steps": 1000})
    (folder / "long.json").write_text(json.dumps(long_training))
    (folder / "bad.json").write_text(
        json.dumps({"training": {"instance_type": "ml.bogus"}, "orchestration": {"poll_interval_seconds": 1}})
    )
    return folder


@pytest.fixture(scope="module")
def finished_run(server, input_files):
    _, workdir = server
    return cli(workdir, "start", "--input", str(input_files / "tiny.json"), "--name", "cli-tiny", "--watch")


def test_start_watch_runs_the_tiny_model_to_a_deployed_endpoint(finished_run):
    run = finished_run
    assert run.code == ExitCode.SUCCEEDED, run.out[-4000:] + run.err[-2000:]
    out = run.out
    for state in (
        "ValidateInput",
        "StartTrain",
        "DescribeTrain",
        "Gate",
        "Register",
        "Deploy",
        "CheckEndpoint",
        "Succeeded",
    ):
        assert f"▶ {state}" in out
    assert out.count("▶ WaitForTrain") == 1
    assert "train job cli-tiny-" in out and ": Completed" in out
    assert "train step 4/4  loss " in out  # TINY_INPUT trains max_steps=4, logging every step
    assert "endpoint sql-assistant: InService" in out
    summary = out[out.index("Run cli-tiny-") :]
    assert "Status         SUCCEEDED" in summary
    assert "Gate           passed" in summary and "Model package  Approved" in summary
    assert "Endpoint       sql-assistant InService, answers checked: 2 of 2 as evaluated" in summary
    assert "--endpoint-url http://127.0.0.1:" in summary
    assert "Report         s3://" in summary and "/eval/report.html" in summary
    assert next(line for line in summary.splitlines() if line.startswith("count")).split() == ["count", "6", "6"]


def test_watch_of_the_finished_execution_prints_its_summary(server, finished_run):
    _, workdir = server
    run = cli(workdir, "watch", "cli-tiny")
    assert run.code == ExitCode.SUCCEEDED
    assert "execution SUCCEEDED" in run.out and "Status         SUCCEEDED" in run.out
    assert "Model package  Approved" in run.out and "Run folder" in run.out


def test_logs_of_the_training_job_show_its_train_metrics_lines(server, finished_run):
    _, workdir = server
    run = cli(workdir, "logs", "cli-tiny", "--job", "train")
    assert run.code == 0
    steps = [line.split()[1] for line in run.out.splitlines() if line.startswith("train_metrics: ")]
    assert steps == ["step=1", "step=2", "step=3", "step=4"]
    every = cli(workdir, "logs", "cli-tiny")
    assert "[prepare algo-1]" in every.out and "[train algo-1] train_metrics: step=4" in every.out
    assert "[evaluate algo-1]" in every.out


def test_list_and_status(server, finished_run):
    _, workdir = server
    listing = cli(workdir, "list")
    assert listing.code == 0 and any(line.split()[:2] == ["cli-tiny", "SUCCEEDED"] for line in listing.out.splitlines())
    summary = json.loads(cli(workdir, "status", "cli-tiny", "--json").out)
    assert summary["status"] == "SUCCEEDED" and summary["gate"]["passed"] is True
    assert [(job["kind"], job["status"]) for job in summary["jobs"]] == [
        ("prepare", "Completed"),
        ("train", "Completed"),
        ("evaluate", "Completed"),
        ("serving_check", "Completed"),
    ]
    assert summary["metrics"]["fine_tuned"]["count"] == 6
    assert summary["training"]["step"] == 4 and summary["training"]["total_steps"] == 4
    overview = cli(workdir, "status")
    assert (
        overview.code == 0
        and "StateMachineArn" in overview.out
        and "local account at http://127.0.0.1:" in overview.out
    )


@pytest.mark.skipif("dry_run" not in SCHEMA.read_text(), reason="the workflow has no orchestration.dry_run yet")
def test_dry_run_runs_the_preflight_only(server, input_files):
    _, workdir = server
    run = cli(workdir, "start", "--input", str(input_files / "tiny.json"), "--dry-run")
    assert run.code == ExitCode.SUCCEEDED, run.out[-3000:]
    assert "Preflight: passed" in run.out and "StartPrepare" not in run.out


@pytest.mark.skipif("dry_run" in SCHEMA.read_text(), reason="the workflow knows orchestration.dry_run")
def test_dry_run_on_a_stack_without_it_says_so(server, input_files):
    _, workdir = server
    run = cli(workdir, "start", "--input", str(input_files / "tiny.json"), "--dry-run")
    assert run.code == ExitCode.FAILED
    assert "orchestration.dry_run: unknown key" in run.out and "The stack does not know dry runs" in run.out


def test_stop_a_running_execution(server, input_files, finished_run):
    _, workdir = server
    started = cli(workdir, "start", "--input", str(input_files / "long.json"), "--name", "cli-stop")
    assert started.code == 0 and "started cli-stop" in started.out
    deadline = time.monotonic() + 300
    while True:
        status = json.loads(cli(workdir, "status", "cli-stop", "--json").out)
        if any(job["kind"] == "train" and job["status"] == "InProgress" for job in status["jobs"]):
            break
        assert status["status"] == "RUNNING" and time.monotonic() < deadline, status
        time.sleep(1)
    stopped = cli(workdir, "stop", "cli-stop")
    assert stopped.code == 0 and "stopped cli-stop: ABORTED" in stopped.out
    watched = cli(workdir, "watch", "cli-stop")
    assert watched.code == ExitCode.ABORTED and "Status         ABORTED" in watched.out


def test_sigterm_stops_the_server_and_every_process_it_started(server, finished_run):
    process, workdir = server
    descendants = _descendants(process.pid)
    assert descendants, "the endpoint server of the finished run is a child of local up"
    process.send_signal(signal.SIGTERM)
    assert process.wait(180) == 0
    deadline = time.monotonic() + 30
    while [pid for pid in descendants if _alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [pid for pid in descendants if _alive(pid)], "a job or endpoint process outlived local up"
    assert not connection_path(workdir).exists()
    run_folder = next((workdir / "runs").glob("cli-tiny-*"))
    assert json.loads((run_folder / "summary.json").read_text())["status"] == "SUCCEEDED"
    after = cli(workdir, "list")
    assert after.code == ExitCode.NOT_FOUND and "no local account is running" in after.err


def test_start_watch_without_a_server_runs_the_account_in_its_own_process(input_files, template_file, tmp_path):
    shutil.copytree(TEMPLATE_CACHE, tmp_path / "templates")  # the synthesized app, not synthesized again
    run = cli(tmp_path, "start", "--input", str(input_files / "bad.json"), "--watch", "--model", "tiny")
    assert run.code == ExitCode.FAILED, run.out + run.err
    assert "▶ ValidateInput" in run.out and "execution FAILED: InvalidInput" in run.out
    assert 'training.instance_type: "ml.bogus" is not allowed' in run.out
    assert "the local account stops with this command" in run.err
    assert not connection_path(tmp_path).exists()


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
