"""Evaluation throughput: evaluate.py's batched generation and vLLM against one prompt at a time.

Every way generates greedily for the same prompts with the same model and settings: transformers
through `evaluate.generate` with the local demo's evaluation batch size and with batch size 1 (how
a classic walkthrough evaluated: one request per test row), and vLLM (training/vllm_generation.py,
what `evaluate.py --generation-backend vllm` runs) once per compute dtype asked for, with every
prompt in flight at once unless --vllm-batch-size says otherwise. vLLM runs in its own environment
(`make vllm-env`, local_mode/vllm_env.py) as a worker process started once per dtype; it is skipped,
and says so in the results, when that environment is not built. Batch size and max_new_tokens default
to the local demo's (examples/local-input.json). Repeats rotate which way goes first; each way's
outputs are compared with one-at-a-time generation's, text for text.

Each repeat also times every way with max_new_tokens=1, which is reading the prompts (the prefill)
and little else. Reading prompts is compute-bound, so batching barely speeds it up; the one-at-a-time
time divided by the batched prefill time is the most batching could gain on this machine with
transformers' kernels.

    python -m benchmarks.eval_throughput                          # SmolLM2-135M, 32 text-to-SQL prompts
    python -m benchmarks.eval_throughput --vllm-dtypes bfloat16   # vLLM in bf16 only
    python -m benchmarks.eval_throughput --model tiny --vllm-dtypes none  # a quick check
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import result_file
from benchmarks.machine import default_threads
from benchmarks.measure import spread
from benchmarks.train_throughput import dataset_source, load_conversations
from local_mode import training_code

REPO_ROOT = Path(__file__).resolve().parent.parent

# training/'s modules (train.py, evaluate.py ...) by bare name, as the job imports them.
training_code.enable()

RESULT_NAME = "eval_throughput"
DEMO_INPUT = REPO_ROOT / "examples" / "local-input.json"


def demo_evaluation_settings() -> tuple[int, int]:
    """(batch_size, max_new_tokens) of the local demo's execution input, else evaluate.py's (16, 128)."""
    try:
        evaluation = json.loads(DEMO_INPUT.read_text())["evaluation"]
        return int(evaluation.get("batch_size", 16)), int(evaluation.get("max_new_tokens", 128))
    except (OSError, KeyError, ValueError, TypeError):
        return 16, 128


VLLM_DTYPES = ("float32", "bfloat16", "float16")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("smollm2", "tiny"), default="smollm2")
    parser.add_argument("--prompts", type=int, default=32)
    batch_size, max_new_tokens = demo_evaluation_settings()
    parser.add_argument("--batch-size", type=int, default=batch_size, help="default: the local demo's")
    parser.add_argument("--max-new-tokens", type=int, default=max_new_tokens, help="default: the local demo's")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads, for transformers and vLLM alike (default: the cores not already busy, at least 1)",
    )
    parser.add_argument(
        "--vllm-dtypes",
        default="float32,bfloat16",
        help=f"vLLM compute dtypes to measure, comma-separated ({', '.join(VLLM_DTYPES)}), or none",
    )
    parser.add_argument(
        "--vllm-batch-size",
        type=int,
        default=None,
        help="sequences vLLM keeps in flight at once (default: every prompt)",
    )
    parser.add_argument(
        "--vllm-python",
        default=None,
        help="the vLLM environment's python (default: local_mode/vllm_env.py's, when built)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    if args.threads is None:
        args.threads = default_threads()
    if args.vllm_batch_size is None:
        args.vllm_batch_size = args.prompts
    for name in ("prompts", "batch_size", "max_new_tokens", "repeats", "threads", "vllm_batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: {getattr(args, name)} is not allowed; it must be >= 1")
    args.vllm_dtypes = parse_dtypes(args.vllm_dtypes, parser)
    return args


def parse_dtypes(text: str, parser: argparse.ArgumentParser) -> list[str]:
    if text.strip().lower() == "none":
        return []
    dtypes = [part.strip() for part in text.split(",") if part.strip()]
    wrong = [dtype for dtype in dtypes if dtype not in VLLM_DTYPES]
    if wrong or not dtypes:
        parser.error(f"--vllm-dtypes: {text!r} is not allowed; give some of {', '.join(VLLM_DTYPES)}, or none")
    return list(dict.fromkeys(dtypes))


def count_differences(first: list[str], second: list[str]) -> list[int]:
    """Indexes where two lists of outputs differ."""
    return [index for index, (a, b) in enumerate(zip(first, second, strict=True)) if a != b]


def vllm_python(configured: str | None) -> tuple[Path | None, str | None]:
    """The vLLM environment's python, or None and why it is not there."""
    from local_mode import vllm_env

    if configured:
        return (
            (Path(configured), None)
            if Path(configured).is_file()
            else (None, f"--vllm-python {configured} does not exist")
        )
    python = vllm_env.find_python()
    return (python, None) if python else (None, "the vLLM environment is not built (make vllm-env)")


def _figures(seconds: list[float], count: int) -> dict[str, Any]:
    return {"seconds": spread(seconds).as_dict(), "prompts_per_second": spread([count / s for s in seconds]).as_dict()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from chat_format import prompt_messages, render_prompt
    from evaluate import generate, load_model
    from vllm_generation import Request, VllmWorker

    from local_mode import vllm_env
    from local_mode.models import prepare_model

    model_dir = prepare_model(args.model)
    model, tokenizer = load_model(model_dir)
    source, source_label = dataset_source()
    conversations = load_conversations(source, args.prompts, args.seed)
    prompts = [render_prompt(tokenizer, prompt_messages(messages)) for messages in conversations]
    generate(model, tokenizer, prompts[:2], batch_size=2, max_new_tokens=4)  # warm-up, not measured

    def transformers_way(batch_size: int):
        def run(max_new_tokens: int) -> tuple[list[str], float]:
            began = time.perf_counter()
            texts = generate(model, tokenizer, prompts, batch_size=batch_size, max_new_tokens=max_new_tokens)
            return texts, time.perf_counter() - began

        return run

    def vllm_way(worker: VllmWorker):
        def run(max_new_tokens: int) -> tuple[list[str], float]:
            began = time.perf_counter()
            texts, _ = worker.generate(max_new_tokens)
            return texts, time.perf_counter() - began

        return run

    ways = {"batched": transformers_way(args.batch_size), "one_at_a_time": transformers_way(1)}
    python, vllm_skipped = vllm_python(args.vllm_python) if args.vllm_dtypes else (None, "--vllm-dtypes none")
    workers: dict[str, VllmWorker] = {}
    started = time.time()
    load_before = result_file.load_average()
    with contextlib.ExitStack() as stack:
        for dtype in args.vllm_dtypes if python else []:
            request = Request(str(model_dir), prompts, args.vllm_batch_size, args.max_new_tokens, dtype)
            workers[dtype] = stack.enter_context(
                VllmWorker(python, request, environ=vllm_env.clean_environment(), threads=args.threads)
            )
            workers[dtype].generate(2)  # warm-up, not measured
            ways[f"vllm_{dtype}"] = vllm_way(workers[dtype])
            print(f"vLLM {dtype}: engine started in {workers[dtype].load_seconds:.1f}s", flush=True)
        timings: dict[str, list[float]] = {way: [] for way in ways}
        prefill: dict[str, list[float]] = {way: [] for way in ways}
        outputs: dict[str, list[list[str]]] = {way: [] for way in ways}
        print(
            f"{len(prompts)} prompts, model {args.model}, ways {', '.join(ways)}, max_new_tokens "
            f"{args.max_new_tokens}, {args.repeats} repeats",
            flush=True,
        )
        names = list(ways)
        for repeat in range(args.repeats):
            shift = repeat % len(names)
            for way in names[shift:] + names[:shift]:  # rotate who goes first
                texts, seconds = ways[way](args.max_new_tokens)
                timings[way].append(seconds)
                outputs[way].append(texts)
                _, prefill_seconds = ways[way](1)
                prefill[way].append(prefill_seconds)
                print(
                    f"  repeat {repeat + 1}/{args.repeats} {way:<14} {seconds:7.1f}s "
                    f"{len(prompts) / seconds:6.2f} prompts/s; reading the prompts alone {prefill_seconds:.1f}s",
                    flush=True,
                )

    def ratio_to_one(way: str) -> dict[str, float]:
        return spread(
            [one / other for one, other in zip(timings["one_at_a_time"], timings[way], strict=True)]
        ).as_dict()

    def differing(way: str) -> list[int]:
        return count_differences(outputs[way][0], outputs["one_at_a_time"][0])

    differing_batched = differing("batched")
    unstable = {way: any(run != outputs[way][0] for run in outputs[way][1:]) for way in ways}
    generated_tokens = sum(
        len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in outputs["one_at_a_time"][0]
    )
    vllm: dict[str, Any] = (
        {"skipped": vllm_skipped}
        if not workers
        else {
            "batch_size": args.vllm_batch_size,
            "python": str(python),
            "versions": next(iter(workers.values())).versions,
            "prompt_token_ids": (
                "the prompts tokenized as evaluate.generate tokenizes them, handed to vLLM as token ids"
            ),
            "dtypes": {
                dtype: {
                    **_figures(timings[f"vllm_{dtype}"], len(prompts)),
                    "ratio": ratio_to_one(f"vllm_{dtype}"),
                    "ratio_to_batched": spread(
                        [b / v for b, v in zip(timings["batched"], timings[f"vllm_{dtype}"], strict=True)]
                    ).as_dict(),
                    "prefill_seconds": spread(prefill[f"vllm_{dtype}"]).as_dict(),
                    "engine_start_seconds": worker.load_seconds,
                    "outputs_differing": len(differing(f"vllm_{dtype}")),
                    "differing_examples": [
                        {
                            "index": index,
                            "vllm": outputs[f"vllm_{dtype}"][0][index],
                            "one_at_a_time": outputs["one_at_a_time"][0][index],
                        }
                        for index in differing(f"vllm_{dtype}")[:3]
                    ],
                    "outputs_vary_between_repeats": unstable[f"vllm_{dtype}"],
                }
                for dtype, worker in workers.items()
            },
        }
    )
    payload: dict[str, Any] = {
        **result_file.header(
            RESULT_NAME,
            "evaluate.py's batched greedy generation, and vLLM's, vs one prompt at a time, same prompts and settings",
            argv,
            started,
            load_before,
        ),
        "settings": {
            "model": args.model,
            "prompts": len(prompts),
            "batch_size": args.batch_size,
            "max_new_tokens": args.max_new_tokens,
            "repeats": args.repeats,
            "threads": args.threads,
            "data": source_label,
            "greedy": True,
            "vllm_dtypes": args.vllm_dtypes,
            "vllm_batch_size": args.vllm_batch_size,
        },
        "batched": _figures(timings["batched"], len(prompts)),
        "one_at_a_time": _figures(timings["one_at_a_time"], len(prompts)),
        "ratio": ratio_to_one("batched"),
        "prefill_seconds": {way: spread(prefill[way]).as_dict() for way in ("batched", "one_at_a_time")},
        "ratio_ceiling": spread(
            [one / first for one, first in zip(timings["one_at_a_time"], prefill["batched"], strict=True)]
        ).as_dict(),
        "outputs_compared": len(prompts),
        "outputs_differing": len(differing_batched),
        "differing_examples": [
            {
                "index": index,
                "batched": outputs["batched"][0][index],
                "one_at_a_time": outputs["one_at_a_time"][0][index],
            }
            for index in differing_batched[:3]
        ],
        "outputs_vary_between_repeats": unstable,
        "generated_tokens_one_at_a_time": generated_tokens,
        "vllm": vllm,
        "wall_seconds": time.time() - started,
    }
    path = result_file.write(args.out, RESULT_NAME, payload)
    print(
        f"\nbatched {payload['batched']['prompts_per_second']['median']:.2f} prompts/s, one at a time "
        f"{payload['one_at_a_time']['prompts_per_second']['median']:.2f} prompts/s: "
        f"{payload['ratio']['median']:.2f}x ({payload['ratio']['min']:.2f}-{payload['ratio']['max']:.2f}); "
        f"{len(differing_batched)} of {len(prompts)} outputs differ"
    )
    for dtype, figures in vllm.get("dtypes", {}).items():
        print(
            f"vLLM {dtype} {figures['prompts_per_second']['median']:.2f} prompts/s: {figures['ratio']['median']:.2f}x "
            f"one at a time ({figures['ratio']['min']:.2f}-{figures['ratio']['max']:.2f}); "
            f"{figures['outputs_differing']} of {len(prompts)} outputs differ"
        )
    if vllm.get("skipped"):
        print(f"vLLM not measured: {vllm['skipped']}")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
