"""QLoRA and bf16 LoRA fine-tuning throughput of a Llama-3-8B-shaped model on one GPU.

Measures, in one run on one machine, trl's SFTTrainer with its defaults (dynamic padding to the
longest row of each batch) against the batching strategy train.py chooses for a CUDA device, for
both QLoRA (bitsandbytes 4-bit NF4, double quantization, bf16 compute) and bf16 LoRA. For each:
real (non-padding) tokens per second, the share of processed tokens that are padding, model FLOPs
utilisation against a bf16 matrix-multiply peak measured in the same run, and peak GPU memory.

The weights are random (nothing is downloaded): throughput does not depend on their values. The
rows are synthetic token ids whose lengths follow a long-tailed distribution like real SFT data,
so padding and packing behave as they would on a real data set.

benchmarks/gpu/throughput_llama8b.py supersedes this script: it measures train.py's throughput levers
through train.py's own loading and trainer code. This one stays for the batching figures it measured
(gpu_qlora_llama8b.json) and the helpers that script shares.

Run from the repository root:

    python3 -m benchmarks.gpu.qlora_llama8b --out "$OUT"

`--smoke` runs the same code path on CPU with a tiny Llama in seconds (for tests). The script
stops measuring at `--budget-seconds` (default 420), writes what it has and exits 0.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import random
import shlex
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.measure import (  # noqa: E402
    CountingCollator,
    VariantResult,
    make_step_timer,
    model_shape,
    step_records,
)
from benchmarks.sampling import sample_batches  # noqa: E402
from benchmarks.strategies import DEFAULTS, auto_choice, single_strategies, strategy  # noqa: E402

RESULT_FILE = "gpu_qlora_llama8b.json"


@dataclass(frozen=True)
class ModelSpec:
    """The Llama architecture to build; the default is Llama-3-8B's shape."""

    hidden_size: int = 4096
    intermediate_size: int = 14336
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int = 8
    vocab_size: int = 128256
    rope_theta: float = 500000.0
    max_position_embeddings: int = 8192


SMOKE_MODEL = ModelSpec(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=1024,
    max_position_embeddings=512,
)


@dataclass(frozen=True)
class BenchSettings:
    """Everything that decides what is measured."""

    model: ModelSpec
    seq_len: int
    batch_size: int
    warmup_steps: int
    measured_steps: int
    rows: int
    lora_r: int
    lora_alpha: int
    budget_seconds: float
    device: str
    precisions: tuple[str, ...]
    strategies: tuple[str, ...]
    packing_micro_batch: int
    seed: int
    length_median: int
    length_sigma: float
    min_length: int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        default=os.environ.get("OUT") or str(REPO_ROOT / "benchmarks" / "results"),
        help="folder for the results JSON (default: $OUT if set, else benchmarks/results/)",
    )
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=420.0,
        help="stop measuring after this many seconds from the start, write results, exit 0",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny Llama on CPU, a few steps: checks the code path in seconds"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="rows (or packed sequences) per step")
    parser.add_argument("--seq-len", type=int, default=None, help="maximum sequence length (default 2048)")
    parser.add_argument(
        "--warmup-steps",
        type=int,
        default=None,
        help="optimizer steps run before measuring (default 0: a warm-up pass runs instead)",
    )
    parser.add_argument(
        "--measured-steps",
        type=int,
        default=None,
        help="measured optimizer steps; the data set holds one epoch of them (default 16)",
    )
    parser.add_argument(
        "--precisions",
        default="qlora,bf16",
        help="comma-separated, measured in this order: qlora (4-bit NF4 base), bf16 (bf16 base)",
    )
    parser.add_argument(
        "--packing-micro-batch",
        type=int,
        default=0,
        help="also measure packing with micro-batches of this many packed rows, accumulated "
        "to the same batch (0: don't)",
    )
    parser.add_argument(
        "--strategies",
        default="padding,auto,padding_free,group_by_length",
        help="comma-separated batching strategies (train.py's names; auto = train.py's CUDA "
        "choice); padding (trl's defaults) is always measured",
    )
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    for name in ("batch_size", "seq_len", "warmup_steps", "measured_steps", "packing_micro_batch"):
        value = getattr(args, name)
        if value is not None and value < (0 if name in ("warmup_steps", "packing_micro_batch") else 1):
            least = 0 if name in ("warmup_steps", "packing_micro_batch") else 1
            parser.error(f"--{name.replace('_', '-')}: {value} is not allowed; it must be an integer >= {least}")
    precisions = tuple(part.strip() for part in args.precisions.split(",") if part.strip())
    unknown = [part for part in precisions if part not in ("qlora", "bf16")]
    if unknown or not precisions:
        parser.error(f"--precisions: {args.precisions!r} is not allowed; use qlora, bf16 or both (comma-separated)")
    args.precisions = precisions
    strategies = [part.strip() for part in args.strategies.split(",") if part.strip()]
    allowed = ("auto", *single_strategies())
    unknown = [part for part in strategies if part not in allowed]
    if unknown:
        parser.error(f"--strategies: {', '.join(unknown)} not allowed; choose from {', '.join(allowed)}")
    args.strategies = tuple(strategies)
    return args


def settings_from_args(args: argparse.Namespace) -> BenchSettings:
    """Settings for a GPU run (or a CPU smoke run).

    Unpacked variants train on a random sample of the batches one epoch over the row pool would
    have (benchmarks/sampling.py): length-grouped batches come longest first within an epoch, so
    measuring the first steps would favour or handicap them, and a pool of only a few batches would
    group badly. Packed variants pack the whole pool. A warm-up forward and backward pass on each
    fresh model takes the place of warm-up steps.
    """
    smoke = args.smoke
    batch_size = args.batch_size or (4 if smoke else 8)
    measured_steps = args.measured_steps or (2 if smoke else 16)
    common = {
        "batch_size": batch_size,
        "measured_steps": measured_steps,
        "rows": 96 if smoke else 2048,
        "warmup_steps": args.warmup_steps or 0,
        "budget_seconds": args.budget_seconds,
        "precisions": args.precisions,
        "strategies": args.strategies,
        "packing_micro_batch": args.packing_micro_batch,
        "seed": args.seed,
    }
    if smoke:
        return BenchSettings(
            model=SMOKE_MODEL,
            seq_len=args.seq_len or 256,
            lora_r=8,
            lora_alpha=16,
            device="cpu",
            length_median=48,
            length_sigma=0.8,
            min_length=8,
            **common,
        )
    return BenchSettings(
        model=ModelSpec(),
        seq_len=args.seq_len or 2048,
        lora_r=16,
        lora_alpha=16,
        device="cuda",
        length_median=450,
        length_sigma=0.8,
        min_length=32,
        **common,
    )


def command_line(argv: list[str]) -> str:
    """The command as run from the repository root, with the output folder shown as $OUT."""
    shown, skip = [], False
    for arg in argv:
        if skip:
            shown.append("$OUT")
            skip = False
        elif arg == "--out":
            shown.append(arg)
            skip = True
        elif arg.startswith("--out="):
            shown.append("--out=$OUT")
        else:
            shown.append(arg)
    return shlex.join(["python3", "-m", "benchmarks.gpu.qlora_llama8b", *shown]).replace("'$OUT'", "$OUT")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------------------------------------
# Synthetic data


def synthetic_lengths(count: int, median: int, sigma: float, minimum: int, maximum: int, seed: int) -> list[int]:
    """Row lengths from a log-normal distribution (long right tail, like chat SFT data), clipped."""
    rng = random.Random(seed)
    return [max(minimum, min(maximum, round(rng.lognormvariate(math.log(median), sigma)))) for _ in range(count)]


def synthetic_dataset(settings: BenchSettings):
    """A pre-tokenized datasets.Dataset (input_ids, labels): trl skips tokenization for it."""
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
    rows = []
    for length in lengths:
        ids = torch.randint(3, settings.model.vocab_size, (length,), generator=generator).tolist()
        rows.append({"input_ids": ids, "labels": ids})
    return Dataset.from_list(rows), lengths


def placeholder_tokenizer():
    """SFTTrainer needs a tokenizer for its pad token; the rows are already token ids."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")


# ---------------------------------------------------------------------------------------------
# Model


def build_model(spec: ModelSpec, device: str, attn_implementation: str, dtype):
    """A random-weight LlamaForCausalLM built directly on `device` (no download, no disk)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

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
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn_implementation)
    model.config.use_cache = False
    return model


def quantize_linear_layers_4bit(model, compute_dtype) -> int:
    """Replace every nn.Linear inside the decoder layers by a bitsandbytes NF4 Linear4bit with double
    quantization, quantized from the layer's own weights where they are (no copy to disk).

    The output head stays in full precision, as with BitsAndBytesConfig's defaults. Marks the model
    as loaded in 4 bit, which is how peft and trl recognise a QLoRA base model. Returns the number of
    layers replaced.
    """
    import bitsandbytes as bnb
    import torch

    replaced = 0
    for layer in model.model.layers:
        for parent in list(layer.modules()):
            for child_name, child in list(parent.named_children()):
                if type(child) is not torch.nn.Linear:
                    continue
                device = child.weight.device
                quantized = bnb.nn.Linear4bit(
                    child.in_features,
                    child.out_features,
                    bias=child.bias is not None,
                    compute_dtype=compute_dtype,
                    compress_statistics=True,
                    quant_type="nf4",
                    device="meta",
                )
                quantized.weight = bnb.nn.Params4bit(
                    child.weight.data,
                    requires_grad=False,
                    compress_statistics=True,
                    quant_type="nf4",
                    module=quantized,
                )
                quantized.weight._quantize(device)
                if child.bias is not None:
                    quantized.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
                setattr(parent, child_name, quantized)
                replaced += 1
    model.is_loaded_in_4bit = True
    return replaced


# ---------------------------------------------------------------------------------------------
# Measurements


def measure_matmul_peak(device: str, size: int, repeats: int = 10, warmup: int = 3) -> dict[str, Any]:
    """bf16 (CUDA) or fp32 (CPU) size^3 matrix product on random data: median FLOP/s of `repeats`
    timed products after `warmup` ones."""
    import torch

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    b = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(warmup):
        torch.matmul(a, b)
    sync()
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        torch.matmul(a, b)
        sync()
        rates.append(2 * size**3 / (time.perf_counter() - started))
    del a, b
    return {
        "size": size,
        "dtype": str(dtype).replace("torch.", ""),
        "repeats": repeats,
        "warmup": warmup,
        "median_flops": statistics.median(rates),
        "min_flops": min(rates),
        "max_flops": max(rates),
    }


def planned_strategies(requested: tuple[str, ...], choice: str) -> list[tuple[str, str]]:
    """(strategy, role) in the order measured: trl's defaults, train.py's choice, then the others."""
    names = [choice if name == "auto" else name for name in requested]
    ordered = [DEFAULTS] + ([choice] if choice != DEFAULTS else []) + names
    plan, seen = [], set()
    for name in ordered:
        if name in seen:
            continue
        seen.add(name)
        role = "trl_defaults" if name == DEFAULTS else "train_py_choice" if name == choice else "alternative"
        plan.append((name, role))
    return plan


@dataclass
class Variant:
    """One measured configuration: base-model precision, batching strategy and micro-batch split."""

    precision: str  # "qlora" or "bf16"
    strategy: str  # one of train.py's batching strategies
    role: str  # "trl_defaults", "train_py_choice" or "alternative"
    micro_batch: int | None = None  # rows per forward pass; None: the whole batch at once
    accumulation: int = 1  # micro-batches per optimizer step

    @property
    def name(self) -> str:
        split = f" ({self.micro_batch}x{self.accumulation} accumulated)" if self.micro_batch else ""
        return f"{self.precision}/{self.strategy}{split}"


def run_variant(
    model,
    variant: Variant,
    settings: BenchSettings,
    dataset,
    lengths: list[int],
    tokenizer,
    attn_implementation: str,
    deadline: float,
    peak_flops: float | None,
) -> tuple[Any, dict[str, Any]]:
    """Fine-tune `model` with LoRA under one strategy for warm-up + measured steps; return the base model
    (adapters removed, ready for the next variant) and the variant's summary."""
    import torch
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    on_gpu = settings.device == "cuda"
    strategy_kwargs = strategy(variant.strategy, settings.seq_len, settings.device).sft_config_kwargs
    micro_batch = variant.micro_batch or settings.batch_size
    result = VariantResult(
        name=variant.name,
        settings={
            "precision": variant.precision,
            "strategy": variant.strategy,
            "role": variant.role,
            "sft_config": strategy_kwargs,
            "per_device_train_batch_size": micro_batch,
            "gradient_accumulation_steps": variant.accumulation,
            "max_length": settings.seq_len,
            "lora_r": settings.lora_r,
            "lora_alpha": settings.lora_alpha,
            "gradient_checkpointing": True,
            "attn_implementation": attn_implementation,
        },
    )
    shape = model_shape(model)
    if on_gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    total_steps = settings.warmup_steps + settings.measured_steps
    timer = make_step_timer(
        synchronize=torch.cuda.synchronize if on_gpu else None, deadline=deadline, max_steps=total_steps
    )
    peft_config = LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=0.05,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as output_dir:
        config_kwargs = dict(strategy_kwargs)
        max_length = config_kwargs.pop("max_length", settings.seq_len)
        train_rows = dataset
        if not config_kwargs.get("packing"):
            # The sampled batches, in the order the strategy's sampler drew them.
            batches = sample_batches(
                lengths,
                micro_batch * variant.accumulation,
                config_kwargs.get("train_sampling_strategy") == "group_by_length",
                total_steps,
                settings.seed,
            )
            train_rows = dataset.select([index for batch in batches for index in batch])
            config_kwargs["train_sampling_strategy"] = "sequential"
        args = SFTConfig(
            output_dir=output_dir,
            max_steps=total_steps,
            learning_rate=2e-4,
            lr_scheduler_type="constant",
            per_device_train_batch_size=micro_batch,
            gradient_accumulation_steps=variant.accumulation,
            gradient_checkpointing=True,
            gradient_checkpointing_kwargs={"use_reentrant": False},
            bf16=on_gpu,
            use_cpu=not on_gpu,
            max_length=max_length,
            logging_steps=10_000,
            save_strategy="no",
            report_to="none",
            seed=settings.seed,
            dataloader_num_workers=0,
            disable_tqdm=True,
            **config_kwargs,
        )
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=train_rows,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=[timer],
        )
        counter = CountingCollator(trainer.data_collator)
        trainer.data_collator = counter
        try:
            trainer.train()
        except torch.OutOfMemoryError as error:
            result.error = f"out of GPU memory: {error}".splitlines()[0]
        if result.error is None:
            # Records pair steps with batches by index, so warm-up steps are dropped after pairing.
            records = step_records(timer.durations, counter, args.gradient_accumulation_steps)
            result.steps = records[settings.warmup_steps :]
            if not result.steps:
                result.error = f"no measured step: the time budget ran out after {len(records)} warm-up step(s)"
        if on_gpu:
            result.peak_memory_bytes = int(torch.cuda.max_memory_allocated())
        else:
            result.peak_memory_bytes = _rss_peak_bytes()
        peft_model = trainer.model
        del trainer
        base = peft_model.unload()
        del peft_model
    gc.collect()
    if on_gpu:
        torch.cuda.empty_cache()
    return base, result.summary(shape, peak_flops)


def _rss_peak_bytes() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


# ---------------------------------------------------------------------------------------------
# Environment


def environment(device: str) -> dict[str, Any]:
    import importlib.metadata as metadata

    import torch

    versions = {}
    for package in (
        "torch",
        "transformers",
        "trl",
        "peft",
        "bitsandbytes",
        "datasets",
        "accelerate",
        "flash-attn",
        "kernels",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "versions": versions,
        "hostname_cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    if device == "cuda":
        properties = torch.cuda.get_device_properties(0)
        info.update(
            {
                "gpu": torch.cuda.get_device_name(0),
                "gpu_memory_bytes": int(properties.total_memory),
                "cuda": torch.version.cuda,
                "multiprocessors": properties.multi_processor_count,
            }
        )
    return info


def choose_attn_implementation(device: str) -> str:
    """flash_attention_2 when the flash-attn package is importable on a GPU, else PyTorch's sdpa."""
    if device == "cuda":
        try:
            import flash_attn  # noqa: F401

            return "flash_attention_2"
        except ImportError:
            pass
    return "sdpa"


# ---------------------------------------------------------------------------------------------
# Report


def write_results(out_dir: Path, payload: dict[str, Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RESULT_FILE
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    return path


def add_ratios(variants: list[dict[str, Any]]) -> None:
    """Each variant's real-token throughput relative to trl's defaults at the same precision."""
    baseline = {
        v["settings"]["precision"]: v
        for v in variants
        if v["settings"]["role"] == "trl_defaults" and v.get("real_tokens_per_second")
    }
    for variant in variants:
        base = baseline.get(variant["settings"]["precision"])
        if base and variant.get("real_tokens_per_second"):
            variant["ratio_to_trl_defaults"] = variant["real_tokens_per_second"] / base["real_tokens_per_second"]


def format_table(variants: list[dict[str, Any]]) -> str:
    header = f"{'variant':<34} {'steps':>5} {'real tok/s':>11} {'padding':>8} {'MFU':>6} {'peak GiB':>9} {'ratio':>6}"
    lines = [header, "-" * len(header)]
    for v in variants:
        if not v.get("real_tokens_per_second"):
            lines.append(f"{v['name']:<34} {'-':>5}  {v.get('error') or 'not measured'}")
            continue
        mfu = f"{100 * v['mfu']:.1f}%" if v.get("mfu") is not None else "-"
        peak = f"{v['peak_memory_bytes'] / 2**30:.1f}" if v.get("peak_memory_bytes") else "-"
        ratio = f"{v['ratio_to_trl_defaults']:.2f}x" if v.get("ratio_to_trl_defaults") else "-"
        lines.append(
            f"{v['name']:<34} {v['measured_steps']:>5} {v['real_tokens_per_second']:>11.0f} "
            f"{100 * v['padding_share']:>7.1f}% {mfu:>6} {peak:>9} {ratio:>6}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def planned_variants(settings: BenchSettings, choice: str) -> list[Variant]:
    """Every precision with every planned strategy; packing also split into accumulated micro-batches
    when --packing-micro-batch asks for it (the flattened batch is then shorter)."""
    variants = []
    for precision in settings.precisions:
        for name, role in planned_strategies(settings.strategies, choice):
            variants.append(Variant(precision, name, role))
            micro = settings.packing_micro_batch
            if name == "packing" and micro and micro < settings.batch_size:
                variants.append(
                    Variant(
                        precision, name, "alternative", micro_batch=micro, accumulation=settings.batch_size // micro
                    )
                )
    return variants


def prepare_model(
    precision: str, settings: BenchSettings, attn_implementation: str, compute_dtype, timings: dict[str, Any]
):
    """A fresh model for `precision` (bf16 weights, or those weights quantized to NF4), warmed up."""
    import torch

    on_gpu = settings.device == "cuda"
    gc.collect()
    if on_gpu:
        torch.cuda.empty_cache()
    build_started = time.monotonic()
    model = build_model(settings.model, settings.device, attn_implementation, compute_dtype)
    if on_gpu:
        torch.cuda.synchronize()
    timings[f"build_model_seconds_{precision}"] = time.monotonic() - build_started
    timings["parameters"] = sum(p.numel() for p in model.parameters())  # before 4-bit packing halves the count
    log(f"built the {precision} base model in {timings[f'build_model_seconds_{precision}']:.1f}s")
    if precision == "qlora":
        quantize_started = time.monotonic()
        replaced = quantize_linear_layers_4bit(model, compute_dtype)
        if on_gpu:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
        timings["quantize_seconds"] = time.monotonic() - quantize_started
        timings["quantized_layers"] = replaced
        log(f"quantized {replaced} linear layers to NF4 in {timings['quantize_seconds']:.1f}s")
        # As train.py does for QLoRA: norms, embeddings and the output head in fp32.
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
        model.config.use_cache = False
    warm_started = time.monotonic()
    warm_up(model, settings)
    timings[f"warm_up_seconds_{precision}"] = time.monotonic() - warm_started
    return model


def warm_up(model, settings: BenchSettings) -> None:
    """One forward and backward pass on a full-length row, so the first variant measured does not pay
    for kernel selection and memory-pool growth that later ones find done."""
    import torch

    on_gpu = settings.device == "cuda"
    ids = torch.randint(3, settings.model.vocab_size, (1, settings.seq_len), device=settings.device)
    with torch.autocast(settings.device, dtype=torch.bfloat16, enabled=on_gpu):
        embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        loss = model(inputs_embeds=embeds, labels=ids).loss
    loss.backward()
    del loss, embeds
    if on_gpu:
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    settings = settings_from_args(args)
    deadline = started + settings.budget_seconds
    out_dir = Path(args.out)

    import torch

    if settings.device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device is visible; run with --smoke to check the code path on CPU", file=sys.stderr)
        return 2
    if settings.device == "cpu":
        torch.set_num_threads(min(2, os.cpu_count() or 1))

    attn_implementation = choose_attn_implementation(settings.device)
    choice = auto_choice("cuda")
    payload: dict[str, Any] = {
        "benchmark": "gpu_qlora_llama8b",
        "what": "LoRA fine-tuning throughput, trl defaults (padding) vs train.py's GPU batching choice",
        "command": command_line(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "smoke": bool(args.smoke),
        "settings": {**asdict(settings), "model": asdict(settings.model)},
        "environment": environment(settings.device),
        "attn_implementation": attn_implementation,
        "qlora_base": (
            "NF4 with double quantization, bf16 compute, output head unquantized; then "
            "peft.prepare_model_for_kbit_training (fp32 norms, embeddings, head), as train.py does"
        ),
        "train_py_choice": choice,
        "sampling": "epoch_sample",
        "flops_count": (
            "model FLOPs = 4*N per real token (forward 2N + backward activation gradients 2N; frozen "
            "base, no weight gradients) + causal attention 6*L^2*d per layer per document; N = "
            "weights of all linear layers and the output head (input embedding excluded, LoRA "
            "adapters excluded); gradient-checkpointing recompute is counted only in 'hfu'"
        ),
        "timings": {},
        "variants": [],
        "complete": False,
    }
    log(
        f"device={settings.device} attn={attn_implementation} train.py's CUDA choice (batching=auto)={choice} "
        f"budget={settings.budget_seconds:.0f}s"
    )

    matmul_size = 8192 if settings.device == "cuda" else 512
    payload["matmul_peak"] = measure_matmul_peak(settings.device, matmul_size)
    peak_flops = payload["matmul_peak"]["median_flops"]
    log(f"matmul peak ({matmul_size}^3 {payload['matmul_peak']['dtype']}): {peak_flops / 1e12:.1f} TFLOP/s")

    dataset, lengths = synthetic_dataset(settings)
    payload["data"] = {
        "rows": len(lengths),
        "mean_length": statistics.mean(lengths),
        "median_length": statistics.median(lengths),
        "max_length": max(lengths),
        "distribution": f"log-normal, median {settings.length_median}, sigma "
        f"{settings.length_sigma}, clipped to [{settings.min_length}, {settings.seq_len}]",
    }
    tokenizer = placeholder_tokenizer()

    variants = planned_variants(settings, choice)
    compute_dtype = torch.bfloat16 if settings.device == "cuda" else torch.float32
    model = None
    built_precision = None
    try:
        for index, variant in enumerate(variants):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                payload["variants"].append(
                    {"name": variant.name, "error": "time budget spent before it started", "settings": asdict(variant)}
                )
                continue
            if variant.precision != built_precision:
                del model
                model = prepare_model(
                    variant.precision, settings, attn_implementation, compute_dtype, payload["timings"]
                )
                built_precision = variant.precision
                payload["parameters"] = payload["timings"].pop("parameters")
                remaining = deadline - time.monotonic()
            share = remaining / (len(variants) - index)
            log(f"{variant.name} ({variant.role}): up to {share:.0f}s")
            model, summary = run_variant(
                model,
                variant,
                settings,
                dataset,
                lengths,
                tokenizer,
                attn_implementation,
                deadline=time.monotonic() + share,
                peak_flops=peak_flops,
            )
            payload["variants"].append(summary)
            add_ratios(payload["variants"])
            write_results(out_dir, payload)
            if summary.get("real_tokens_per_second"):
                log(
                    f"{variant.name}: {summary['real_tokens_per_second']:.0f} real tokens/s, padding "
                    f"{100 * summary['padding_share']:.1f}%, MFU {100 * summary.get('mfu', 0):.1f}%"
                )
            else:
                log(f"{variant.name}: {summary.get('error')}")
        payload["complete"] = all(v.get("real_tokens_per_second") for v in payload["variants"])
    except Exception as error:  # the budget's partial results are still worth writing
        payload["error"] = f"{type(error).__name__}: {error}"
        traceback.print_exc()
    payload["timings"]["total_seconds"] = time.monotonic() - started
    add_ratios(payload["variants"])
    path = write_results(out_dir, payload)
    print()
    print(format_table(payload["variants"]))
    print(f"\nmatmul peak {peak_flops / 1e12:.1f} TFLOP/s; results: {path}")
    return 0 if "error" not in payload else 1


if __name__ == "__main__":
    sys.exit(main())
