"""Fine-tuning throughput on this machine: trl's defaults against each batching strategy of train.py.

Every variant fine-tunes the same model with the same LoRA settings, batch size and number of
optimizer steps, from the same pool of rows, built by train.py's own functions (tokenization with
assistant-only labels, model loading, SFTConfig, trainer), so the only difference is how rows
become batches. The measured batches are a random sample of the batches a whole epoch over the
pool would have (see benchmarks/sampling.py); packed variants train on packs of the whole pool.
Each (variant, repeat) runs in a fresh process, so peak memory (RSS) is the variant's own and no
variant inherits another's warm caches. Repeats draw different batches and interleave the
variants in rotating order; ratios are paired within a repeat, and the median and range over
repeats are reported.

    python -m benchmarks.train_throughput                 # SmolLM2-135M, real text-to-SQL rows
    python -m benchmarks.train_throughput --model tiny    # a quick check

Rows come from ../shared/datasets/sql-create-context-4k.jsonl (beside the repository) when that
file exists, else from the project's generated examples/data/sql-example.jsonl. Batch size and
the other training hyperparameters are the local demo's (examples/local-input.json).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import result_file
from benchmarks.machine import default_threads
from benchmarks.measure import spread
from benchmarks.strategies import DEFAULTS, auto_choice, single_strategies
from local_mode import training_code

REPO_ROOT = Path(__file__).resolve().parent.parent

# training/'s modules (train.py, evaluate.py ...) by bare name, as the job imports them.
training_code.enable()

SHARED_DATASET = REPO_ROOT.parent / "shared" / "datasets" / "sql-create-context-4k.jsonl"
DEMO_INPUT = REPO_ROOT / "examples" / "local-input.json"
EXAMPLE_DATASET = REPO_ROOT / "examples" / "data" / "sql-example.jsonl"
RESULT_NAME = "train_throughput"
DEFAULT_STRATEGIES = ("padding", "group_by_length", "padding_free", "packing", "padding_free+group_by_length")


@dataclass(frozen=True)
class RunSpec:
    """One fine-tuning run (one variant, one repeat), handed to a worker process as JSON."""

    model: str
    strategy: str
    rows_file: str
    steps: int
    hyperparameters: dict[str, Any]  # train.py hyperparameters, as an execution input gives them
    threads: int
    seed: int


# ---------------------------------------------------------------------------------------------- data


def dataset_source() -> tuple[Path, str]:
    """The real text-to-SQL rows when they are beside the repository, else the generated examples."""
    if SHARED_DATASET.is_file():
        return SHARED_DATASET, "sql-create-context (4,000 public rows, ../shared/datasets)"
    return EXAMPLE_DATASET, "generated text-to-SQL examples (examples/data/sql-example.jsonl)"


def load_conversations(path: Path, count: int, seed: int) -> list[list[dict]]:
    """`count` rows drawn at random (seeded) and converted to chat messages the way prepare_data does."""
    from data_formats import RowError, to_messages

    rows = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                rows.append((number, json.loads(line)))
    if count > len(rows):
        raise ValueError(f"--pool-rows {count}: {path.name} holds only {len(rows)} rows")
    conversations = []
    for _number, row in random.Random(seed).sample(rows, len(rows)):
        try:
            conversations.append(to_messages(row, "sql-create-context"))
        except RowError:
            continue  # prepare_data drops such rows too
        if len(conversations) == count:
            return conversations
    raise ValueError(f"{path.name}: only {len(conversations)} usable rows, {count} needed")


# ---------------------------------------------------------------------------------------------- worker


def batching_settings(strategy: str):
    """train.py's BatchingSettings for a strategy, or the union of several joined by '+'."""
    from batching import BatchingSettings, resolve

    parts = [resolve(part, "cpu") for part in strategy.split("+")]
    return BatchingSettings(
        strategy=strategy,
        packing=any(part.packing for part in parts),
        padding_free=any(part.padding_free for part in parts),
        group_by_length=any(part.group_by_length for part in parts),
    )


FALLBACK_HYPERPARAMETERS = {
    "per_device_train_batch_size": 4,
    "max_length": 256,
    "lora_r": 16,
    "lora_alpha": 32,
    "gradient_checkpointing": False,
}


def demo_hyperparameters() -> dict[str, Any]:
    """The training hyperparameters of the local demo's execution input (a fallback if it is missing)."""
    try:
        return dict(json.loads(DEMO_INPUT.read_text())["training"]["hyperparameters"])
    except (OSError, KeyError, ValueError, TypeError):
        return dict(FALLBACK_HYPERPARAMETERS)


def run_hyperparameters(base: dict[str, Any], steps: int, batch_size: int, max_length: int, seed: int) -> dict:
    """The demo's hyperparameters for a measured run: fixed steps, LoRA without quantization, no saving."""
    return {
        **base,
        "max_steps": steps,
        "per_device_train_batch_size": batch_size,
        "max_length": max_length,
        "gradient_accumulation_steps": 1,
        "quantization": "none",
        "logging_steps": 10_000,
        "save_steps": 10_000,
        "warmup_ratio": 0.0,
        "seed": seed,
        "fsdp": "",
    }


def run_worker(spec: RunSpec) -> dict[str, Any]:
    """Fine-tune `spec.steps` optimizer steps with train.py's functions; return the figures."""
    import resource

    import torch

    torch.set_num_threads(spec.threads)
    from chat_format import ensure_chat_template
    from hyperparameters import build_hyperparameters
    from job_paths import Paths
    from metrics_logging import TokenCounter
    from model_loading import load_training_model
    from run_settings import RunSettings
    from sft_config import build_sft_config
    from sft_trainer import make_trainer
    from training_data import tokenize_conversations
    from transformers import AutoTokenizer

    from benchmarks.measure import CountingCollator, make_step_timer, step_records
    from benchmarks.sampling import sample_batches
    from local_mode.models import prepare_model

    conversations = json.loads(Path(spec.rows_file).read_text())
    source = str(prepare_model(spec.model))
    tokenizer = ensure_chat_template(AutoTokenizer.from_pretrained(source))
    hyperparameters = build_hyperparameters(spec.hyperparameters)
    batch_size, max_length = hyperparameters.per_device_train_batch_size, hyperparameters.max_length
    dataset, dropped = tokenize_conversations(tokenizer, list(enumerate(conversations, start=1)), max_length)
    batching = batching_settings(spec.strategy)
    if not batching.packing:
        lengths = [len(ids) for ids in dataset["input_ids"]]
        batches = sample_batches(lengths, batch_size, batching.group_by_length, spec.steps, spec.seed)
        dataset = dataset.select([index for batch in batches for index in batch])
    settings = RunSettings(device="cpu", quantize_4bit=False, batching=batching, model_source=source, num_processes=1)
    model = load_training_model(source, settings, hyperparameters, None)
    with tempfile.TemporaryDirectory(prefix="train-bench-") as scratch:
        root = Path(scratch)
        paths = Paths(
            train_dir=root,
            base_model_dir=root / "model",
            output_dir=root / "out",
            checkpoint_dir=root / "checkpoints",
            hyperparameters_file=root / "hp.json",
            failure_file=root / "failure",
        )
        sft_config = build_sft_config(paths, hyperparameters, settings, model)
        if not batching.packing:
            # The sampled batches are already in the order the strategy's sampler drew them.
            sft_config.train_sampling_strategy = "sequential"
        trainer = make_trainer(model, tokenizer, dataset, None, sft_config, hyperparameters, TokenCounter(), 1)
        counter = CountingCollator(trainer.data_collator)
        trainer.data_collator = counter
        timer = make_step_timer()
        trainer.add_callback(timer)
        trainer.train()
    steps = step_records(timer.durations, counter, hyperparameters.gradient_accumulation_steps)
    seconds = sum(step.seconds for step in steps)
    real = sum(step.real_tokens for step in steps)
    processed = sum(step.processed_tokens for step in steps)
    return {
        "strategy": spec.strategy,
        "pool_rows": len(conversations),
        "dropped_rows": dropped,
        "steps": len(steps),
        "rows_trained": sum(len(step.document_lengths) for step in steps),
        "seconds": seconds,
        "real_tokens": real,
        "processed_tokens": processed,
        "real_tokens_per_second": real / seconds,
        "padding_share": (processed - real) / processed if processed else 0.0,
        "step_seconds": [round(step.seconds, 3) for step in steps],
        "peak_rss_bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024,
        "sft_config": settings.batching.sft_config_kwargs(max_length),
    }


def run_in_fresh_process(spec: RunSpec, scratch: Path) -> dict[str, Any]:
    spec_file = scratch / f"spec-{time.monotonic_ns()}.json"
    result_file = spec_file.with_suffix(".result.json")
    spec_file.write_text(json.dumps(asdict(spec)))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": str(spec.threads),
        "PYTHONWARNINGS": "ignore",
    }
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.train_throughput",
            "--worker",
            str(spec_file),
            "--worker-out",
            str(result_file),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{spec.strategy} run failed (exit {completed.returncode}):\n{completed.stderr[-3000:]}")
    return json.loads(result_file.read_text())


# ---------------------------------------------------------------------------------------------- summary


def summarize(strategies: list[str], runs: list[dict[str, Any]], auto: str) -> list[dict[str, Any]]:
    """Per strategy: median and range of tokens/s over repeats, and of its ratio to the defaults,
    paired within each repeat (both ran on the same rows under the same load)."""
    by_repeat: dict[int, dict[str, dict]] = {}
    for run in runs:
        by_repeat.setdefault(run["repeat"], {})[run["strategy"]] = run
    summaries = []
    for strategy in strategies:
        own = [repeat[strategy] for repeat in by_repeat.values() if strategy in repeat]
        if not own:
            continue
        ratios = [
            repeat[strategy]["real_tokens_per_second"] / repeat[DEFAULTS]["real_tokens_per_second"]
            for repeat in by_repeat.values()
            if strategy in repeat and DEFAULTS in repeat
        ]
        summaries.append(
            {
                "strategy": strategy,
                "role": "trl_defaults"
                if strategy == DEFAULTS
                else ("train_py_auto" if strategy == auto else "alternative"),
                "repeats": len(own),
                "real_tokens_per_second": spread([run["real_tokens_per_second"] for run in own]).as_dict(),
                "padding_share": spread([run["padding_share"] for run in own]).as_dict(),
                "peak_rss_bytes": spread([run["peak_rss_bytes"] for run in own]).as_dict(),
                "rows_per_run": spread([run["rows_trained"] for run in own]).as_dict(),
                "ratio_to_trl_defaults": spread(ratios).as_dict() if ratios else None,
                "sft_config": own[0]["sft_config"],
            }
        )
    return summaries


def verdict(summaries: list[dict[str, Any]], auto: str) -> dict[str, Any]:
    fastest = max(summaries, key=lambda item: item["real_tokens_per_second"]["median"])
    auto_summary = next((item for item in summaries if item["strategy"] == auto), None)
    return {
        "auto_picks": auto,
        "fastest_measured": fastest["strategy"],
        "auto_is_fastest": fastest["strategy"] == auto,
        "auto_ratio_to_trl_defaults": auto_summary["ratio_to_trl_defaults"]["median"] if auto_summary else None,
        "auto_padding_share": auto_summary["padding_share"]["median"] if auto_summary else None,
    }


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("smollm2", "tiny"), default="smollm2")
    parser.add_argument(
        "--strategies",
        default=",".join(DEFAULT_STRATEGIES),
        help="comma-separated; train.py's names, or several joined by '+'",
    )
    demo = demo_hyperparameters()
    parser.add_argument("--pool-rows", type=int, default=1024, help="rows the batches are drawn from")
    parser.add_argument("--steps", type=int, default=6, help="measured optimizer steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=int(demo.get("per_device_train_batch_size", 4)),
        help="rows (or packs) per step (default: the local demo's)",
    )
    parser.add_argument(
        "--max-length",
        type=int,
        default=int(demo.get("max_length", 256)),
        help="train.py's max_length, also the packed row size (default: the local demo's)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: the cores not already busy, at least 1)"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return args
    if args.threads is None:
        args.threads = default_threads()
    for name in ("pool_rows", "steps", "repeats", "batch_size", "max_length", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: {getattr(args, name)} is not allowed; it must be >= 1")
    strategies = [part.strip() for part in args.strategies.split(",") if part.strip()]
    allowed = single_strategies()
    for name in strategies:
        unknown = [part for part in name.split("+") if part not in allowed]
        if unknown:
            parser.error(f"--strategies: {name!r} is not allowed; use {', '.join(allowed)}, or several joined by '+'")
    if DEFAULTS not in strategies:
        strategies.insert(0, DEFAULTS)
    args.strategies = strategies
    return args


def write_results(args, argv, strategies, runs, auto, started, load_before, source_label):
    """Write the results so far (after every run, so a stopped benchmark still leaves its figures)."""
    summaries = summarize(strategies, runs, auto)
    payload = {
        **result_file.header(
            RESULT_NAME,
            "LoRA fine-tuning, the same number of steps from the same rows: trl's "
            "defaults vs train.py's batching strategies",
            argv,
            started,
            load_before,
        ),
        "settings": {
            "model": args.model,
            "pool_rows": args.pool_rows,
            "steps": args.steps,
            "repeats": args.repeats,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "hyperparameters": run_hyperparameters(
                demo_hyperparameters(), args.steps, args.batch_size, args.max_length, args.seed
            ),
            "threads": args.threads,
            "data": source_label,
            "quantization": "none (LoRA, fp32 on CPU)",
        },
        "complete": len(runs) == len(strategies) * args.repeats,
        "variants": summaries,
        "verdict": verdict(summaries, auto),
        "runs": runs,
        "wall_seconds": time.time() - started,
    }
    return summaries, result_file.write(args.out, RESULT_NAME, payload)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        result = run_worker(RunSpec(**json.loads(Path(args.worker).read_text())))
        Path(args.worker_out).write_text(json.dumps(result))
        return 0

    source, source_label = dataset_source()
    auto = auto_choice("cpu")
    strategies = list(args.strategies)
    if auto not in strategies:
        strategies.append(auto)
    conversations = load_conversations(source, args.pool_rows, args.seed)
    started = time.time()
    load_before = result_file.load_average()
    runs: list[dict[str, Any]] = []
    print(
        f"{len(strategies)} variants x {args.repeats} repeats of {args.steps} steps (batch size {args.batch_size}, "
        f"max_length {args.max_length}), model {args.model}, {args.pool_rows} rows from {source_label}; "
        f"train.py's batching=auto on CPU picks {auto}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="train-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        rows_file = scratch / "rows.json"
        rows_file.write_text(json.dumps(conversations))
        for repeat in range(args.repeats):
            shift = repeat % len(strategies)
            for strategy in strategies[shift:] + strategies[:shift]:  # rotate who goes first
                spec = RunSpec(
                    model=args.model,
                    strategy=strategy,
                    rows_file=str(rows_file),
                    steps=args.steps,
                    hyperparameters=run_hyperparameters(
                        demo_hyperparameters(), args.steps, args.batch_size, args.max_length, args.seed + repeat
                    ),
                    threads=args.threads,
                    seed=args.seed + repeat,
                )
                result = run_in_fresh_process(spec, scratch)
                result["repeat"] = repeat
                runs.append(result)
                write_results(args, argv, strategies, runs, auto, started, load_before, source_label)
                print(
                    f"  repeat {repeat + 1}/{args.repeats} {strategy:<30} {result['real_tokens_per_second']:8.1f} "
                    f"real tokens/s, padding {100 * result['padding_share']:5.1f}%, {result['steps']} steps, "
                    f"{result['seconds']:.1f}s",
                    flush=True,
                )
    summaries, path = write_results(args, argv, strategies, runs, auto, started, load_before, source_label)
    print(f"\n{'strategy':<30} {'real tok/s':>11} {'padding':>8} {'ratio (min-max)':>20} {'peak RSS':>9}")
    for item in summaries:
        ratio = item["ratio_to_trl_defaults"]
        print(
            f"{item['strategy']:<30} {item['real_tokens_per_second']['median']:>11.1f} "
            f"{100 * item['padding_share']['median']:>7.1f}% "
            f"{ratio['median']:>8.2f}x ({ratio['min']:.2f}-{ratio['max']:.2f}) "
            f"{item['peak_rss_bytes']['median'] / 2**30:>7.2f}G"
        )
    print(f"\nauto picks {auto}; fastest measured: {verdict(summaries, auto)['fastest_measured']}; results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
