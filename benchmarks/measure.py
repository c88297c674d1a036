"""Measuring helpers shared by the training benchmarks (CPU and GPU).

They count what a training step really processed (real tokens, padding, the lengths of the
documents in the batch), time the steps from inside the Trainer, and turn those counts into
throughput and FLOPs figures. Nothing here depends on which batching strategy produced a batch:
the counts are read off the collated tensors themselves, so every strategy is measured the same way.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BatchCount:
    """What one collated batch holds: tokens the model processes, how many are real, document lengths."""

    processed_tokens: int
    real_tokens: int
    document_lengths: tuple[int, ...]

    @property
    def padding_tokens(self) -> int:
        return self.processed_tokens - self.real_tokens


def count_batch(batch: dict[str, Any]) -> BatchCount:
    """Count the tokens of a batch made by trl's DataCollatorForLanguageModeling (padded or padding-free).

    A padded batch carries an attention mask: each row's real length is its sum. A padding-free
    batch is one flattened row whose documents start where `position_ids` restart at 0 (the
    benchmarks leave `pad_to_multiple_of` unset, so such a batch holds no padding).
    """
    input_ids = batch["input_ids"]
    processed = int(input_ids.numel())
    if "attention_mask" in batch and "position_ids" not in batch:
        lengths = tuple(int(value) for value in batch["attention_mask"].sum(dim=1).tolist())
        return BatchCount(processed, sum(lengths), lengths)
    if "position_ids" not in batch:
        lengths = tuple(int(input_ids.shape[1]) for _ in range(input_ids.shape[0]))
        return BatchCount(processed, processed, lengths)
    lengths: list[int] = []
    for row in batch["position_ids"].tolist():
        starts = [index for index, position in enumerate(row) if position == 0]
        starts.append(len(row))
        for start, end in itertools.pairwise(starts):
            lengths.append(end - start)
    return BatchCount(processed, sum(lengths), tuple(lengths))


class CountingCollator:
    """Wraps a data collator and records a BatchCount for every batch it builds, in order.

    The Trainer's data loader collates batch k before step k runs (it may run one batch ahead),
    so with gradient accumulation g, step i consumed batches i*g .. i*g+g-1.
    """

    def __init__(self, collator: Callable[[list[dict]], dict]):
        self.collator = collator
        self.counts: list[BatchCount] = []

    def __call__(self, examples: list[dict]) -> dict:
        batch = self.collator(examples)
        self.counts.append(count_batch(batch))
        return batch

    def step_counts(self, step_index: int, gradient_accumulation_steps: int = 1) -> list[BatchCount]:
        first = step_index * gradient_accumulation_steps
        return self.counts[first : first + gradient_accumulation_steps]


@dataclass
class StepRecord:
    """One optimizer step: its wall time and what it processed."""

    seconds: float
    processed_tokens: int
    real_tokens: int
    document_lengths: tuple[int, ...]


def make_step_timer(
    synchronize: Callable[[], None] | None = None,
    deadline: float | None = None,
    max_steps: int | None = None,
):
    """A transformers TrainerCallback that records the wall time of each optimizer step.

    A step's time runs from the end of the previous step (the first: from its own start) to its
    end, so fetching and collating its batch is included: that is part of what a batching
    strategy costs. `synchronize` (torch.cuda.synchronize on a GPU) runs before each clock reading
    so a step's time includes its queued kernels. Training stops early once `deadline`
    (a time.monotonic() value) passes, or after `max_steps` steps.
    """
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.durations: list[float] = []
            self._last: float | None = None

        def on_step_begin(self, args, state, control, **kwargs):
            if self._last is None:
                if synchronize is not None:
                    synchronize()
                self._last = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if synchronize is not None:
                synchronize()
            now = time.perf_counter()
            self.durations.append(now - self._last)
            self._last = now
            if deadline is not None and time.monotonic() >= deadline:
                control.should_training_stop = True
            if max_steps is not None and len(self.durations) >= max_steps:
                control.should_training_stop = True

    return StepTimer()


def step_records(
    durations: Sequence[float], counter: CountingCollator, gradient_accumulation_steps: int = 1
) -> list[StepRecord]:
    """Pair each timed step with the batches it consumed."""
    records = []
    for index, seconds in enumerate(durations):
        counts = counter.step_counts(index, gradient_accumulation_steps)
        if len(counts) < gradient_accumulation_steps:
            raise RuntimeError(
                f"step {index} has {len(counts)} recorded batches, expected {gradient_accumulation_steps}"
            )
        records.append(
            StepRecord(
                seconds=seconds,
                processed_tokens=sum(count.processed_tokens for count in counts),
                real_tokens=sum(count.real_tokens for count in counts),
                document_lengths=tuple(length for count in counts for length in count.document_lengths),
            )
        )
    return records


@dataclass(frozen=True)
class Spread:
    """Median and spread of repeated measurements."""

    median: float
    minimum: float
    maximum: float
    q1: float
    q3: float
    count: int

    def as_dict(self) -> dict[str, float]:
        return {
            "median": self.median,
            "min": self.minimum,
            "max": self.maximum,
            "q1": self.q1,
            "q3": self.q3,
            "n": self.count,
        }


def spread(values: Sequence[float]) -> Spread:
    """Median, min, max and quartiles (the quartiles equal the median for fewer than 2 values)."""
    if not values:
        raise ValueError("spread() needs at least one value")
    ordered = sorted(values)
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return Spread(statistics.median(ordered), ordered[0], ordered[-1], q1, q3, len(ordered))


def padding_share(processed_tokens: int, real_tokens: int) -> float:
    """The fraction of processed tokens that are padding (0 when nothing was processed)."""
    if processed_tokens <= 0:
        return 0.0
    return (processed_tokens - real_tokens) / processed_tokens


@dataclass(frozen=True)
class ModelShape:
    """What the FLOPs count needs to know about a decoder-only transformer."""

    matmul_parameters: int  # every weight that takes part in a matrix product: linear layers + output head
    num_layers: int
    hidden_size: int


def lora_training_flops(shape: ModelShape, document_lengths: Sequence[int]) -> dict[str, float]:
    """Model FLOPs of one LoRA training step over the given documents.

    With the base weights frozen, a token costs 2N FLOPs forward and 2N backward (gradients with
    respect to activations only; no weight gradients for frozen weights): 4N per token, N =
    `matmul_parameters` (the input embedding is a lookup and does no matrix product; LoRA
    adapters add under 1% and are left out). Causal self-attention inside each document adds,
    per layer, 2*L^2*d forward (QK^T and attention-times-V, halved by the causal mask) and twice
    that backward: 6*L^2*d per document of length L. Attention across documents of a packed
    sequence is not useful work and is not counted. Gradient checkpointing recomputes the
    forward pass (another 2N per token plus the forward attention); that is reported separately
    as hardware FLOPs and is not part of the model FLOPs.
    """
    tokens = sum(document_lengths)
    attention_forward = sum(2 * length * length * shape.hidden_size for length in document_lengths) * shape.num_layers
    model = 4 * shape.matmul_parameters * tokens + 3 * attention_forward
    recompute = 2 * shape.matmul_parameters * tokens + attention_forward
    return {"model_flops": float(model), "hardware_flops_with_recompute": float(model + recompute)}


def model_shape(model: Any) -> ModelShape:
    """ModelShape of a transformers causal LM: parameters of all linear layers (quantized ones counted
    at their full shape) and the output head, plus layer count and hidden size from its config."""
    import torch

    total = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and not _is_lora_part(module):
            total += module.in_features * module.out_features
    config = model.config
    return ModelShape(matmul_parameters=total, num_layers=config.num_hidden_layers, hidden_size=config.hidden_size)


def _is_lora_part(module: Any) -> bool:
    # peft wraps a base layer in a LoraLayer whose adapters are small nn.Linear modules; count only base weights.
    return type(module).__module__.startswith("peft.") or getattr(module, "_is_lora_adapter", False)


@dataclass
class VariantResult:
    """Figures of one training variant, as stored in the results JSON."""

    name: str
    settings: dict[str, Any]
    steps: list[StepRecord] = field(default_factory=list)
    peak_memory_bytes: int | None = None
    error: str | None = None

    def summary(self, shape: ModelShape | None = None, peak_flops: float | None = None) -> dict[str, Any]:
        """Real tokens/s (total real tokens over total time, and per-step spread), padding share, memory, MFU."""
        out: dict[str, Any] = {
            "name": self.name,
            "settings": self.settings,
            "error": self.error,
            "measured_steps": len(self.steps),
            "peak_memory_bytes": self.peak_memory_bytes,
        }
        if not self.steps:
            return out
        seconds = sum(step.seconds for step in self.steps)
        real = sum(step.real_tokens for step in self.steps)
        processed = sum(step.processed_tokens for step in self.steps)
        out.update(
            {
                "seconds": seconds,
                "real_tokens": real,
                "processed_tokens": processed,
                "real_tokens_per_second": real / seconds,
                "real_tokens_per_second_per_step": spread(
                    [step.real_tokens / step.seconds for step in self.steps]
                ).as_dict(),
                "step_seconds": spread([step.seconds for step in self.steps]).as_dict(),
                "padding_share": padding_share(processed, real),
                "documents": sum(len(step.document_lengths) for step in self.steps),
                "per_step": [
                    {
                        "seconds": round(step.seconds, 4),
                        "real_tokens": step.real_tokens,
                        "processed_tokens": step.processed_tokens,
                    }
                    for step in self.steps
                ],
            }
        )
        if shape is not None:
            flops = lora_training_flops(shape, [length for step in self.steps for length in step.document_lengths])
            out["model_flops_per_second"] = flops["model_flops"] / seconds
            out["hardware_flops_per_second"] = flops["hardware_flops_with_recompute"] / seconds
            if peak_flops:
                out["mfu"] = out["model_flops_per_second"] / peak_flops
                out["hfu"] = out["hardware_flops_per_second"] / peak_flops
        return out
