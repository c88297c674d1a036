"""Evaluation throughput: evaluate.py's batched generation against one prompt at a time.

Both ways call the same function (`evaluate.generate`) with the same prompts, model and greedy
settings; only the batch size differs (the local demo's evaluation batch size against 1, which is
how a classic walkthrough evaluated: one request per test row). Batch size and max_new_tokens
default to the local demo's (examples/local-input.json). Repeats alternate which way goes first, and the
outputs of the two ways are compared token for token (as decoded text).

Each repeat also times both ways with max_new_tokens=1, which is reading the prompts (the prefill)
and little else. Reading prompts is compute-bound, so batching barely speeds it up; the one-at-a-time
time divided by the batched prefill time is the most batching could gain on this machine.

    python -m benchmarks.eval_throughput               # SmolLM2-135M, 32 text-to-SQL prompts
    python -m benchmarks.eval_throughput --model tiny  # a quick check
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
if str(REPO_ROOT / "training") not in sys.path:
    sys.path.append(str(REPO_ROOT / "training"))

from benchmarks.machine import default_threads  # noqa: E402
from benchmarks import result_file  # noqa: E402
from benchmarks.measure import spread  # noqa: E402
from benchmarks.train_throughput import dataset_source, load_conversations  # noqa: E402

RESULT_NAME = "eval_throughput"
DEMO_INPUT = REPO_ROOT / "examples" / "local-input.json"


def demo_evaluation_settings() -> tuple[int, int]:
    """(batch_size, max_new_tokens) of the local demo's execution input, else evaluate.py's (16, 128)."""
    try:
        evaluation = json.loads(DEMO_INPUT.read_text())["evaluation"]
        return int(evaluation.get("batch_size", 16)), int(evaluation.get("max_new_tokens", 128))
    except (OSError, KeyError, ValueError, TypeError):
        return 16, 128


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("smollm2", "tiny"), default="smollm2")
    parser.add_argument("--prompts", type=int, default=32)
    batch_size, max_new_tokens = demo_evaluation_settings()
    parser.add_argument("--batch-size", type=int, default=batch_size, help="default: the local demo's")
    parser.add_argument("--max-new-tokens", type=int, default=max_new_tokens, help="default: the local demo's")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: the cores not already busy, at least 1)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    if args.threads is None:
        args.threads = default_threads()
    for name in ("prompts", "batch_size", "max_new_tokens", "repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: {getattr(args, name)} is not allowed; it must be >= 1")
    return args


def count_differences(first: list[str], second: list[str]) -> list[int]:
    """Indexes where two lists of outputs differ."""
    return [index for index, (a, b) in enumerate(zip(first, second)) if a != b]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from chat_format import prompt_messages, render_prompt
    from evaluate import generate, load_model
    from local_mode.models import prepare_model

    model, tokenizer = load_model(prepare_model(args.model))
    source, source_label = dataset_source()
    conversations = load_conversations(source, args.prompts, args.seed)
    prompts = [render_prompt(tokenizer, prompt_messages(messages)) for messages in conversations]
    generate(model, tokenizer, prompts[:2], batch_size=2, max_new_tokens=4)  # warm-up, not measured

    ways = {"batched": args.batch_size, "one_at_a_time": 1}
    timings: dict[str, list[float]] = {way: [] for way in ways}
    prefill: dict[str, list[float]] = {way: [] for way in ways}
    outputs: dict[str, list[list[str]]] = {way: [] for way in ways}
    started = time.time()
    load_before = result_file.load_average()
    print(f"{len(prompts)} prompts, model {args.model}, batch size {args.batch_size} vs 1, max_new_tokens "
          f"{args.max_new_tokens}, {args.repeats} repeats", flush=True)
    for repeat in range(args.repeats):
        order = list(ways) if repeat % 2 == 0 else list(reversed(ways))
        for way in order:
            began = time.perf_counter()
            texts = generate(model, tokenizer, prompts, batch_size=ways[way], max_new_tokens=args.max_new_tokens)
            seconds = time.perf_counter() - began
            timings[way].append(seconds)
            outputs[way].append(texts)
            began = time.perf_counter()
            generate(model, tokenizer, prompts, batch_size=ways[way], max_new_tokens=1)
            prefill[way].append(time.perf_counter() - began)
            print(f"  repeat {repeat + 1}/{args.repeats} {way:<14} {seconds:7.1f}s "
                  f"{len(prompts) / seconds:6.2f} prompts/s; reading the prompts alone {prefill[way][-1]:.1f}s",
                  flush=True)

    ratios = [one / batched for one, batched in zip(timings["one_at_a_time"], timings["batched"])]
    differing = count_differences(outputs["batched"][0], outputs["one_at_a_time"][0])
    unstable = {way: any(run != outputs[way][0] for run in outputs[way][1:]) for way in ways}
    generated_tokens = sum(len(tokenizer(text, add_special_tokens=False)["input_ids"])
                           for text in outputs["one_at_a_time"][0])
    payload: dict[str, Any] = {
        **result_file.header(RESULT_NAME, "evaluate.py's batched greedy generation vs one prompt at a time, "
                             "same prompts and settings", argv, started, load_before),
        "settings": {"model": args.model, "prompts": len(prompts), "batch_size": args.batch_size,
                     "max_new_tokens": args.max_new_tokens, "repeats": args.repeats, "threads": args.threads,
                     "data": source_label, "greedy": True},
        "batched": {"seconds": spread(timings["batched"]).as_dict(),
                    "prompts_per_second": spread([len(prompts) / s for s in timings["batched"]]).as_dict()},
        "one_at_a_time": {"seconds": spread(timings["one_at_a_time"]).as_dict(),
                          "prompts_per_second": spread([len(prompts) / s for s in timings["one_at_a_time"]]).as_dict()},
        "ratio": spread(ratios).as_dict(),
        "prefill_seconds": {way: spread(prefill[way]).as_dict() for way in ways},
        "ratio_ceiling": spread([one / first for one, first in zip(timings["one_at_a_time"],
                                                                  prefill["batched"])]).as_dict(),
        "outputs_compared": len(prompts),
        "outputs_differing": len(differing),
        "differing_examples": [{"index": index, "batched": outputs["batched"][0][index],
                                "one_at_a_time": outputs["one_at_a_time"][0][index]} for index in differing[:3]],
        "outputs_vary_between_repeats": unstable,
        "generated_tokens_one_at_a_time": generated_tokens,
        "wall_seconds": time.time() - started,
    }
    path = result_file.write(args.out, RESULT_NAME, payload)
    print(f"\nbatched {payload['batched']['prompts_per_second']['median']:.2f} prompts/s, one at a time "
          f"{payload['one_at_a_time']['prompts_per_second']['median']:.2f} prompts/s: "
          f"{payload['ratio']['median']:.2f}x ({payload['ratio']['min']:.2f}-{payload['ratio']['max']:.2f}); "
          f"{len(differing)} of {len(prompts)} outputs differ; results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
