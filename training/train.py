"""Fine-tune a causal LM with LoRA (QLoRA on CUDA) on chat "messages" JSONL, the SageMaker way.

Inputs follow the SageMaker training contract, with every path also a command-line option:

    $OPT_ML/input/data/train/train.jsonl      one {"messages": [...]} per line (test.jsonl optional)
    $OPT_ML/input/data/model/                 base model files (else hyperparameter model_id)
    $OPT_ML/input/config/hyperparameters.json all values strings; --name VALUE options win
    $OPT_ML/model/                            adapter/, merged/, training_metrics.json
    $OPT_ML/checkpoints/                      checkpoint-N/; a restarted job resumes from the newest

OPT_ML defaults to /opt/ml. Loss is computed on assistant tokens only, each assistant turn ends
with the EOS token, and the adapter is merged into the unquantized base model.

Under torchrun (several GPUs or hosts; launch.py decides) every process trains; with `fsdp` the
model is sharded over them (FSDP2, on CPU processes too). At the end every process takes part in
saving the adapter, then the process group is ended and only the main process merges: the others
exit at once instead of waiting in a collective that would time out during a long merge.

Metric line, once per logging step (see metrics_logging.py; the training job's MetricDefinitions,
in lambdas/common/job_requests.py, read it):

    train_metrics: step=12 loss=1.2345 learning_rate=0.0002 epoch=0.50 tokens_per_second=812.3
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batching import BatchingSettings, count_batch_tokens, resolve
from chat_format import IGNORE_INDEX, ChatFormatError, encode_conversation, ensure_chat_template
from hf_token import TokenError, read_hf_token
from hub_snapshot import pinned_snapshot
from hyperparameters import (
    HyperparameterError,
    Hyperparameters,
    add_hyperparameter_options,
    build_hyperparameters,
    merge_sources,
    read_hyperparameters_file,
)
from metrics_logging import MetricLineCallback, TokenCounter
from serving_artifacts import declared_dtype, save_for_serving, serving_dtype
from throughput import (
    LeverError,
    Levers,
    ModelDims,
    batching_overrides,
    cast_adapters,
    detect_machine,
    request_from,
    resolve_levers,
    sft_config_kwargs,
)

LOG = logging.getLogger("train")
EVAL_ROWS_LIMIT = 32
_CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")


class DataError(ValueError):
    """The training data cannot be used; the message names the file, line and problem."""


@dataclass(frozen=True)
class Paths:
    """Where the job reads and writes; defaults follow the SageMaker container layout under OPT_ML."""

    train_dir: Path
    base_model_dir: Path
    output_dir: Path
    checkpoint_dir: Path
    hyperparameters_file: Path
    failure_file: Path

    @classmethod
    def defaults(cls, opt_ml: Path) -> Paths:
        return cls(
            train_dir=opt_ml / "input" / "data" / "train",
            base_model_dir=opt_ml / "input" / "data" / "model",
            output_dir=opt_ml / "model",
            checkpoint_dir=opt_ml / "checkpoints",
            hyperparameters_file=opt_ml / "input" / "config" / "hyperparameters.json",
            failure_file=opt_ml / "output" / "failure",
        )


@dataclass(frozen=True)
class RunSettings:
    """Decisions made from the hyperparameters and the machine, recorded in training_metrics.json."""

    device: str
    quantize_4bit: bool
    batching: BatchingSettings
    model_source: str
    num_processes: int


# ---------------------------------------------------------------- arguments


def parse_arguments(argv: list[str] | None = None) -> tuple[Paths, Hyperparameters]:
    """Paths and validated hyperparameters; raises HyperparameterError before anything heavy happens."""
    defaults = Paths.defaults(Path(os.environ.get("OPT_ML", "/opt/ml")))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, value in vars(defaults).items():
        parser.add_argument("--" + name, dest=name, type=Path, default=value, help=f"default {value}")
    add_hyperparameter_options(parser)
    args = vars(parser.parse_args(argv))
    paths = Paths(**{name: args.pop(name) for name in vars(defaults)})
    values = merge_sources(read_hyperparameters_file(paths.hyperparameters_file), args)
    return paths, build_hyperparameters(values)


# ---------------------------------------------------------------- data


def load_conversations(path: Path) -> list[list[dict]]:
    """The `messages` of every line of a JSONL file; a bad line raises DataError naming it."""
    if not path.is_file():
        raise DataError(f"{path}: file not found (the train channel must hold train.jsonl)")
    conversations = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path.name} line {number}: not valid JSON ({error.msg})") from error
            messages = row.get("messages") if isinstance(row, dict) else None
            if not isinstance(messages, list):
                raise DataError(f"{path.name} line {number}: expected an object with a 'messages' list")
            conversations.append((number, messages))
    if not conversations:
        raise DataError(f"{path}: no rows")
    return conversations


def tokenize_conversations(tokenizer, conversations, max_length: int):
    """A datasets.Dataset of input_ids/labels (assistant tokens only), truncated to max_length.

    Returns (dataset, number of rows dropped because truncation left no assistant token).
    """
    from datasets import Dataset

    input_ids, labels, dropped = [], [], 0
    for number, messages in conversations:
        try:
            encoded = encode_conversation(tokenizer, messages)
        except ChatFormatError as error:
            raise DataError(f"line {number}: {error}") from error
        ids, lab = encoded.input_ids[:max_length], encoded.labels[:max_length]
        if all(label == IGNORE_INDEX for label in lab):
            dropped += 1
            continue
        input_ids.append(ids)
        labels.append(lab)
    if not input_ids:
        raise DataError(f"no row keeps an assistant token within max_length={max_length}; raise max_length")
    return Dataset.from_dict({"input_ids": input_ids, "labels": labels}), dropped


# ---------------------------------------------------------------- model


def detect_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def wants_4bit(hyperparameters: Hyperparameters, device: str) -> bool:
    """QLoRA on CUDA by default; `4bit` forces it (bitsandbytes also quantizes on CPU), `none` never."""
    if hyperparameters.quantization == "auto":
        return device == "cuda"
    return hyperparameters.quantization == "4bit"


def model_source(paths: Paths, hyperparameters: Hyperparameters) -> str:
    """The `model` channel when it holds a model, else the Hub id from the hyperparameters."""
    if (paths.base_model_dir / "config.json").is_file():
        return str(paths.base_model_dir)
    if hyperparameters.model_id:
        return hyperparameters.model_id
    raise DataError(f"no base model: {paths.base_model_dir} has no config.json and hyperparameter model_id is empty")


def compute_dtype(device: str):
    """bf16 (or fp16) on GPUs; fp32 on CPU, where half precision is slow and imprecise."""
    import torch

    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def load_training_model(
    source: str,
    settings: RunSettings,
    hyperparameters: Hyperparameters,
    token: str | None,
    attn_implementation: str = "sdpa",
):
    """The base model ready for LoRA: 4-bit NF4 with double quantization for QLoRA, else full weights.

    Activation checkpointing is left to the Trainer (build_sft_config), which turns it on for the
    layers the `gradient_checkpointing` lever names.
    """
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    dtype = compute_dtype(settings.device)
    kwargs: dict[str, Any] = {"dtype": dtype, "token": token, "attn_implementation": attn_implementation}
    if settings.quantize_4bit:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_quant_storage=dtype if hyperparameters.fsdp else torch.uint8,
        )
        if not hyperparameters.fsdp:
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            kwargs["device_map"] = {"": local_rank if settings.device == "cuda" else "cpu"}
    model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    if settings.quantize_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    configure_for_training(model)
    return model


def configure_for_training(model) -> None:
    """No KV cache while training: with a cache, transformers skips the block-diagonal attention mask
    that keeps packed and padding-free examples from attending to each other."""
    model.config.use_cache = False


def lora_config(hyperparameters: Hyperparameters):
    from peft import LoraConfig

    return LoraConfig(
        r=hyperparameters.lora_r,
        lora_alpha=hyperparameters.lora_alpha,
        lora_dropout=hyperparameters.lora_dropout,
        target_modules="all-linear",
        bias="none",
        task_type="CAUSAL_LM",
    )


def fsdp_arguments(
    hyperparameters: Hyperparameters, model, activation_checkpointing: bool | None = None
) -> dict[str, Any]:
    """SFTConfig's fsdp/fsdp_config for `fsdp` (e.g. "full_shard auto_wrap"), FSDP2 wrapping each decoder layer.

    FSDP's own activation checkpointing (every layer) is on unless `gradient_checkpointing` resolved to none.
    """
    options = hyperparameters.fsdp.split()
    if not options:
        return {}
    if activation_checkpointing is None:
        activation_checkpointing = hyperparameters.gradient_checkpointing != "none"
    config: dict[str, Any] = {
        "version": 2,
        "reshard_after_forward": "shard_grad_op" not in options,
        "cpu_offload": "offload" in options,
        "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "activation_checkpointing": activation_checkpointing,
        "state_dict_type": "FULL_STATE_DICT",
        "cpu_ram_efficient_loading": False,  # every process loads the model before FSDP shards it
    }
    layer_classes = list(getattr(model, "_no_split_modules", None) or [])
    if layer_classes:
        config["transformer_layer_cls_to_wrap"] = layer_classes
    return {"fsdp": True, "fsdp_config": config}


def enable_fsdp_on_cpu(trainer) -> None:
    """Let CPU processes (gloo) take accelerate's FSDP2 path, as GPU processes do.

    accelerate turns FSDP on only for accelerator devices and silently trains CPU processes with
    DDP instead, although torch's FSDP2 shards CPU tensors over gloo. Local mode and the tests
    train on CPU: without this they would never run the sharding, the FSDP checkpoints and their
    resume that a GPU job runs. On GPUs (and without `fsdp`) this changes nothing.
    """
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    if trainer.args.fsdp_plugin_args is None or trainer.accelerator.distributed_type != DistributedType.MULTI_CPU:
        return
    for shared in (PartialState._shared_state, AcceleratorState._shared_state):
        shared["distributed_type"] = DistributedType.FSDP
    AcceleratorState._shared_state["fsdp_plugin"] = FullyShardedDataParallelPlugin(**trainer.args.fsdp_plugin_args)
    trainer.is_fsdp_enabled = True


def parameter_shares(model) -> tuple[int, int]:
    """(bytes of all parameters, bytes this process holds): under FSDP each holds about 1/N."""
    from torch.distributed.tensor import DTensor

    total = held = 0
    for parameter in model.parameters():
        size = parameter.element_size()
        total += parameter.numel() * size
        held += (parameter.to_local().numel() if isinstance(parameter, DTensor) else parameter.numel()) * size
    return total, held


def release_ranks_then(work_on_main, is_main: bool):
    """End the process group on every rank, then run `work_on_main` on the main process alone.

    Merging a large model on CPU takes longer than any collective timeout (NCCL's and gloo's
    defaults are 10 and 30 minutes); a rank that waited for it in a barrier would fail the job.
    After the last barrier here no rank waits for another: the others return None at once.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return work_on_main() if is_main else None


def newest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The highest-numbered complete checkpoint (trainer_state.json is written last)."""
    if not checkpoint_dir.is_dir():
        return None
    found = []
    for child in checkpoint_dir.iterdir():
        match = _CHECKPOINT_NAME.match(child.name)
        if match and (child / "trainer_state.json").is_file():
            found.append((int(match.group(1)), child))
    return max(found)[1] if found else None


# ---------------------------------------------------------------- training


def job_levers(
    hyperparameters: Hyperparameters, settings: RunSettings, model=None, mean_row_tokens: float | None = None
) -> Levers:
    """The throughput levers for this job on this machine (training/throughput.py); with the loaded
    model, `auto` checkpointing and token budgets are sized from its shape and the memory it leaves."""
    request = request_from(
        hyperparameters, padding_free=settings.batching.padding_free, quantize_4bit=settings.quantize_4bit
    )
    machine = detect_machine(settings.device)
    if model is None:
        return resolve_levers(request, machine, mean_row_tokens=mean_row_tokens)
    return resolve_levers(request, machine, ModelDims.of(model.config), model_bytes(model), mean_row_tokens)


def build_sft_config(
    paths: Paths, hyperparameters: Hyperparameters, settings: RunSettings, model, levers: Levers | None = None
):
    import torch
    from trl import SFTConfig

    levers = levers or job_levers(hyperparameters, settings, model)
    use_bf16 = settings.device == "cuda" and compute_dtype(settings.device) == torch.bfloat16
    fsdp = fsdp_arguments(hyperparameters, model, levers.gradient_checkpointing.value != "none")
    batching = {**settings.batching.sft_config_kwargs(hyperparameters.max_length), **batching_overrides(levers.plan)}
    return SFTConfig(
        output_dir=str(paths.checkpoint_dir),
        num_train_epochs=hyperparameters.epochs,
        max_steps=hyperparameters.max_steps,
        learning_rate=hyperparameters.learning_rate,
        per_device_eval_batch_size=hyperparameters.per_device_train_batch_size,
        warmup_steps=hyperparameters.warmup_ratio,  # a float below 1 is a ratio of the total steps
        logging_strategy="steps",
        logging_steps=hyperparameters.logging_steps,
        save_strategy="steps",
        save_steps=hyperparameters.save_steps,
        save_total_limit=2,
        eval_strategy="no",
        seed=hyperparameters.seed,
        report_to="none",
        disable_tqdm=True,
        bf16=use_bf16,
        fp16=settings.device == "cuda" and not use_bf16,
        use_cpu=settings.device == "cpu",
        ddp_backend="gloo" if settings.device == "cpu" and settings.num_processes > 1 else None,
        ddp_find_unused_parameters=False,
        assistant_only_loss=False,  # labels already mask everything but the assistant turns
        **sft_config_kwargs(levers, fsdp=bool(fsdp)),
        **batching,
        **fsdp,
    )


def make_trainer(
    model,
    tokenizer,
    train_dataset,
    eval_dataset,
    sft_config,
    hyperparameters,
    counter,
    num_processes,
    lora_dtype: str | None = None,
):
    from transformers import TrainerCallback
    from trl import SFTTrainer

    class TokenCountingSFTTrainer(SFTTrainer):
        """Counts real and padding tokens of every batch, for tokens/s and the padding share."""

        def create_accelerator_and_postprocess(self):
            super().create_accelerator_and_postprocess()
            enable_fsdp_on_cpu(self)

        def training_step(self, model, inputs, num_items_in_batch=None):
            counter.add(*count_batch_tokens(inputs))
            return super().training_step(model, inputs, num_items_in_batch)

    class ShardReport(TrainerCallback):
        """One line saying how much of the model each process holds once FSDP has sharded it."""

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if getattr(args, "fsdp_plugin_args", None) and model is not None:
                total, held = parameter_shares(model)
                if state.is_world_process_zero:
                    LOG.info(
                        "fsdp: parameters %.2f MiB in all, %.2f MiB held by each of %d processes",
                        total / 2**20,
                        held / 2**20,
                        num_processes,
                    )

    trainer = TokenCountingSFTTrainer(
        model=model,
        args=sft_config,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=lora_config(hyperparameters),
        callbacks=[MetricLineCallback(counter, num_processes=num_processes), ShardReport()],
    )
    if lora_dtype is not None:
        cast_adapters(trainer.model, lora_dtype)  # before the optimizer is made, at the start of training
    return trainer


def model_bytes(model) -> int:
    """Memory the loaded model takes: its parameters' and buffers' bytes (4-bit weights count packed).

    Read off the tensors rather than the CUDA allocator: a bf16 base is still on the CPU here; the
    Trainer moves it to the GPU.
    """
    return sum(tensor.numel() * tensor.element_size() for tensor in [*model.parameters(), *model.buffers()])


def optimizer_record(trainer) -> dict[str, Any]:
    """Which optimizer the Trainer made, and whether it runs the fused kernel."""
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    if optimizer is None:
        return {}
    return {"class": type(optimizer).__name__, "fused": bool(optimizer.defaults.get("fused"))}


def generation_eos_ids(tokenizer, base_generation_config) -> int | list[int]:
    """The tokenizer's EOS first, then any stop tokens the base model already had."""
    ids = [tokenizer.eos_token_id]
    existing = getattr(base_generation_config, "eos_token_id", None) if base_generation_config else None
    for token_id in existing if isinstance(existing, list) else [existing]:
        if token_id is not None and token_id not in ids:
            ids.append(token_id)
    return ids[0] if len(ids) == 1 else ids


def merge_and_save(source: str, adapter_dir: Path, merged_dir: Path, tokenizer, device: str, token: str | None) -> None:
    """Merge the adapter into the unquantized base model and save it with tokenizer and generation config,
    in the serving dtype and in the form every supported serving image reads (serving_artifacts.py)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, GenerationConfig

    dtype = compute_dtype(device) if device == "cuda" else torch.float32
    base = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, token=token)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    try:
        generation = GenerationConfig.from_pretrained(source, token=token)
    except OSError:
        generation = GenerationConfig.from_model_config(merged.config)
    generation.eos_token_id = generation_eos_ids(tokenizer, generation)
    generation.pad_token_id = tokenizer.pad_token_id
    merged.generation_config = generation
    merged.config.eos_token_id = tokenizer.eos_token_id
    merged.config.pad_token_id = tokenizer.pad_token_id
    merged.config.use_cache = True
    save_for_serving(merged, tokenizer, merged_dir, serving_dtype(declared_dtype(source, token)))


def write_failure(paths: Paths, message: str) -> None:
    """SageMaker shows the first 1024 characters of this file as the job's FailureReason."""
    try:
        paths.failure_file.parent.mkdir(parents=True, exist_ok=True)
        paths.failure_file.write_text(message[:1024], encoding="utf-8")
    except OSError:
        pass


def train(paths: Paths, hyperparameters: Hyperparameters) -> dict[str, Any]:
    """Run one training job end to end; returns what is written to training_metrics.json."""
    import torch
    from transformers import AutoTokenizer

    started = time.perf_counter()
    device = detect_device()
    conversations = load_conversations(paths.train_dir / "train.jsonl")
    test_file = paths.train_dir / "test.jsonl"
    eval_conversations = load_conversations(test_file)[:EVAL_ROWS_LIMIT] if test_file.is_file() else []
    source = model_source(paths, hyperparameters)
    settings = RunSettings(
        device=device,
        quantize_4bit=wants_4bit(hyperparameters, device),
        batching=resolve(hyperparameters.batching, device),
        model_source=source,
        num_processes=int(os.environ.get("WORLD_SIZE", "1")),
    )
    LOG.info(
        "device=%s processes=%d 4bit=%s batching=%s model=%s",
        device,
        settings.num_processes,
        settings.quantize_4bit,
        settings.batching.strategy,
        source,
    )
    job_levers(hyperparameters, settings)  # a lever this machine cannot give fails the job before anything loads
    token = read_hf_token(hyperparameters.hf_token_secret_arn)
    if source == hyperparameters.model_id:  # a Hub id: the commit Preflight resolved, downloaded once
        source = pinned_snapshot(source, hyperparameters.model_revision, token)

    tokenizer = ensure_chat_template(AutoTokenizer.from_pretrained(source, token=token))
    train_dataset, dropped = tokenize_conversations(tokenizer, conversations, hyperparameters.max_length)
    eval_dataset = (
        tokenize_conversations(tokenizer, eval_conversations, hyperparameters.max_length)[0]
        if eval_conversations
        else None
    )

    load_started = time.perf_counter()
    model = load_training_model(
        source,
        settings,
        hyperparameters,
        token,
        attn_implementation=job_levers(hyperparameters, settings).attn_implementation.value,
    )
    load_seconds = time.perf_counter() - load_started
    lengths = [len(ids) for ids in train_dataset["input_ids"]]
    levers = job_levers(hyperparameters, settings, model, mean_row_tokens=sum(lengths) / len(lengths))
    LOG.info("throughput levers: %s", "; ".join(levers.summary_lines()))

    counter = TokenCounter()
    trainer = make_trainer(
        model,
        tokenizer,
        train_dataset,
        eval_dataset,
        build_sft_config(paths, hyperparameters, settings, model, levers),
        hyperparameters,
        counter,
        settings.num_processes,
        lora_dtype=levers.lora_dtype.value,
    )
    resume_from = newest_checkpoint(paths.checkpoint_dir)
    if resume_from:
        LOG.info("resuming from %s", resume_from)
    train_started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    train_seconds = time.perf_counter() - train_started
    eval_loss = trainer.evaluate()["eval_loss"] if eval_dataset is not None else None

    adapter_dir, merged_dir = paths.output_dir / "adapter", paths.output_dir / "merged"
    trainer.save_model(str(adapter_dir))  # every rank: under FSDP the adapter is gathered from all
    is_main = trainer.is_world_process_zero()
    log_history = list(trainer.state.log_history)
    throughput = {**levers.to_dict(), "optimizer": optimizer_record(trainer)}
    del trainer, model
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()

    def merge_and_record() -> dict[str, Any]:
        tokenizer.save_pretrained(adapter_dir)
        merge_started = time.perf_counter()
        merge_and_save(source, adapter_dir, merged_dir, tokenizer, device, token)
        merge_seconds = time.perf_counter() - merge_started
        losses = [entry["loss"] for entry in log_history if "loss" in entry]
        real_total = counter.real_tokens * settings.num_processes
        metrics = {
            "global_step": result.global_step,
            "epochs": next((entry["epoch"] for entry in reversed(log_history) if "epoch" in entry), None),
            "final_loss": losses[-1] if losses else None,
            "first_loss": losses[0] if losses else None,
            "train_loss": result.training_loss,
            "eval_loss": eval_loss,
            "train_rows": len(train_dataset),
            "dropped_rows": dropped,
            "real_tokens": real_total,
            "padding_tokens": counter.padding_tokens * settings.num_processes,
            "padding_share": counter.padding_share,
            "real_tokens_per_second": real_total / train_seconds if train_seconds > 0 else None,
            "batching": settings.batching.to_dict(),
            "throughput": throughput,
            "quantization": "4bit" if settings.quantize_4bit else "none",
            "device": device if device == "cpu" else f"cuda ({torch.cuda.get_device_name(0)})",
            "num_processes": settings.num_processes,
            "fsdp": hyperparameters.fsdp or None,
            "resumed_from": str(resume_from) if resume_from else None,
            "timings": {
                "model_load_seconds": load_seconds,
                "train_seconds": train_seconds,
                "merge_seconds": merge_seconds,
                "total_seconds": time.perf_counter() - started,
            },
            "hyperparameters": hyperparameters.to_dict(),
            "log_history": log_history,
        }
        paths.output_dir.mkdir(parents=True, exist_ok=True)
        (paths.output_dir / "training_metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
        return metrics

    # The other ranks are released before the main process merges: no collective outlives the training.
    return release_ranks_then(merge_and_record, is_main) or {}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        paths, hyperparameters = parse_arguments(argv)
    except HyperparameterError as error:
        print(error, file=sys.stderr)
        write_failure(Paths.defaults(Path(os.environ.get("OPT_ML", "/opt/ml"))), str(error))
        return 2
    try:
        train(paths, hyperparameters)
    except DataError as error:
        print(f"training data error: {error}", file=sys.stderr)
        write_failure(paths, f"training data error: {error}")
        return 2
    except LeverError as error:
        print(f"invalid hyperparameters: {error}", file=sys.stderr)
        write_failure(paths, f"invalid hyperparameters: {error}")
        return 2
    except TokenError as error:
        print(f"Hugging Face token: {error}", file=sys.stderr)
        write_failure(paths, f"Hugging Face token: {error}")
        return 2
    except Exception as error:
        write_failure(paths, f"{type(error).__name__}: {error}")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
