"""The throughput levers of a training job, and what `auto` picks for each on the job's machine.

Each lever is a hyperparameter; `resolve_levers` turns the requested values into concrete ones
from what the machine offers (`Machine`: CUDA or not, compute capability, bf16, memory, which
optional packages are importable) and from the model's shape, and says why for each. train.py
logs the choices once at start and writes them into training_metrics.json.

- `attn_implementation`: `auto` takes flash-attention 2 where the flash-attn package is importable
  on a CUDA device of compute capability 8.0 or more and batches are padding-free (its varlen
  kernel costs the sum of the squared document lengths); PyTorch's `sdpa` otherwise. A Hub kernel
  (`kernels-community/flash-attn`) is used only when asked for: it needs the `kernels` package (at a
  version transformers accepts) and the Hub, or the kernel in the local Hugging Face cache, since
  the kernel is downloaded at its first use and an isolated job cannot download it.
- `use_liger_kernel`: Liger's Triton kernels (fused RMSNorm, SwiGLU, RoPE, and a cross entropy
  fused with the output head that never materialises the logits); `auto` = on CUDA when the
  liger-kernel package is importable.
- `gradient_checkpointing`: `full` recomputes every decoder layer in the backward pass,
  `selective` every second one, `none` none. `auto` estimates the activation memory of the
  largest micro-batch (`activation_bytes`) and takes the least recompute that fits the memory left
  once the model is loaded.
- `tokens_per_micro_batch`: micro-batches by a token budget: conversations packed best-fit into
  rows of that many tokens, one row per micro-batch, and gradient accumulation derived so an
  optimizer step holds the tokens the user's rows per step held (`micro_batch_plan`).
- `torch_compile`, `optim` (fused AdamW on CUDA), `lora_dtype` (bf16 or fp32 adapter weights).
"""

from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

# Each lever's choices as a type (the hyperparameters model's fields) and as a tuple (for the rules here).
Attention = Literal["auto", "flash_attention_2", "kernels-community/flash-attn", "sdpa", "eager"]
Switch = Literal["auto", "true", "false"]
Checkpointing = Literal["auto", "full", "selective", "none"]
Optim = Literal["auto", "adamw_torch", "adamw_torch_fused", "paged_adamw_8bit", "paged_adamw_32bit", "adamw_bnb_8bit"]
LoraDtype = Literal["auto", "bf16", "fp32"]
ATTENTION_CHOICES: tuple[str, ...] = get_args(Attention)
SWITCH_CHOICES: tuple[str, ...] = get_args(Switch)
CHECKPOINTING_CHOICES: tuple[str, ...] = get_args(Checkpointing)
OPTIM_CHOICES: tuple[str, ...] = get_args(Optim)
LORA_DTYPE_CHOICES: tuple[str, ...] = get_args(LoraDtype)
HUB_FLASH_KERNEL = "kernels-community/flash-attn"
# Optional packages the choices depend on: importable name -> the name to install.
OPTIONAL_PACKAGES = {"flash_attn": "flash-attn", "liger_kernel": "liger-kernel", "kernels": "kernels"}
FLASH_MIN_CAPABILITY = (8, 0)  # flash-attention 2 runs on Ampere and newer
SELECTIVE_EVERY = 2  # `selective` checkpoints every second decoder layer
MEMORY_MARGIN = 0.15  # share of the memory left that the estimate may not use (fragmentation, kernels' workspaces)
# Activations a LoRA'd Llama-style decoder layer keeps per token for its backward pass, in multiples of
# the hidden and the intermediate size: norms' inputs and outputs, q/k/v/o and MLP inputs, rotated q/k,
# attention output, gate/up/SiLU products, and the dropout copies of each adapter's input.
ACTIVATION_VALUES_PER_HIDDEN = 16
ACTIVATION_VALUES_PER_INTERMEDIATE = 5
ACTIVATION_BYTES_PER_VALUE = 2  # bf16


class LeverError(ValueError):
    """A lever was asked for that this machine cannot give; the message names the field, value and why."""


@dataclass(frozen=True)
class Machine:
    """What the automatic choices depend on; `detect_machine` reads it, tests fake it."""

    device: str  # "cuda" or "cpu"
    cuda_capability: tuple[int, int] | None = None
    bf16: bool = False
    memory_bytes: int | None = None  # the GPU's memory on CUDA, the host's on CPU
    packages: frozenset[str] = frozenset()  # the importable ones among OPTIONAL_PACKAGES

    def has(self, package: str) -> bool:
        return package in self.packages


def importable_packages() -> frozenset[str]:
    """The optional packages that are installed; `kernels` only at a version transformers accepts."""
    found = {name for name in OPTIONAL_PACKAGES if importlib.util.find_spec(name) is not None}
    if "kernels" in found:
        try:
            from transformers.utils.import_utils import is_kernels_available

            if not is_kernels_available():
                found.discard("kernels")
        except ImportError:
            found.discard("kernels")
    return frozenset(found)


def detect_machine(device: str) -> Machine:
    """The Machine this process runs on (`device` as train.py detected it)."""
    import torch

    if device == "cuda":
        index = torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(index)
        return Machine(
            device="cuda",
            cuda_capability=(major, minor),
            bf16=torch.cuda.is_bf16_supported(),
            memory_bytes=int(torch.cuda.get_device_properties(index).total_memory),
            packages=importable_packages(),
        )
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = None
    return Machine(device="cpu", memory_bytes=memory, packages=importable_packages())


@dataclass(frozen=True)
class ModelDims:
    """What the activation estimate needs to know about the model."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    vocab_size: int

    @classmethod
    def of(cls, config) -> ModelDims:
        hidden = int(config.hidden_size)
        return cls(
            hidden_size=hidden,
            intermediate_size=int(getattr(config, "intermediate_size", None) or 4 * hidden),
            num_layers=int(config.num_hidden_layers),
            vocab_size=int(config.vocab_size),
        )


def activation_bytes(dims: ModelDims, tokens: int, checkpointing: str) -> int:
    """A rough estimate of the activation memory one micro-batch of `tokens` tokens keeps for backward.

    A layer that is not checkpointed keeps (16 x hidden + 5 x intermediate) bf16 values per token; a
    checkpointed one keeps only its input (hidden values) and, while it is recomputed, one layer's
    full activations exist again. The logits are left out: trl computes the loss from the output head
    in tiles and never holds the whole (tokens x vocabulary) matrix.
    """
    per_layer = (
        ACTIVATION_BYTES_PER_VALUE
        * tokens
        * (
            ACTIVATION_VALUES_PER_HIDDEN * dims.hidden_size
            + ACTIVATION_VALUES_PER_INTERMEDIATE * dims.intermediate_size
        )
    )
    kept_input = ACTIVATION_BYTES_PER_VALUE * tokens * dims.hidden_size
    checkpointed = checkpointed_layer_count(dims.num_layers, checkpointing)
    return int(
        (dims.num_layers - checkpointed) * per_layer + checkpointed * kept_input + (per_layer if checkpointed else 0)
    )


def checkpointed_layer_count(num_layers: int, checkpointing: str) -> int:
    if checkpointing == "full":
        return num_layers
    if checkpointing == "selective":
        return len(selective_layers(num_layers))
    return 0


def selective_layers(num_layers: int) -> list[int]:
    """The decoder layers `selective` checkpoints: every SELECTIVE_EVERY-th, starting with the first, as
    transformers' `every_n_layers` picks them."""
    return list(range(0, num_layers, SELECTIVE_EVERY))


@dataclass(frozen=True)
class MicroBatchPlan:
    """How rows become micro-batches and micro-batches become an optimizer step."""

    tokens_per_micro_batch: int | None  # None: micro-batches of per_device_train_batch_size rows
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    tokens_per_step_asked: int | None = None  # rows per step asked for x mean tokens per row


def micro_batch_plan(
    budget: int | None, rows_per_micro_batch: int, accumulation: int, mean_row_tokens: float
) -> MicroBatchPlan:
    """The accumulation rule for a token budget.

    The user asks for `rows_per_micro_batch` x `accumulation` rows per optimizer step (per process),
    about G = that x mean_row_tokens tokens. With a budget of B tokens per micro-batch (one packed row
    each), accumulation becomes max(1, round(G / B)), so an optimizer step holds about G tokens, as
    many rows as asked on average; a step can hold less than B tokens only when G is below B.
    """
    if budget is None:
        return MicroBatchPlan(None, rows_per_micro_batch, accumulation)
    asked = round(rows_per_micro_batch * accumulation * mean_row_tokens)
    return MicroBatchPlan(budget, 1, max(1, round(asked / budget)), asked)


@dataclass(frozen=True)
class Choice:
    value: Any
    reason: str


@dataclass(frozen=True)
class Levers:
    """The concrete levers of one job, each with the reason it was chosen."""

    attn_implementation: Choice
    use_liger_kernel: Choice
    gradient_checkpointing: Choice
    micro_batches: Choice  # value: MicroBatchPlan
    torch_compile: Choice
    optim: Choice
    lora_dtype: Choice

    def summary_lines(self) -> list[str]:
        lines = []
        for name, choice in self.items():
            value = asdict(choice.value) if isinstance(choice.value, MicroBatchPlan) else choice.value
            lines.append(f"{name}={value} ({choice.reason})")
        return lines

    def items(self):
        return [(name, getattr(self, name)) for name in self.__dataclass_fields__]

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for name, choice in self.items():
            value = asdict(choice.value) if isinstance(choice.value, MicroBatchPlan) else choice.value
            out[name] = {"value": value, "reason": choice.reason}
        return out

    @property
    def plan(self) -> MicroBatchPlan:
        return self.micro_batches.value


@dataclass(frozen=True)
class Request:
    """The lever hyperparameters as given (after parsing), plus what the choices depend on."""

    attn_implementation: str = "auto"
    use_liger_kernel: str = "auto"
    gradient_checkpointing: str = "auto"
    tokens_per_micro_batch: str = "auto"
    torch_compile: str = "auto"
    optim: str = "auto"
    lora_dtype: str = "auto"
    padding_free: bool = False  # the batching strategy gives padding-free (or packed) batches
    quantize_4bit: bool = False
    fsdp: bool = False
    per_device_train_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    max_length: int = 2048


def resolve_attention(request: Request, machine: Machine) -> Choice:
    asked = request.attn_implementation
    flash_ok = (
        machine.device == "cuda"
        and machine.has("flash_attn")
        and (machine.cuda_capability or (0, 0)) >= FLASH_MIN_CAPABILITY
    )
    if asked == "auto":
        if flash_ok and request.padding_free:
            return Choice("flash_attention_2", "auto: flash-attn importable on CUDA, padding-free batches")
        if machine.device != "cuda":
            return Choice("sdpa", "auto: no CUDA device")
        if not machine.has("flash_attn"):
            return Choice("sdpa", "auto: the flash-attn package is not installed")
        if not flash_ok:
            return Choice("sdpa", f"auto: compute capability {machine.cuda_capability} is below 8.0")
        return Choice("sdpa", "auto: batches are padded, flash-attention's varlen kernel would not help")
    if asked == "flash_attention_2" and not flash_ok:
        why = (
            "needs a CUDA device"
            if machine.device != "cuda"
            else "needs the flash-attn package"
            if not machine.has("flash_attn")
            else "needs compute capability 8.0 or more"
        )
        raise LeverError(f"attn_implementation='flash_attention_2': {why}; allowed here: auto, sdpa, eager")
    if asked == HUB_FLASH_KERNEL and (machine.device != "cuda" or not machine.has("kernels")):
        why = "needs a CUDA device" if machine.device != "cuda" else "needs the kernels package"
        raise LeverError(f"attn_implementation='{HUB_FLASH_KERNEL}': {why}; allowed here: auto, sdpa, eager")
    return Choice(asked, "asked for")


def _switch(asked: str, auto_value: bool, auto_reason: str) -> Choice:
    if asked == "auto":
        return Choice(auto_value, f"auto: {auto_reason}")
    return Choice(asked == "true", "asked for")


def resolve_liger(request: Request, machine: Machine) -> Choice:
    usable = machine.device == "cuda" and machine.has("liger_kernel")
    if request.use_liger_kernel == "true" and not usable:
        why = "needs a CUDA device (Triton kernels)" if machine.device != "cuda" else "needs the liger-kernel package"
        raise LeverError(f"use_liger_kernel='true': {why}; allowed here: auto, false")
    reason = (
        "liger-kernel importable on CUDA"
        if usable
        else "no CUDA device"
        if machine.device != "cuda"
        else "the liger-kernel package is not installed"
    )
    return _switch(request.use_liger_kernel, usable, reason)


def resolve_compile(request: Request, machine: Machine) -> Choice:
    reason = "not measured to help on a GPU yet" if machine.device == "cuda" else "no CUDA device"
    return _switch(request.torch_compile, False, reason)


def resolve_optim(request: Request, machine: Machine) -> Choice:
    asked = request.optim
    if asked == "auto":
        if machine.device == "cuda":
            return Choice("adamw_torch_fused", "auto: CUDA, one fused kernel per parameter group")
        return Choice("adamw_torch", "auto: no CUDA device")
    if asked in ("paged_adamw_8bit", "paged_adamw_32bit", "adamw_bnb_8bit") and machine.device != "cuda":
        raise LeverError(
            f"optim={asked!r}: bitsandbytes optimizers need a CUDA device; "
            "allowed here: auto, adamw_torch, adamw_torch_fused"
        )
    return Choice(asked, "asked for")


def resolve_lora_dtype(request: Request, machine: Machine) -> Choice:
    asked = request.lora_dtype
    if asked == "auto":
        if request.quantize_4bit:
            return Choice("bf16", "auto: 4-bit base, bf16 adapters as trl and the QLoRA paper have them")
        return Choice("fp32", "auto: fp32 adapters keep small optimizer updates that bf16 would round away")
    if asked == "bf16" and machine.device == "cuda" and not machine.bf16:
        raise LeverError("lora_dtype='bf16': this GPU has no bf16; allowed here: auto, fp32")
    return Choice(asked, "asked for")


def memory_left(machine: Machine, model_bytes: int) -> int | None:
    """Memory the activations may use: the device's, less the model's, less MEMORY_MARGIN of the rest."""
    if machine.memory_bytes is None:
        return None
    return int((machine.memory_bytes - model_bytes) * (1 - MEMORY_MARGIN))


def resolve_micro_batches(
    request: Request,
    machine: Machine,
    attention: str,
    dims: ModelDims | None,
    memory: int | None,
    mean_row_tokens: float,
) -> Choice:
    """The token budget (or none) and the accumulation that keeps the optimizer step's size."""
    asked = request.tokens_per_micro_batch
    rows, accumulation = request.per_device_train_batch_size, request.gradient_accumulation_steps
    if asked == "none":
        return Choice(micro_batch_plan(None, rows, accumulation, mean_row_tokens), "asked for: rows per micro-batch")
    if asked != "auto":
        budget = int(asked)
        if not request.padding_free:
            raise LeverError(
                f"tokens_per_micro_batch={budget}: needs padding-free batches (batching padding_free, "
                "packing or auto on CUDA); allowed with padded batches: auto, none"
            )
        if budget < request.max_length:
            raise LeverError(
                f"tokens_per_micro_batch={budget}: below max_length={request.max_length}, so the "
                f"longest conversation would not fit; allowed: auto, none, or an integer >= max_length"
            )
        return Choice(micro_batch_plan(budget, rows, accumulation, mean_row_tokens), "asked for")
    if not (attention in ("flash_attention_2", HUB_FLASH_KERNEL) and request.padding_free):
        return Choice(
            micro_batch_plan(None, rows, accumulation, mean_row_tokens),
            "auto: rows per micro-batch; a token budget pays only with flash-attention's varlen "
            f"kernel on padding-free batches (attention here: {attention})",
        )
    asked_tokens = rows * accumulation * mean_row_tokens
    budget = max(request.max_length, math.ceil(asked_tokens))
    if dims is not None and memory is not None:
        # Split the step into as few micro-batches as fit with full checkpointing.
        while budget > request.max_length and activation_bytes(dims, budget, "full") > memory:
            budget = max(request.max_length, budget // 2)
    return Choice(
        micro_batch_plan(budget, rows, accumulation, mean_row_tokens),
        "auto: the optimizer step's tokens in as few packed micro-batches as fit memory",
    )


def resolve_checkpointing(
    request: Request, machine: Machine, dims: ModelDims | None, memory: int | None, micro_batch_tokens: int
) -> Choice:
    asked = request.gradient_checkpointing
    if asked == "selective" and request.fsdp:
        raise LeverError(
            "gradient_checkpointing='selective': not available with fsdp (FSDP checkpoints every "
            "layer or none); allowed with fsdp: auto, full, none"
        )
    if asked != "auto":
        return Choice(asked, "asked for")
    if request.fsdp:
        return Choice("full", "auto: fsdp (models that do not fit one GPU) checkpoints every layer")
    if dims is None or memory is None:
        return Choice("full", "auto: no memory figure to estimate against")
    for candidate in ("none", "selective", "full"):
        need = activation_bytes(dims, micro_batch_tokens, candidate)
        if need <= memory or candidate == "full":
            where = "GPU" if machine.device == "cuda" else "host"
            return Choice(
                candidate,
                f"auto: activations of a {micro_batch_tokens}-token micro-batch estimated at "
                f"{need / 2**30:.1f} GiB, {memory / 2**30:.1f} GiB of {where} memory left",
            )
    raise AssertionError("unreachable")


def resolve_levers(
    request: Request,
    machine: Machine,
    dims: ModelDims | None = None,
    model_bytes: int = 0,
    mean_row_tokens: float | None = None,
) -> Levers:
    """Every lever for this job; raises LeverError when one asked for cannot run here."""
    attention = resolve_attention(request, machine)
    liger = resolve_liger(request, machine)
    memory = memory_left(machine, model_bytes)
    mean = mean_row_tokens if mean_row_tokens is not None else float(request.max_length)
    micro = resolve_micro_batches(request, machine, attention.value, dims, memory, mean)
    plan: MicroBatchPlan = micro.value
    largest = plan.tokens_per_micro_batch or plan.per_device_train_batch_size * request.max_length
    return Levers(
        attn_implementation=attention,
        use_liger_kernel=liger,
        gradient_checkpointing=resolve_checkpointing(request, machine, dims, memory, largest),
        micro_batches=micro,
        torch_compile=resolve_compile(request, machine),
        optim=resolve_optim(request, machine),
        lora_dtype=resolve_lora_dtype(request, machine),
    )


def request_from(hyperparameters, padding_free: bool, quantize_4bit: bool) -> Request:
    """The Request of a job's hyperparameters (training/hyperparameters.py's Hyperparameters)."""
    return Request(
        attn_implementation=hyperparameters.attn_implementation,
        use_liger_kernel=hyperparameters.use_liger_kernel,
        gradient_checkpointing=hyperparameters.gradient_checkpointing,
        tokens_per_micro_batch=hyperparameters.tokens_per_micro_batch,
        torch_compile=hyperparameters.torch_compile,
        optim=hyperparameters.optim,
        lora_dtype=hyperparameters.lora_dtype,
        padding_free=padding_free,
        quantize_4bit=quantize_4bit,
        fsdp=bool(hyperparameters.fsdp),
        per_device_train_batch_size=hyperparameters.per_device_train_batch_size,
        gradient_accumulation_steps=hyperparameters.gradient_accumulation_steps,
        max_length=hyperparameters.max_length,
    )


def sft_config_kwargs(levers: Levers, fsdp: bool) -> dict[str, Any]:
    """SFTConfig values of the levers (the micro-batch plan's batching values come from `batching_overrides`)."""
    checkpointing = levers.gradient_checkpointing.value
    plan = levers.plan
    kwargs: dict[str, Any] = {
        # Under FSDP, FSDP's own activation checkpointing is used instead (distributed_setup.fsdp_arguments).
        "activation_checkpointing": checkpointing != "none" and not fsdp,
        "activation_checkpointing_kwargs": {
            "use_reentrant": False,
            "every_n_layers": SELECTIVE_EVERY if checkpointing == "selective" else 1,
        },
        "use_liger_kernel": levers.use_liger_kernel.value,
        "torch_compile": levers.torch_compile.value,
        "optim": levers.optim.value,
        "per_device_train_batch_size": plan.per_device_train_batch_size,
        "gradient_accumulation_steps": plan.gradient_accumulation_steps,
    }
    return kwargs


def batching_overrides(plan: MicroBatchPlan) -> dict[str, Any]:
    """With a token budget: rows packed best-fit into rows of the budget, one packed row per micro-batch."""
    if plan.tokens_per_micro_batch is None:
        return {}
    return {
        "packing": True,
        "padding_free": True,
        "max_length": plan.tokens_per_micro_batch,
        "train_sampling_strategy": "random",
    }


def cast_adapters(model, lora_dtype: str) -> int:
    """Put the trainable (LoRA) parameters in `lora_dtype`; returns how many were changed."""
    import torch

    dtype = torch.bfloat16 if lora_dtype == "bf16" else torch.float32
    changed = 0
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype != dtype:
            parameter.data = parameter.data.to(dtype)
            changed += 1
    return changed
