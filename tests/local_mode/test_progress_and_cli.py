"""The progress display and the command line's checks of its arguments."""

import io
import re

import pytest

from local_mode.cli import build_parser, load_input
from local_mode.progress import Progress, format_summary


def test_training_lines_become_a_progress_bar_and_loops_show_once():
    stream = io.StringIO()
    progress = Progress(stream=stream, verbose=False)
    progress.total_steps["run-train"] = 10
    progress.job_line("run-train", "training", "train_metrics: step=5 loss=1.2345 learning_rate=0.0002")
    progress.job_line("run-train", "training", "some noisy library line")
    for _ in range(3):
        progress.state_event({"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "DescribeTrain"}})
    text = stream.getvalue()
    assert "step    5/10 [############............] loss=1.2345" in text
    assert "noisy" not in text
    assert text.count("> DescribeTrain") == 1


def test_summary_names_the_outcome():
    lines = "\n".join(
        format_summary(
            {
                "status": "FAILED",
                "error": "EvaluationGateFailed",
                "cause": "execution accuracy 0.1 vs minimum 0.6",
                "run_id": "r-1",
                "execution_name": "r",
                "jobs": [
                    {"name": "r-1-train", "kind": "training", "status": "Completed", "attempts": 2, "seconds": 61.4}
                ],
                "metrics": {
                    "base": {"execution_accuracy": 0.05, "count": 40},
                    "fine_tuned": {"execution_accuracy": 0.1},
                },
                "gate": {"passed": False, "reasons": ["fail: execution accuracy"]},
            }
        )
    )
    assert "Status: FAILED" in lines and "EvaluationGateFailed" in lines and "(2 attempts)" in lines
    assert "Completed in 61s (2 attempts)" in lines
    assert "execution_accuracy=0.050" in lines and "Gate:   failed" in lines


def test_bad_input_file_is_named(tmp_path):
    path = tmp_path / "input.json"
    path.write_text('{"dataset": ')
    with pytest.raises(SystemExit, match=re.escape("input.json: not JSON: line 1")):
        load_input(path)
    path.write_text("[1]")
    with pytest.raises(SystemExit, match="expected a JSON object, got list"):
        load_input(path)


def test_parser_defaults():
    args = build_parser().parse_args(["run"])
    assert args.model == "smollm2" and args.input.name == "local-input.json" and not args.serve
