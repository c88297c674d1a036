"""How training examples are put into batches, and what each choice means for SFTConfig.

Strategies (hyperparameter `batching`):

- `padding`: examples in random order, each batch padded to its longest example (trl's default).
- `group_by_length`: like `padding`, but batches are drawn from examples of similar length, so far
  less padding is computed.
- `padding_free`: the examples of a batch are concatenated into one row with position ids that
  restart at each example; no padding at all.
- `packing`: examples are packed, best-fit decreasing, into rows of `max_length` tokens, also with
  restarting position ids. Attention never crosses examples: the position ids mark the boundaries,
  which the attention kernels (flash-attention varlen, or the block-diagonal mask transformers builds
  for SDPA and eager attention) respect.
- `auto`: the strategy that was fastest where the job runs. Measured on a 2-core CPU (SmolLM2-135M):
  length-grouped batches 1.40x the default, padding-free 1.26x, packing 1.08x. Measured on an H200
  (QLoRA of a Llama-3-8B-shaped model, 2048-token rows, SDPA attention): padding-free 2.25x the
  default, length-grouped 2.09x, packing 1.90x (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

STRATEGIES = ("padding", "group_by_length", "padding_free", "packing")
AUTO_CHOICE = {"cpu": "group_by_length", "cuda": "padding_free"}


@dataclass(frozen=True)
class BatchingSettings:
    """A concrete strategy and the SFTConfig values that implement it."""

    strategy: str
    packing: bool
    padding_free: bool
    group_by_length: bool

    def sft_config_kwargs(self, max_length: int) -> dict[str, Any]:
        """Keyword arguments for trl's SFTConfig. Examples are truncated to `max_length` before this point."""
        return {
            "packing": self.packing,
            "packing_strategy": "bfd",
            "padding_free": self.padding_free,
            # Padding-free batches without packing take examples as they are (already truncated); with
            # packing, max_length is the row size.
            "max_length": None if (self.padding_free and not self.packing) else max_length,
            "train_sampling_strategy": "group_by_length" if self.group_by_length else "random",
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def device_kind(device: str) -> str:
    """'cuda' for any CUDA device ("cuda", "cuda:1"), else 'cpu'."""
    return "cuda" if str(device).startswith("cuda") else "cpu"


def resolve(strategy: str, device: str) -> BatchingSettings:
    """The concrete settings for `strategy` ("auto" or one of STRATEGIES) on `device` ("cpu", "cuda")."""
    if strategy == "auto":
        strategy = AUTO_CHOICE[device_kind(device)]
    if strategy not in STRATEGIES:
        raise ValueError(f"batching={strategy!r}: allowed: auto, {', '.join(STRATEGIES)}")
    return BatchingSettings(
        strategy=strategy,
        packing=strategy == "packing",
        padding_free=strategy in ("padding_free", "packing"),
        group_by_length=strategy == "group_by_length",
    )


def count_batch_tokens(batch: dict[str, Any]) -> tuple[int, int]:
    """(real tokens, padding tokens) in a collated batch.

    Padded batches carry an attention mask. Padding-free and packed batches are one flattened row
    with no padding (trl pads them only to a multiple of 128 on Neuron devices, which this project
    does not target), so every token is real.
    """
    total = int(batch["input_ids"].numel())
    mask = batch.get("attention_mask")
    real = int(mask.sum()) if mask is not None else total
    return real, total - real
