"""The pieces behind the commands: history paging, training progress, the display, inputs, the connection file."""

import io
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from rich.console import Console

from llm_finetune_cli.display import WatchDisplay
from llm_finetune_cli.errors import CliError, ExitCode
from llm_finetune_cli.execution_input import with_dry_run, with_local_sources
from llm_finetune_cli.history import ExecutionHistory, RunState
from llm_finetune_cli.local_connection import LocalConnection, read_connection, require_connection
from llm_finetune_cli.training_progress import TrainingPoint, estimate, parse_metric_line, total_steps

REPO_ROOT = Path(__file__).resolve().parents[2]


class PagedHistory:
    """GetExecutionHistory as AWS pages it: maxResults per page, reverseOrder, an opaque nextToken."""

    def __init__(self):
        self.events: list[dict] = []
        self.calls: list[dict] = []

    def add(self, count: int) -> None:
        for _ in range(count):
            event_id = len(self.events) + 1
            self.events.append(
                {"id": event_id, "type": "PassStateEntered", "stateEnteredEventDetails": {"name": f"S{event_id}"}}
            )

    def get_execution_history(self, executionArn, maxResults, reverseOrder=False, nextToken=None):
        self.calls.append({"reverseOrder": reverseOrder, "maxResults": maxResults, "nextToken": nextToken})
        ordered = list(reversed(self.events)) if reverseOrder else list(self.events)
        if nextToken:
            token = json.loads(nextToken)
            ordered = list(reversed(self.events[: token["below"]])) if reverseOrder else self.events[token["from"] :]
        page = ordered[:maxResults]
        result = {"events": page}
        if len(ordered) > maxResults:
            result["nextToken"] = json.dumps(
                {"below": page[-1]["id"] - 1} if reverseOrder else {"from": page[-1]["id"]}
            )
        return result


def test_history_reads_one_page_per_poll_and_delivers_each_event_once_in_order():
    aws = PagedHistory()
    history = ExecutionHistory(aws, "arn", page_size=3)
    aws.add(2)
    assert [e["id"] for e in history.poll()] == [1, 2]
    assert [e["id"] for e in history.poll()] == []
    aws.add(7)  # more than a page arrived: three polls to read back to event 2
    delivered = []
    polls = 0
    while True:
        delivered += [e["id"] for e in history.poll()]
        polls += 1
        if history.caught_up:
            break
    assert delivered == [3, 4, 5, 6, 7, 8, 9] and polls == 3
    assert len(aws.calls) == 2 + polls, "one GetExecutionHistory call per poll"
    aws.add(1)
    assert [e["id"] for e in history.poll()] == [10]
    assert [e["id"] for e in history.events] == list(range(1, 11))
    assert all(call["reverseOrder"] and call["maxResults"] == 3 for call in aws.calls)


def test_history_read_all_of_a_long_execution():
    aws = PagedHistory()
    aws.add(25)
    assert [e["id"] for e in ExecutionHistory(aws, "arn", page_size=10).read_all()] == list(range(1, 26))


def test_run_state_keeps_the_workflow_state_and_the_started_jobs():
    run = RunState()
    run.add({"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "ValidateInput"}})
    run.add(
        {
            "type": "TaskStateExited",
            "stateExitedEventDetails": {
                "name": "ValidateInput",
                "output": json.dumps(
                    {
                        "deployment": {"endpoint_name": "from-input"},
                        "run": {"run_id": "r-1", "names": {"train": "r-1-train"}},
                    }
                ),
            },
        }
    )
    assert run.run["run_id"] == "r-1" and run.jobs == {}
    assert run.deployment is None, "the input's deployment group is not Deploy's result"
    run.add(
        {
            "type": "TaskStateExited",
            "stateExitedEventDetails": {
                "name": "StartTrain",
                "output": json.dumps({"jobs": {"train": {"name": "r-1-train", "status": "InProgress"}}}),
            },
        }
    )
    run.add(
        {
            "type": "TaskStateExited",
            "stateExitedEventDetails": {
                "name": "Deploy",
                "output": json.dumps({"deployment": {"endpoint_name": "sql", "endpoint_config_name": "r-1-cfg"}}),
            },
        }
    )
    run.add({"type": "TaskStateExited", "stateExitedEventDetails": {"name": "Big", "output": '{"truncated'}})
    assert run.jobs == {"train": "r-1-train"} and run.deployment["endpoint_name"] == "sql"
    assert run.current == "ValidateInput"


def test_metric_lines_parse_and_the_total_comes_from_max_steps_or_epochs():
    point = parse_metric_line(
        "2026 INFO train_metrics: step=12 loss=1.2345 learning_rate=0.0002 epoch=0.50 tokens_per_second=812.3", 5000
    )
    assert (point.step, point.loss, point.learning_rate, point.epoch, point.tokens_per_second, point.timestamp) == (
        12,
        1.2345,
        0.0002,
        0.5,
        812.3,
        5.0,
    )
    assert parse_metric_line("loss=1.0 no prefix") is None
    assert parse_metric_line("train_metrics: loss=1.0") is None
    assert total_steps({"max_steps": "100", "epochs": "3"}, point) == (100, False)
    assert total_steps({"max_steps": "-1", "epochs": "3"}, point) == (72, True)  # 12 steps were half an epoch
    assert total_steps({"max_steps": "-1"}, point) == (None, False)
    assert total_steps({"epochs": "3"}, None) == (None, False)


def test_time_left_comes_from_the_log_timestamps_of_recent_steps():
    points = [TrainingPoint(step=step, timestamp=100.0 + 2 * step) for step in range(1, 11)]
    progress = estimate(points, {"max_steps": "20"})
    assert progress.total == 20 and progress.seconds_left == pytest.approx(20.0)
    assert "step 10/20" in progress.describe() and "20s left" in progress.describe()
    unknown = estimate(points, {})
    assert unknown.total is None and unknown.seconds_left is None and "step 10/?" in unknown.describe()
    estimated = estimate([TrainingPoint(step=50, timestamp=1, epoch=0.25)], {"epochs": "1"})
    assert "step 50/~200" in estimated.describe()


def test_on_a_terminal_training_progress_is_a_bar():
    stream = io.StringIO()
    display = WatchDisplay(Console(file=stream, force_terminal=True, width=120))
    display.training(
        estimate(
            [TrainingPoint(step=1, timestamp=0, loss=2.0), TrainingPoint(step=5, timestamp=8, loss=1.5)],
            {"max_steps": "10"},
        )
    )
    display.close()
    text = stream.getvalue()
    assert "━" in text and "step 5/10" in text and "loss 1.5000" in text and "10s left" in text


def test_loop_states_are_shown_once_and_lambda_errors_by_their_message():
    stream = io.StringIO()
    display = WatchDisplay(Console(file=stream, width=200))
    for _ in range(3):
        display.event({"type": "WaitStateEntered", "stateEnteredEventDetails": {"name": "WaitForTrain"}})
    display.event(
        {
            "type": "LambdaFunctionFailed",
            "lambdaFunctionFailedEventDetails": {
                "error": "JobFailed",
                "cause": json.dumps(
                    {
                        "errorMessage": "train job r-train failed: CUDA out of memory",
                        "errorType": "JobFailed",
                        "stackTrace": ["..."],
                    }
                ),
            },
        }
    )
    text = stream.getvalue()
    assert text.count("WaitForTrain") == 1
    assert "! JobFailed: train job r-train failed: CUDA out of memory" in text and "stackTrace" not in text


def test_dry_run_and_local_sources_change_a_copy_of_the_input():
    original = {"orchestration": {"poll_interval_seconds": 1}, "dataset": {"hf_dataset_id": "x/y", "max_samples": 5}}
    assert with_dry_run(original)["orchestration"] == {"poll_interval_seconds": 1, "dry_run": True}
    with pytest.raises(CliError, match="orchestration: expected an object, got 3"):
        with_dry_run({"orchestration": 3})
    sources = {
        "base_model": {"s3_uri": "s3://data/models/tiny/"},
        "dataset": {"s3_uri": "s3://data/datasets/d.jsonl", "format": "sql-create-context"},
    }
    local = with_local_sources(original, sources)
    assert local["base_model"] == {"s3_uri": "s3://data/models/tiny/"}
    assert local["dataset"] == {
        "max_samples": 5,
        "s3_uri": "s3://data/datasets/d.jsonl",
        "format": "sql-create-context",
    }
    assert original["dataset"] == {"hf_dataset_id": "x/y", "max_samples": 5}


def test_local_sources_replace_the_input_as_local_mode_run_does(tmp_path):
    """The CLI's --local input and `python -m local_mode run`'s input agree for the same model and data set."""
    from local_mode.run import RunRequest, prepare_input

    class Account:
        data_bucket = "data"

        def substitute(self, value):
            return value

        def upload_folder(self, folder, uri):
            return uri

        def upload_file(self, path, uri):
            return uri

    model, dataset = tmp_path / "tiny", tmp_path / "d.jsonl"
    execution_input = {
        "base_model": {"hf_model_id": "Qwen/Qwen2.5-Coder-7B-Instruct"},
        "dataset": {
            "hf_dataset_id": "b-mc2/sql-create-context",
            "hf_split": "train",
            "test_size": 6,
            "format": "messages",
        },
        "training": {"use_spot": True},
    }
    sources = prepare_input(
        Account(), RunRequest({}, "", model_dir=model, dataset=dataset, dataset_format="sql-create-context")
    )
    expected = prepare_input(
        Account(),
        RunRequest(execution_input, "", model_dir=model, dataset=dataset, dataset_format="sql-create-context"),
    )
    assert with_local_sources(execution_input, sources) == expected


def test_a_connection_file_of_an_ended_server_is_not_a_running_account(tmp_path):
    assert read_connection(tmp_path) is None
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    LocalConnection("http://127.0.0.1:1", "us-east-1", "LlmFineTuning", int(ended.stdout), str(tmp_path)).write()
    assert read_connection(tmp_path) is None
    with pytest.raises(CliError, match="no local account is running in") as error:
        require_connection(tmp_path)
    assert error.value.code == ExitCode.NOT_FOUND and "local up" in str(error.value)
    LocalConnection("http://127.0.0.1:1", "us-east-1", "LlmFineTuning", os.getpid(), str(tmp_path)).write()
    assert read_connection(tmp_path).endpoint_url == "http://127.0.0.1:1"


def test_the_console_script_is_declared_and_packaged(tmp_path):
    """pyproject.toml installs `llm-finetune` with the CLI and local mode (what --local imports)."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"llm-finetune": "llm_finetune_cli.cli:main"}
    assert project["tool"]["pytest"]["ini_options"]["testpaths"] == ["tests"]
    setuptools = project["tool"]["setuptools"]
    # The code the constructs ship travels inside cdk_app (tests/cdk/test_wheel.py builds the wheel).
    assert setuptools["package-dir"] == {"cdk_app._assets.lambdas": "lambdas", "cdk_app._assets.training": "training"}
    packages = [name for name in setuptools["packages"] if not name.startswith("cdk_app._assets.")]
    found = sorted(
        str(path.parent.relative_to(REPO_ROOT)).replace("/", ".")
        for root in ("cdk_app", "llm_finetune_cli", "local_mode")
        for path in (REPO_ROOT / root).rglob("__init__.py")
    )
    assert sorted(packages) == found
    pins = (REPO_ROOT / "requirements.txt").read_text().splitlines()
    from importlib.metadata import version

    assert f"rich=={version('rich')}" in pins
    installed = Path(sys.executable).parent / "llm-finetune"
    if installed.exists():  # after `make setup`: the script that pip wrote runs
        result = subprocess.run([str(installed), "--help"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "start" in result.stdout and "watch" in result.stdout


def test_python_dash_m_runs_the_same_command(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "llm_finetune_cli", "--local", "--workdir", str(tmp_path), "list"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert result.returncode == ExitCode.NOT_FOUND
    assert f"no local account is running in {tmp_path}" in result.stderr


def test_the_docs_list_every_command_and_exit_code():
    from llm_finetune_cli.cli import build_parser

    text = (REPO_ROOT / "docs" / "deploy.md").read_text()
    section = text[text.index("## Command line") : text.index("## Start a run with the AWS CLI")]
    commands = next(action for action in build_parser()._actions if action.dest == "command").choices
    for name in commands:
        assert f"| `{name} " in section or f"| `{name}`" in section, name
    for code in ExitCode:
        assert f"\n| {int(code)} | " in section, code
