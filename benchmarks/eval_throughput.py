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
from collections.abc import Callable
from dataclasses import dataclass
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


Way = Callable[[int], tuple[list[str], float]]


def transformers_way(model: Any, tokenizer: Any, prompts: list[str], batch_size: int) -> Way:
    """evaluate.generate over every prompt at `batch_size`, timed; called with max_new_tokens."""
    from evaluate import generate

    def run(max_new_tokens: int) -> tuple[list[str], float]:
        began = time.perf_counter()
        texts = generate(model, tokenizer, prompts, batch_size=batch_size, max_new_tokens=max_new_tokens)
        return texts, time.perf_counter() - began

    return run


def vllm_way(worker: Any) -> Way:
    """A started vLLM worker generating for its prompts, timed; called with max_new_tokens."""

    def run(max_new_tokens: int) -> tuple[list[str], float]:
        began = time.perf_counter()
        texts, _ = worker.generate(max_new_tokens)
        return texts, time.perf_counter() - began

    return run


def prepare_prompts(args: argparse.Namespace) -> tuple[Path, Any, Any, list[str], str]:
    """The model (loaded, and warmed up unmeasured) and its rendered prompts: (model_dir, model, tokenizer,
    prompts, data label)."""
    from chat_format import prompt_messages, render_prompt
    from evaluate import generate, load_model

    from local_mode.models import prepare_model

    model_dir = prepare_model(args.model)
    model, tokenizer = load_model(model_dir)
    source, source_label = dataset_source()
    conversations = load_conversations(source, args.prompts, args.seed)
    prompts = [render_prompt(tokenizer, prompt_messages(messages)) for messages in conversations]
    generate(model, tokenizer, prompts[:2], batch_size=2, max_new_tokens=4)  # warm-up, not measured
    return model_dir, model, tokenizer, prompts, source_label


def start_vllm_workers(
    stack: contextlib.ExitStack, args: argparse.Namespace, python: Path, model_dir: Path, prompts: list[str]
) -> dict[str, Any]:
    """One vLLM worker per dtype, started (and warmed up unmeasured) for as long as `stack` lasts."""
    from vllm_generation import Request, VllmWorker

    from local_mode import vllm_env

    workers: dict[str, Any] = {}
    for dtype in args.vllm_dtypes:
        request = Request(str(model_dir), prompts, args.vllm_batch_size, args.max_new_tokens, dtype)
        workers[dtype] = stack.enter_context(
            VllmWorker(python, request, environ=vllm_env.clean_environment(), threads=args.threads)
        )
        workers[dtype].generate(2)  # warm-up, not measured
        print(f"vLLM {dtype}: engine started in {workers[dtype].load_seconds:.1f}s", flush=True)
    return workers


@dataclass
class Measurements:
    """Each way's generation times, prompt-reading (max_new_tokens=1) times and outputs, one per repeat."""

    prompt_count: int
    timings: dict[str, list[float]]
    prefill: dict[str, list[float]]
    outputs: dict[str, list[list[str]]]

    def ratio_to_one(self, way: str) -> dict[str, float]:
        """One-at-a-time time over `way`'s, paired repeat by repeat."""
        return spread(
            [one / other for one, other in zip(self.timings["one_at_a_time"], self.timings[way], strict=True)]
        ).as_dict()

    def differing(self, way: str) -> list[int]:
        """Prompts whose first-repeat output from `way` differs from one-at-a-time's."""
        return count_differences(self.outputs[way][0], self.outputs["one_at_a_time"][0])

    def unstable(self) -> dict[str, bool]:
        """Whether each way's outputs changed from one repeat to another."""
        return {way: any(run != runs[0] for run in runs[1:]) for way, runs in self.outputs.items()}


def measure(ways: dict[str, Way], args: argparse.Namespace, prompt_count: int) -> Measurements:
    """Every way, every repeat, the order rotated each repeat so no way always goes first."""
    measured = Measurements(
        prompt_count, {way: [] for way in ways}, {way: [] for way in ways}, {way: [] for way in ways}
    )
    print(
        f"{prompt_count} prompts, model {args.model}, ways {', '.join(ways)}, max_new_tokens "
        f"{args.max_new_tokens}, {args.repeats} repeats",
        flush=True,
    )
    names = list(ways)
    for repeat in range(args.repeats):
        shift = repeat % len(names)
        for way in names[shift:] + names[:shift]:  # rotate who goes first
            texts, seconds = ways[way](args.max_new_tokens)
            measured.timings[way].append(seconds)
            measured.outputs[way].append(texts)
            _, prefill_seconds = ways[way](1)
            measured.prefill[way].append(prefill_seconds)
            print(
                f"  repeat {repeat + 1}/{args.repeats} {way:<14} {seconds:7.1f}s "
                f"{prompt_count / seconds:6.2f} prompts/s; reading the prompts alone {prefill_seconds:.1f}s",
                flush=True,
            )
    return measured


def vllm_results(
    args: argparse.Namespace,
    python: Path | None,
    workers: dict[str, Any],
    skipped: str | None,
    measured: Measurements,
) -> dict[str, Any]:
    """The result file's "vllm" section: each dtype's figures against one at a time, or why it was skipped."""
    if not workers:
        return {"skipped": skipped}
    prompt_count = measured.prompt_count
    unstable = measured.unstable()

    def dtype_figures(dtype: str, worker: Any) -> dict[str, Any]:
        way = f"vllm_{dtype}"
        differing = measured.differing(way)
        return {
            **_figures(measured.timings[way], prompt_count),
            "ratio": measured.ratio_to_one(way),
            "ratio_to_batched": spread(
                [b / v for b, v in zip(measured.timings["batched"], measured.timings[way], strict=True)]
            ).as_dict(),
            "prefill_seconds": spread(measured.prefill[way]).as_dict(),
            "engine_start_seconds": worker.load_seconds,
            "outputs_differing": len(differing),
            "differing_examples": [
                {
                    "index": index,
                    "vllm": measured.outputs[way][0][index],
                    "one_at_a_time": measured.outputs["one_at_a_time"][0][index],
                }
                for index in differing[:3]
            ],
            "outputs_vary_between_repeats": unstable[way],
        }

    return {
        "batch_size": args.vllm_batch_size,
        "python": str(python),
        "versions": next(iter(workers.values())).versions,
        "prompt_token_ids": "the prompts tokenized as evaluate.generate tokenizes them, handed to vLLM as token ids",
        "dtypes": {dtype: dtype_figures(dtype, worker) for dtype, worker in workers.items()},
    }


def build_payload(
    args: argparse.Namespace,
    argv: list[str] | None,
    measured: Measurements,
    generated_tokens: int,
    vllm: dict[str, Any],
    provenance: tuple[str, float, list[float] | None],
) -> dict[str, Any]:
    """The result file's content; `provenance` is (data label, start time, load average before)."""
    source_label, started, load_before = provenance
    prompt_count = measured.prompt_count
    timings, prefill, outputs = measured.timings, measured.prefill, measured.outputs
    differing_batched = measured.differing("batched")
    return {
        **result_file.header(
            RESULT_NAME,
            "evaluate.py's batched greedy generation, and vLLM's, vs one prompt at a time, same prompts and settings",
            argv,
            started,
            load_before,
        ),
        "settings": {
            "model": args.model,
            "prompts": prompt_count,
            "batch_size": args.batch_size,
            "max_new_tokens": args.max_new_tokens,
            "repeats": args.repeats,
            "threads": args.threads,
            "data": source_label,
            "greedy": True,
            "vllm_dtypes": args.vllm_dtypes,
            "vllm_batch_size": args.vllm_batch_size,
        },
        "batched": _figures(timings["batched"], prompt_count),
        "one_at_a_time": _figures(timings["one_at_a_time"], prompt_count),
        "ratio": measured.ratio_to_one("batched"),
        "prefill_seconds": {way: spread(prefill[way]).as_dict() for way in ("batched", "one_at_a_time")},
        "ratio_ceiling": spread(
            [one / first for one, first in zip(timings["one_at_a_time"], prefill["batched"], strict=True)]
        ).as_dict(),
        "outputs_compared": prompt_count,
        "outputs_differing": len(differing_batched),
        "differing_examples": [
            {
                "index": index,
                "batched": outputs["batched"][0][index],
                "one_at_a_time": outputs["one_at_a_time"][0][index],
            }
            for index in differing_batched[:3]
        ],
        "outputs_vary_between_repeats": measured.unstable(),
        "generated_tokens_one_at_a_time": generated_tokens,
        "vllm": vllm,
        "wall_seconds": time.time() - started,
    }


def print_summary(payload: dict[str, Any], path: Path) -> None:
    """The headline figures for each way, why vLLM was skipped if it was, and where the result file went."""
    prompt_count = payload["outputs_compared"]
    vllm = payload["vllm"]
    print(
        f"\nbatched {payload['batched']['prompts_per_second']['median']:.2f} prompts/s, one at a time "
        f"{payload['one_at_a_time']['prompts_per_second']['median']:.2f} prompts/s: "
        f"{payload['ratio']['median']:.2f}x ({payload['ratio']['min']:.2f}-{payload['ratio']['max']:.2f}); "
        f"{payload['outputs_differing']} of {prompt_count} outputs differ"
    )
    for dtype, figures in vllm.get("dtypes", {}).items():
        print(
            f"vLLM {dtype} {figures['prompts_per_second']['median']:.2f} prompts/s: {figures['ratio']['median']:.2f}x "
            f"one at a time ({figures['ratio']['min']:.2f}-{figures['ratio']['max']:.2f}); "
            f"{figures['outputs_differing']} of {prompt_count} outputs differ"
        )
    if vllm.get("skipped"):
        print(f"vLLM not measured: {vllm['skipped']}")
    print(f"results: {path}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    model_dir, model, tokenizer, prompts, source_label = prepare_prompts(args)
    ways = {
        "batched": transformers_way(model, tokenizer, prompts, args.batch_size),
        "one_at_a_time": transformers_way(model, tokenizer, prompts, 1),
    }
    python, vllm_skipped = vllm_python(args.vllm_python) if args.vllm_dtypes else (None, "--vllm-dtypes none")
    started = time.time()
    load_before = result_file.load_average()
    with contextlib.ExitStack() as stack:
        workers = start_vllm_workers(stack, args, python, model_dir, prompts) if python else {}
        ways.update({f"vllm_{dtype}": vllm_way(worker) for dtype, worker in workers.items()})
        measured = measure(ways, args, len(prompts))
    generated_tokens = sum(
        len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in measured.outputs["one_at_a_time"][0]
    )
    vllm = vllm_results(args, python, workers, vllm_skipped, measured)
    payload = build_payload(args, argv, measured, generated_tokens, vllm, (source_label, started, load_before))
    path = result_file.write(args.out, RESULT_NAME, payload)
    print_summary(payload, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
