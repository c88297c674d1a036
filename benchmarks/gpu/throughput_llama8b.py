"""Fine-tuning throughput levers and evaluation batching on one GPU, Llama-3-8B shape.

Training: the model is loaded by train.py's own code (`load_training_model`: its 4-bit NF4
quantization config and `prepare_model_for_kbit_training` for QLoRA, bf16 weights for LoRA), the
SFTConfig is train.py's (`build_sft_config`), the trainer is train.py's (`make_trainer`: its LoRA
config, adapter dtype) and the levers are resolved by training/throughput.py, as a job would.
For QLoRA and bf16 LoRA it measures trl's defaults (padded batches, full activation checkpointing),
train.py as it was before the levers (padding-free batches, full checkpointing, sdpa), each lever
alone on top of that, and every lever on `auto`. For each: real (non-padding) tokens per second,
model FLOPs utilisation (the definition of benchmarks/measure.py, against a bf16 matrix-multiply
peak measured in the same run), peak GPU memory, and the ratio to trl's defaults.

Evaluation: evaluate.py's own `generate` on the bf16 model, batched (the workflow's evaluation
batch size) against one prompt at a time, on prompts rendered from examples/data/sql-example.jsonl
(1,000 rows, the walkthrough's evaluation size) with the walkthrough's max_new_tokens (256). Random
weights never stop early, so both ways generate every token; the one-at-a-time figure comes from
a sample of the prompts (it would take an hour for all 1,000), the batched one from a larger sample,
and both are given per prompt and for 1,000 prompts.

The weights are random and built offline from a config dict (nothing is downloaded); they are
written once to a temporary folder so that train.py loads them as it loads a real model.

On the GPU machine (no network; its image has torch, triton, accelerate and tokenizers but other
versions of the rest), carry these wheels in the ignored folder .whl/ of the repository root,
downloaded here with

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \\
        --platform any -d .whl transformers==5.23.0 trl==1.16.0 peft==0.21.2 bitsandbytes==0.50.2 \\
        datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 sqlglot==30.30.0 liger-kernel==0.8.5

(about 58 MB; flash-attn has no wheel on PyPI and is left out: attention is then sdpa, and the
flash-attention variants are recorded as not measured), and run, from the repository root:

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \\
        PYTHONPATH=/tmp/site python3 -m benchmarks.gpu.throughput_llama8b --out "$OUT"

It writes gpu_throughput.json into --out (copy it to benchmarks/results/ and regenerate
docs/benchmarks.md with `python -m benchmarks.run_all --render-only`). `--budget-seconds`
(default 450) bounds the whole run: each variant gets an equal share of what is left, variants
that find no time left are recorded as such, and the file is written after every variant.
`--smoke` runs the same code on CPU with a tiny Llama in a minute or two (tests/benchmarks run it).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.gpu.lever_plan import BEFORE_LEVERS, LEVERS, PRECISIONS, RESULT_NAME, TRL_DEFAULTS  # noqa: E402
from benchmarks.gpu.qlora_llama8b import (  # noqa: E402
    SMOKE_MODEL,
    ModelSpec,
    environment,
    log,
    measure_matmul_peak,
    synthetic_lengths,
)
from benchmarks.measure import CountingCollator, VariantResult, make_step_timer, model_shape, step_records  # noqa: E402
from local_mode import training_code  # noqa: E402

# training/'s modules (train.py, evaluate.py ...) by bare name, as the job imports them.
training_code.enable()

RESULT_FILE = f"{RESULT_NAME}.json"
PROMPTS_FILE = REPO_ROOT / "examples" / "data" / "sql-example.jsonl"
EVALUATION_RESERVE_SECONDS = 100
DEFAULT_LEVERS = tuple(LEVERS)


@dataclass(frozen=True)
class Settings:
    model: ModelSpec
    device: str
    seq_len: int
    rows_per_micro_batch: int
    accumulation: int
    measured_steps: int
    rows: int
    lora_r: int
    budget_seconds: float
    precisions: tuple[str, ...]
    levers: tuple[str, ...]
    length_median: int
    length_sigma: float
    min_length: int
    seed: int
    eval_batch_size: int
    eval_batched_prompts: int
    eval_sequential_prompts: int
    eval_max_new_tokens: int
    model_dir: str | None = None


@dataclass
class Variant:
    precision: str
    lever: str
    hyperparameters: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.precision}/{self.lever}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or str(REPO_ROOT / "benchmarks" / "results"))
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=450.0,
        help="the whole run's time; results so far are written when it is spent",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny Llama on CPU, one step each: checks the code path")
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="qlora, bf16 or both (comma-separated)")
    parser.add_argument(
        "--levers",
        default=",".join(DEFAULT_LEVERS),
        help=f"comma-separated, from {', '.join(LEVERS)}; trl_defaults is always measured",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="rows per micro-batch asked for (default 8)")
    parser.add_argument("--accumulation", type=int, default=1, help="micro-batches per optimizer step asked for")
    parser.add_argument("--measured-steps", type=int, default=None, help="optimizer steps per variant (default 12)")
    parser.add_argument("--eval-batch-size", type=int, default=16, help="the workflow's evaluation batch size")
    parser.add_argument("--eval-batched-prompts", type=int, default=None, help="default 64 (smoke: 4)")
    parser.add_argument("--eval-sequential-prompts", type=int, default=None, help="default 6 (smoke: 2)")
    parser.add_argument("--eval-max-new-tokens", type=int, default=None, help="default 256, the walkthrough's")
    parser.add_argument("--model-dir", default=None, help="where the random model is written (default: a temp folder)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    for name in (
        "batch_size",
        "accumulation",
        "measured_steps",
        "eval_batch_size",
        "eval_batched_prompts",
        "eval_sequential_prompts",
        "eval_max_new_tokens",
    ):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')}: {value} is not allowed; it must be an integer >= 1")
    args.precisions = tuple(part.strip() for part in args.precisions.split(",") if part.strip())
    if not args.precisions or any(part not in PRECISIONS for part in args.precisions):
        parser.error(f"--precisions: {','.join(args.precisions)!r} is not allowed; use qlora, bf16 or both")
    levers = [part.strip() for part in args.levers.split(",") if part.strip()]
    unknown = [part for part in levers if part not in LEVERS]
    if unknown:
        parser.error(f"--levers: {', '.join(unknown)} not allowed; choose from {', '.join(LEVERS)}")
    args.levers = tuple(["trl_defaults"] + [lever for lever in levers if lever != "trl_defaults"])
    return args


def settings_from_args(args: argparse.Namespace) -> Settings:
    smoke = args.smoke
    common = {
        "precisions": args.precisions,
        "levers": args.levers,
        "budget_seconds": args.budget_seconds,
        "seed": args.seed,
        "rows_per_micro_batch": args.batch_size or (4 if smoke else 8),
        "accumulation": args.accumulation,
        "eval_batch_size": args.eval_batch_size,
        "model_dir": args.model_dir,
    }
    if smoke:
        return Settings(
            model=SMOKE_MODEL,
            device="cpu",
            seq_len=128,
            measured_steps=args.measured_steps or 1,
            rows=64,
            lora_r=8,
            length_median=40,
            length_sigma=0.6,
            min_length=8,
            eval_batched_prompts=args.eval_batched_prompts or 4,
            eval_sequential_prompts=args.eval_sequential_prompts or 2,
            eval_max_new_tokens=args.eval_max_new_tokens or 4,
            **common,
        )
    return Settings(
        model=ModelSpec(),
        device="cuda",
        seq_len=2048,
        measured_steps=args.measured_steps or 12,
        rows=2048,
        lora_r=16,
        length_median=450,
        length_sigma=0.8,
        min_length=32,
        eval_batched_prompts=args.eval_batched_prompts or 64,
        eval_sequential_prompts=args.eval_sequential_prompts or 6,
        eval_max_new_tokens=args.eval_max_new_tokens or 256,
        **common,
    )


# ---------------------------------------------------------------------------------------------
# The model on disk, and the data


def write_random_model(spec: ModelSpec, device: str, folder: Path, tokenizer) -> Path:
    """A random-weight Llama of `spec`, built on `device` from a config dict and saved as safetensors (bf16)."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig

    config = LlamaConfig(
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        vocab_size=spec.vocab_size,
        rope_theta=spec.rope_theta,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=False,
        rms_norm_eps=1e-5,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    del model
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return folder


def synthetic_rows(settings: Settings):
    """Pre-tokenized rows (input_ids, labels) with log-normal lengths, as train.py's tokenizer step makes them."""
    import torch
    from datasets import Dataset

    lengths = synthetic_lengths(
        settings.rows,
        settings.length_median,
        settings.length_sigma,
        settings.min_length,
        settings.seq_len,
        settings.seed,
    )
    generator = torch.Generator().manual_seed(settings.seed)
    ids = [
        torch.randint(8, min(settings.model.vocab_size, 1000), (length,), generator=generator).tolist()
        for length in lengths
    ]
    return Dataset.from_dict({"input_ids": ids, "labels": ids}), lengths


def walkthrough_prompts(tokenizer, count: int) -> list[str]:
    """The first `count` rows of the example data set as evaluate.py renders them (cycled when fewer)."""
    from chat_format import render_prompt
    from data_formats import to_messages

    rows = [json.loads(line) for line in PROMPTS_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    prompts = [render_prompt(tokenizer, to_messages(row, "sql-create-context")) for row in rows]
    return [prompts[index % len(prompts)] for index in range(count)]


# ---------------------------------------------------------------------------------------------
# One training variant, through train.py


def variant_hyperparameters(variant: Variant, settings: Settings) -> dict[str, str]:
    """The hyperparameters train.py gets for `variant` (strings, as SageMaker passes them)."""
    values: dict[str, str] = {}
    if variant.lever == "trl_defaults":
        values.update(TRL_DEFAULTS)
    elif variant.lever != "auto":
        values.update(BEFORE_LEVERS)
        for name, value in LEVERS[variant.lever][1].items():
            if value == "2x":
                value = str(2 * settings.seq_len)
            elif value == "flip":
                value = "fp32" if variant.precision == "qlora" else "bf16"
            values[name] = value
    values.update(
        {
            "quantization": "4bit" if variant.precision == "qlora" else "none",
            "per_device_train_batch_size": str(settings.rows_per_micro_batch),
            "gradient_accumulation_steps": str(settings.accumulation),
            "max_length": str(settings.seq_len),
            "max_steps": str(settings.measured_steps + 1),
            "lora_r": str(settings.lora_r),
            "lora_alpha": str(settings.lora_r),
            "lora_dropout": "0.05",
            "learning_rate": "0.0002",
            "warmup_ratio": "0",
            "logging_steps": "100000",
            "save_steps": "100000",
            "seed": str(settings.seed),
        }
    )
    return values


def run_variant(
    model,
    variant: Variant,
    hyperparameters,
    levers,
    run_settings,
    dataset,
    lengths,
    tokenizer,
    settings: Settings,
    deadline: float,
    peak_flops: float,
    resident_bytes: int,
    own_bytes: int,
):
    """Train `variant` for one warm-up and the measured steps; returns (the base model back, its summary)."""
    import torch
    from job_paths import Paths
    from metrics_logging import TokenCounter
    from sft_config import build_sft_config
    from sft_trainer import make_trainer

    on_gpu = settings.device == "cuda"
    plan = levers.plan
    result = VariantResult(
        name=variant.name,
        settings={
            "precision": variant.precision,
            "lever": variant.lever,
            "what": LEVERS[variant.lever][0],
            "hyperparameters": hyperparameters.to_dict(),
            "levers": levers.to_dict(),
            "batching": run_settings.batching.strategy,
        },
    )
    shape = model_shape(model)
    if on_gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    timer = make_step_timer(
        synchronize=torch.cuda.synchronize if on_gpu else None, deadline=deadline, max_steps=settings.measured_steps + 1
    )
    with tempfile.TemporaryDirectory(prefix="throughput-bench-") as work:
        paths = Paths.defaults(Path(work))
        config = build_sft_config(paths, hyperparameters, run_settings, model, levers)
        trainer = make_trainer(
            model,
            tokenizer,
            dataset,
            None,
            config,
            hyperparameters,
            TokenCounter(),
            1,
            lora_dtype=levers.lora_dtype.value,
        )
        trainer.add_callback(timer)
        counter = CountingCollator(trainer.data_collator)
        trainer.data_collator = counter
        try:
            trainer.train()
        except torch.OutOfMemoryError as error:
            result.error = f"out of GPU memory: {error}".splitlines()[0]
        if result.error is None:
            records = step_records(timer.durations, counter, plan.gradient_accumulation_steps)
            result.steps = records[1:]  # the first step pays for kernel selection and memory-pool growth
            if not result.steps:
                result.error = "no measured step: the time budget ran out during the warm-up step"
        if on_gpu:
            # Other precisions' models stay loaded; count only this variant's model and what it allocated.
            result.peak_memory_bytes = int(torch.cuda.max_memory_allocated()) - (resident_bytes - own_bytes)
        peft_model = trainer.model
        del trainer
        base = peft_model.unload()
        del peft_model
    if levers.gradient_checkpointing.value != "none":
        base.activation_checkpointing_disable()  # the next variant turns on what it needs
    gc.collect()
    if on_gpu:
        torch.cuda.empty_cache()
    summary = result.summary(shape, peak_flops)
    summary["micro_batches"] = asdict(plan)
    return base, summary


def planned_variants(settings: Settings) -> list[Variant]:
    """Per precision: the levers in the order asked, but torch.compile (slow to start) after the others,
    and the variants that may patch the model for good (Liger) last, so one load serves all before them."""
    last = {"torch_compile": 1, "liger": 2, "auto": 2}
    variants = []
    for precision in settings.precisions:
        ordered = sorted(settings.levers, key=lambda lever: last.get(lever, 0))
        variants += [Variant(precision, lever) for lever in ordered]
    return variants


def add_ratios(variants: list[dict[str, Any]]) -> None:
    base = {
        v["settings"]["precision"]: v
        for v in variants
        if v["settings"]["lever"] == "trl_defaults" and v.get("real_tokens_per_second")
    }
    for variant in variants:
        reference = base.get(variant.get("settings", {}).get("precision"))
        if reference and variant.get("real_tokens_per_second"):
            variant["ratio_to_trl_defaults"] = variant["real_tokens_per_second"] / reference["real_tokens_per_second"]


# ---------------------------------------------------------------------------------------------
# Evaluation: evaluate.py's generate, batched against one prompt at a time


def measure_generation(model, tokenizer, settings: Settings, deadline: float) -> dict[str, Any]:
    """Prompts per second of evaluate.generate at the workflow's batch size and at batch size 1."""
    import torch
    from evaluate import generate

    sync = torch.cuda.synchronize if settings.device == "cuda" else (lambda: None)
    prompts = walkthrough_prompts(tokenizer, 1000)
    lengths = [len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) for prompt in prompts]
    out: dict[str, Any] = {
        "prompts_in_walkthrough": len(prompts),
        "max_new_tokens": settings.eval_max_new_tokens,
        "batch_size": settings.eval_batch_size,
        "prompt_tokens": {"mean": statistics.mean(lengths), "max": max(lengths)},
        "source": "examples/data/sql-example.jsonl rendered with chat_format.render_prompt",
    }
    generate(model, tokenizer, prompts[:2], 2, 2)  # warm-up
    ways = (
        ("batched", settings.eval_batch_size, settings.eval_batched_prompts),
        ("one_at_a_time", 1, settings.eval_sequential_prompts),
    )
    for name, batch_size, count in ways:
        if time.monotonic() >= deadline:
            out[name] = {"error": "time budget spent before it started"}
            continue
        sample = prompts[:count]
        sync()
        started = time.perf_counter()
        generate(model, tokenizer, sample, batch_size, settings.eval_max_new_tokens)
        sync()
        seconds = time.perf_counter() - started
        out[name] = {
            "prompts": len(sample),
            "batch_size": batch_size,
            "seconds": seconds,
            "prompts_per_second": len(sample) / seconds,
            "seconds_for_1000_prompts": 1000 * seconds / len(sample),
        }
    if "prompts_per_second" in out.get("batched", {}) and "prompts_per_second" in out.get("one_at_a_time", {}):
        out["ratio"] = out["batched"]["prompts_per_second"] / out["one_at_a_time"]["prompts_per_second"]
    return out


# ---------------------------------------------------------------------------------------------


def command_line(argv: list[str]) -> str:
    """The command as run from the repository root, the output folder shown as $OUT."""
    shown = []
    for index, arg in enumerate(argv):
        if index and argv[index - 1] == "--out":
            shown.append("$OUT")
        else:
            shown.append("--out=$OUT" if arg.startswith("--out=") else arg)
    return " ".join(["python3", "-m", "benchmarks.gpu.throughput_llama8b", *shown])


def write_results(out_dir: Path, payload: dict[str, Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RESULT_FILE
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def format_table(variants: list[dict[str, Any]]) -> str:
    lines = [f"{'variant':<34} {'real tok/s':>11} {'MFU':>6} {'peak GiB':>9} {'ratio':>6}"]
    for v in variants:
        if not v.get("real_tokens_per_second"):
            lines.append(f"{v['name']:<34} {v.get('error') or 'not measured'}")
            continue
        lines.append(
            f"{v['name']:<34} {v['real_tokens_per_second']:>11.0f} {100 * v.get('mfu', 0):>5.1f}% "
            f"{(v.get('peak_memory_bytes') or 0) / 2**30:>9.1f} {v.get('ratio_to_trl_defaults', 0):>5.2f}x"
        )
    return "\n".join(lines)


def base_payload(args: argparse.Namespace, argv: list[str] | None, settings: Settings, machine: Any) -> dict[str, Any]:
    """The result file before anything is measured: provenance, settings, machine and how FLOPs are counted."""
    return {
        "benchmark": "gpu_throughput",
        "what": "fine-tuning throughput levers (train.py's own loading, config and trainer) and evaluation batching",
        "command": command_line(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "smoke": bool(args.smoke),
        "settings": {**asdict(settings), "model": asdict(settings.model)},
        "environment": environment(settings.device),
        "machine": {**asdict(machine), "packages": sorted(machine.packages)},
        "flops_count": (
            "model FLOPs = 4*N per real token (forward 2N + backward activation gradients 2N; frozen "
            "base, no weight gradients) + causal attention 6*L^2*d per layer per document; N = "
            "weights of all linear layers and the output head (input embedding excluded, LoRA "
            "adapters excluded); gradient-checkpointing recompute is counted only in 'hfu', which counts every "
            "layer recomputed, so it overstates the hardware FLOPs of checkpointing none or selective"
        ),
        "timings": {},
        "variants": [],
        "evaluation": None,
        "complete": False,
    }


def data_description(settings: Settings, lengths: list[int]) -> dict[str, Any]:
    """The synthetic training rows, as the result file describes them."""
    return {
        "rows": len(lengths),
        "mean_length": statistics.mean(lengths),
        "max_length": max(lengths),
        "distribution": f"log-normal, median {settings.length_median}, sigma {settings.length_sigma}, "
        f"clipped to [{settings.min_length}, {settings.seq_len}]",
    }


def free_memory(device: str) -> None:
    """Collect dropped models now, and hand their CUDA memory back, before the next one loads."""
    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def unmeasured(variant: Variant, error: str) -> dict[str, Any]:
    """A variant's entry when it was not measured, and why."""
    return {"name": variant.name, "error": error, "settings": {"precision": variant.precision, "lever": variant.lever}}


@dataclass
class Run:
    """What every variant of one run shares: its settings, the machine, the data and the models loaded so far."""

    settings: Settings
    machine: Any
    model_dir: Path
    tokenizer: Any
    dataset: Any
    lengths: list[int]
    peak_flops: float
    training_deadline: float
    payload: dict[str, Any]
    # (precision, attention, liger) -> (model, bytes it takes)
    loaded: dict[tuple, tuple[Any, int]] = field(default_factory=dict)


def resolve_variant(run: Run, variant: Variant, values: dict[str, str]) -> tuple[Any, Any, Any]:
    """train.py's hyperparameters (from `values`), run settings and lever request for `variant`; raises
    throughput.LeverError
    when a lever cannot be had on this machine."""
    import throughput
    from batching import resolve
    from hyperparameters import build_hyperparameters
    from run_settings import RunSettings

    hyperparameters = build_hyperparameters(values)
    run_settings = RunSettings(
        device=run.settings.device,
        quantize_4bit=variant.precision == "qlora",
        batching=resolve(hyperparameters.batching, run.settings.device),
        model_source=str(run.model_dir),
        num_processes=1,
    )
    request = throughput.request_from(hyperparameters, run_settings.batching.padding_free, run_settings.quantize_4bit)
    throughput.resolve_levers(request, run.machine)
    return hyperparameters, run_settings, request


def load_variant_model(run: Run, key: tuple, run_settings: Any, hyperparameters: Any, attention: str) -> None:
    """Load the model for `key` unless it is loaded, dropping this precision's other copies first."""
    import torch
    from model_loading import load_training_model, model_bytes

    if key in run.loaded:
        return
    on_gpu = run.settings.device == "cuda"
    for old in [k for k in run.loaded if k[0] == key[0]]:
        del run.loaded[old]  # a Liger-patched or other-attention copy of this precision is done with
    free_memory(run.settings.device)
    before = torch.cuda.memory_allocated() if on_gpu else 0
    load_started = time.monotonic()
    model = load_training_model(str(run.model_dir), run_settings, hyperparameters, None, attn_implementation=attention)
    if on_gpu and next(model.parameters()).device.type != "cuda":
        model.to("cuda")  # a bf16 base loads on the CPU; the Trainer would move it at the first variant
    own = (torch.cuda.memory_allocated() - before) if on_gpu else model_bytes(model)
    run.loaded[key] = (model, own)
    run.payload["timings"][f"load_seconds_{'_'.join(map(str, key))}"] = time.monotonic() - load_started
    run.payload["parameters"] = sum(p.numel() for p in model.parameters())


def measure_variant(run: Run, variant: Variant, resolved: tuple[Any, Any, Any], share_of: int) -> dict[str, Any]:
    """Train `variant` on its model for an equal share of the time left among `share_of` variants; a failure
    is recorded in the summary, and the model it leaves behind is dropped."""
    import throughput
    import torch

    hyperparameters, run_settings, request = resolved
    attention = throughput.resolve_attention(request, run.machine).value
    liger = throughput.resolve_liger(request, run.machine).value
    key = (variant.precision, attention, bool(liger))
    load_variant_model(run, key, run_settings, hyperparameters, attention)
    model, own = run.loaded[key]
    resident = torch.cuda.memory_allocated() if run.settings.device == "cuda" else own
    dims = throughput.ModelDims.of(model.config)
    levers = throughput.resolve_levers(request, run.machine, dims, own, statistics.mean(run.lengths))
    share = (run.training_deadline - time.monotonic()) / share_of
    log(f"{variant.name}: up to {share:.0f}s; " + "; ".join(levers.summary_lines()))
    try:
        base, summary = run_variant(
            model,
            variant,
            hyperparameters,
            levers,
            run_settings,
            run.dataset,
            run.lengths,
            run.tokenizer,
            run.settings,
            time.monotonic() + share,
            run.peak_flops,
            resident,
            own,
        )
        run.loaded[key] = (base, own)
    except Exception as error:  # one lever failing here says so and leaves the others to be measured
        traceback.print_exc()
        summary = unmeasured(variant, f"failed: {type(error).__name__}: {error}"[:500])
        del run.loaded[key]  # its state is unknown: the next variant loads a fresh copy
    return summary


def measure_variants(run: Run, out_dir: Path, smoke: bool) -> None:
    """Every planned variant in order, each given an equal share of the time left, the result file rewritten
    after each measured one; a variant this machine cannot run, or that finds no time left, says so."""
    import throughput

    variants = planned_variants(run.settings)
    for index, variant in enumerate(variants):
        remaining = run.training_deadline - time.monotonic()
        values = variant_hyperparameters(variant, run.settings)
        try:
            resolved = resolve_variant(run, variant, values)
        except throughput.LeverError as error:
            run.payload["variants"].append(unmeasured(variant, f"not measured here: {error}"))
            continue
        if remaining <= 0 or (variant.lever == "torch_compile" and remaining < 150 and not smoke):
            run.payload["variants"].append(unmeasured(variant, "time budget spent before it started"))
            continue
        summary = measure_variant(run, variant, resolved, len(variants) - index)
        run.payload["variants"].append(summary)
        add_ratios(run.payload["variants"])
        write_results(out_dir, run.payload)
        log(
            f"{variant.name}: {summary.get('real_tokens_per_second') or 0:.0f} real tokens/s, "
            f"MFU {100 * (summary.get('mfu') or 0):.1f}% {summary.get('error') or ''}"
        )


def measure_evaluation(run: Run, deadline: float) -> None:
    """evaluate.py's generation on the bf16 model, loaded once every training model is dropped."""
    from evaluate import load_model

    run.loaded.clear()
    free_memory(run.settings.device)
    eval_model, eval_tokenizer = load_model(run.model_dir)
    run.payload["evaluation"] = measure_generation(eval_model, eval_tokenizer, run.settings, deadline)
    log(f"evaluation: {json.dumps(run.payload['evaluation'])}")


def is_complete(payload: dict[str, Any]) -> bool:
    """Every variant measured or knowingly not measurable here, and evaluation batching compared."""
    return (
        all(
            v.get("real_tokens_per_second") or str(v.get("error", "")).startswith("not measured")
            for v in payload["variants"]
        )
        and "ratio" in payload["evaluation"]
    )


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    settings = settings_from_args(args)
    deadline = started + settings.budget_seconds
    # Loading the bf16 model again and generating take about this long on an H100/H200.
    training_deadline = deadline - (0 if args.smoke else EVALUATION_RESERVE_SECONDS)
    out_dir = Path(args.out)

    # train.py's modules are imported up front, so that one missing on the machine fails before anything runs.
    import batching  # noqa: F401
    import hyperparameters  # noqa: F401
    import model_loading  # noqa: F401
    import run_settings  # noqa: F401
    import throughput
    import torch

    from local_mode.models import build_tiny_tokenizer

    if settings.device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device is visible; run with --smoke to check the code path on CPU", file=sys.stderr)
        return 2
    if settings.device == "cpu":
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    machine = throughput.detect_machine(settings.device)
    payload = base_payload(args, argv, settings, machine)
    matmul_size = 8192 if settings.device == "cuda" else 256
    payload["matmul_peak"] = measure_matmul_peak(settings.device, matmul_size)
    peak_flops = payload["matmul_peak"]["median_flops"]
    log(f"matmul peak {peak_flops / 1e12:.1f} TFLOP/s; budget {settings.budget_seconds:.0f}s")

    tokenizer = build_tiny_tokenizer()
    dataset, lengths = synthetic_rows(settings)
    payload["data"] = data_description(settings, lengths)
    temporary = tempfile.TemporaryDirectory(prefix="random-llama-") if settings.model_dir is None else None
    model_dir = Path(settings.model_dir or temporary.name)
    run = Run(settings, machine, model_dir, tokenizer, dataset, lengths, peak_flops, training_deadline, payload)
    status = 1
    try:
        write_started = time.monotonic()
        write_random_model(settings.model, settings.device, model_dir, tokenizer)
        payload["timings"]["write_model_seconds"] = time.monotonic() - write_started
        log(f"wrote the random model in {payload['timings']['write_model_seconds']:.0f}s")
        measure_variants(run, out_dir, args.smoke)
        measure_evaluation(run, deadline)
        payload["complete"] = is_complete(payload)
        status = 0
    except Exception as error:  # what was measured before is still worth writing
        payload["error"] = f"{type(error).__name__}: {error}"
        traceback.print_exc()
    finally:
        run.loaded.clear()
        if temporary is not None:
            temporary.cleanup()
    payload["timings"]["total_seconds"] = time.monotonic() - started
    add_ratios(payload["variants"])
    path = write_results(out_dir, payload)
    print(format_table(payload["variants"]))
    print(f"results: {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
