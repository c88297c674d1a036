"""The CPU benchmarks' bookkeeping: pairing, verdicts, job intervals; no model is run here."""

from __future__ import annotations

import json
import os

import pytest

from benchmarks import eval_throughput, train_throughput, workflow_overhead
from benchmarks.eval_throughput import count_differences


def run(repeat, strategy, tokens_per_second, padding=0.0):
    return {
        "repeat": repeat,
        "strategy": strategy,
        "real_tokens_per_second": tokens_per_second,
        "padding_share": padding,
        "peak_rss_bytes": 100,
        "steps": 4,
        "rows_trained": 32,
        "sft_config": {},
    }


def test_ratios_are_paired_within_each_repeat():
    runs = [run(0, "padding", 100), run(0, "packing", 50), run(1, "padding", 200), run(1, "packing", 120)]
    summaries = train_throughput.summarize(["padding", "packing"], runs, auto="packing")
    packing = summaries[1]
    assert packing["role"] == "train_py_auto"
    assert packing["ratio_to_trl_defaults"]["min"] == pytest.approx(0.5)
    assert packing["ratio_to_trl_defaults"]["max"] == pytest.approx(0.6)
    verdict = train_throughput.verdict(summaries, auto="packing")
    assert verdict["fastest_measured"] == "padding" and verdict["auto_is_fastest"] is False


def test_combined_strategy_merges_train_py_settings():
    settings = train_throughput.batching_settings("padding_free+group_by_length")
    kwargs = settings.sft_config_kwargs(2048)
    assert kwargs["padding_free"] is True and kwargs["packing"] is False
    assert kwargs["train_sampling_strategy"] == "group_by_length"
    assert kwargs["max_length"] is None  # padding-free without packing takes rows already truncated


def test_unknown_strategy_is_refused_with_the_allowed_names(capsys):
    with pytest.raises(SystemExit):
        train_throughput.parse_args(["--strategies", "padding,zigzag"])
    error = capsys.readouterr().err
    assert "'zigzag' is not allowed" in error and "packing" in error


def test_job_intervals_fall_back_to_the_job_folders(tmp_path):
    folder = tmp_path / "jobs" / "r-train"
    folder.mkdir(parents=True)
    (folder / "request.json").write_text("{}")
    (folder / "job.log").write_text("done\n")
    os.utime(folder / "request.json", (1000.0, 1000.0))
    os.utime(folder / "job.log", (1042.5, 1042.5))
    summary = {"run_folder": str(tmp_path), "jobs": [{"name": "r-train", "kind": "training", "status": "Completed"}]}
    (interval,) = workflow_overhead.job_intervals(summary)
    assert interval["seconds"] == pytest.approx(42.5)
    assert interval["source"] == "job folder timestamps"


def test_job_intervals_prefer_times_in_the_summary():
    summary = {
        "run_folder": None,
        "jobs": [
            {
                "name": "a",
                "kind": "processing",
                "started": "2026-11-27T10:00:00+00:00",
                "ended": "2026-11-27T10:00:30+00:00",
            }
        ],
    }
    assert workflow_overhead.job_intervals(summary)[0]["seconds"] == pytest.approx(30.0)


def test_orchestration_is_execution_minus_time_covered_by_jobs():
    jobs = [{"start": 0.0, "end": 10.0}, {"start": 5.0, "end": 12.0}, {"start": 20.0, "end": 30.0}]
    assert workflow_overhead.busy_seconds(jobs) == pytest.approx(22.0)
    split = workflow_overhead.split_run(50.0, {"seconds": 40.0, "status": "SUCCEEDED"}, jobs)
    assert split["orchestration_seconds"] == pytest.approx(18.0)
    assert split["startup_seconds"] == pytest.approx(10.0)
    assert split["orchestration_share_of_wall"] == pytest.approx(18.0 / 50.0)


def test_endpoint_start_up_is_counted_apart_from_jobs_and_orchestration():
    summary = {
        "run_folder": None,
        "seconds": 40.0,
        "status": "SUCCEEDED",
        "jobs": [
            {
                "name": "a",
                "kind": "training",
                "started": "2026-11-27T10:00:00+00:00",
                "ended": "2026-11-27T10:00:20+00:00",
            }
        ],
        "endpoint": {
            "deployments": [
                {
                    "endpoint": "e",
                    "config": "c",
                    "action": "create",
                    "status": "InService",
                    "started": "2026-11-27T10:00:25+00:00",
                    "ended": "2026-11-27T10:00:33+00:00",
                }
            ]
        },
    }
    intervals = workflow_overhead.job_intervals(summary)
    assert [interval["kind"] for interval in intervals] == ["training", "endpoint"]
    split = workflow_overhead.split_run(45.0, summary, intervals)
    assert split["job_seconds"] == pytest.approx(20.0)
    assert split["endpoint_startup_seconds"] == pytest.approx(8.0)
    assert split["orchestration_seconds"] == pytest.approx(12.0)


def test_count_differences():
    assert count_differences(["a", "b", "c"], ["a", "x", "c"]) == [1]


def test_sampled_batches_come_from_one_epoch_and_group_lengths_when_asked():
    from benchmarks.sampling import epoch_batches, sample_batches

    lengths = [(index * 37) % 101 + 1 for index in range(640)]
    grouped = sample_batches(lengths, batch_size=8, group_by_length=True, steps=6, seed=3)
    shuffled = sample_batches(lengths, batch_size=8, group_by_length=False, steps=6, seed=3)
    assert len(grouped) == 6 and all(len(batch) == 8 for batch in grouped)
    assert len({index for batch in grouped for index in batch}) == 48  # no row twice
    assert grouped == sample_batches(lengths, batch_size=8, group_by_length=True, steps=6, seed=3)

    def padding(batches):
        return sum(max(lengths[i] for i in batch) * len(batch) - sum(lengths[i] for i in batch) for batch in batches)

    assert padding(grouped) < padding(shuffled) / 4
    assert len(epoch_batches(lengths, 8, False, seed=0)) == 80
    with pytest.raises(ValueError, match="make only 80 batches"):
        sample_batches(lengths, batch_size=8, group_by_length=False, steps=81, seed=0)


def test_open_gate_input_keeps_the_demo_input_and_zeroes_the_thresholds(tmp_path):
    written = json.loads(workflow_overhead.open_gate_input(tmp_path / "input.json").read_text())
    demo = json.loads(workflow_overhead.DEMO_INPUT.read_text())
    assert written["training"] == demo["training"]
    assert written["evaluation"]["gate"] == {
        "min_execution_accuracy": 0,
        "min_improvement_over_base": 0,
        "compare_to_production": False,
    }


def test_measured_runs_use_the_demo_hyperparameters_with_fixed_steps_and_no_saving():
    from hyperparameters import build_hyperparameters

    values = train_throughput.run_hyperparameters(
        train_throughput.demo_hyperparameters(), steps=6, batch_size=4, max_length=256, seed=1
    )
    hyperparameters = build_hyperparameters(values)  # train.py accepts them
    assert (hyperparameters.max_steps, hyperparameters.per_device_train_batch_size) == (6, 4)
    assert hyperparameters.quantization == "none" and hyperparameters.save_steps == 10_000


def test_eval_throughput_takes_vllm_dtypes_or_none_and_every_prompt_in_flight_by_default(capsys):
    args = eval_throughput.parse_args(["--prompts", "24", "--vllm-dtypes", "bfloat16,float32,bfloat16"])
    assert args.vllm_dtypes == ["bfloat16", "float32"] and args.vllm_batch_size == 24
    assert eval_throughput.parse_args(["--vllm-dtypes", "none"]).vllm_dtypes == []
    with pytest.raises(SystemExit):
        eval_throughput.parse_args(["--vllm-dtypes", "int4"])
    assert "--vllm-dtypes: 'int4' is not allowed" in capsys.readouterr().err


def test_eval_throughput_says_why_vllm_is_not_measured(tmp_path):
    python, reason = eval_throughput.vllm_python(str(tmp_path / "missing" / "python"))
    assert python is None and reason == f"--vllm-python {tmp_path / 'missing' / 'python'} does not exist"
