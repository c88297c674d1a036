"""The batching strategies the benchmarks compare, taken from train.py's own `batching` module.

The benchmarks measure exactly the SFTConfig settings a training job would use: each strategy's
settings come from `training/batching.py` (`resolve`), and `auto` is resolved the way train.py
resolves it for the device. A combination such as `padding_free+group_by_length` merges the
settings of its parts; it is measured to see whether it would beat the single strategies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from local_mode import training_code

DEFAULTS = "padding"  # trl's defaults: random order, each batch padded to its longest row


def _batching_module():
    return training_code.training_module("batching")


@dataclass(frozen=True)
class Strategy:
    """A named way of batching and the SFTConfig keyword arguments that implement it."""

    name: str
    sft_config_kwargs: dict[str, Any]


def single_strategies() -> tuple[str, ...]:
    """The strategies train.py accepts, besides `auto`."""
    return tuple(_batching_module().STRATEGIES)


def auto_choice(device: str) -> str:
    """The strategy train.py's `batching=auto` picks on `device` ("cpu" or "cuda")."""
    return _batching_module().resolve("auto", device).strategy


def strategy(name: str, max_length: int, device: str = "cpu") -> Strategy:
    """Settings for `name`: one of train.py's strategies, `auto`, or parts joined by '+'.

    Combining merges the parts' settings: packing or padding-free wins over padding, and
    length-grouped sampling is kept from whichever part asks for it.
    """
    batching = _batching_module()
    if name == "auto":
        name = auto_choice(device)
    parts = name.split("+")
    allowed = ", ".join(batching.STRATEGIES)
    for part in parts:
        if part not in batching.STRATEGIES:
            raise ValueError(f"strategy {name!r}: {part!r} is not one of {allowed} (or parts joined by '+')")
    merged: dict[str, Any] = {}
    for part in parts:
        kwargs = batching.resolve(part, device).sft_config_kwargs(max_length)
        if not merged:
            merged = dict(kwargs)
            continue
        merged["packing"] = merged["packing"] or kwargs["packing"]
        merged["padding_free"] = merged["padding_free"] or kwargs["padding_free"]
        if kwargs["train_sampling_strategy"] != "random":
            merged["train_sampling_strategy"] = kwargs["train_sampling_strategy"]
        merged["max_length"] = None if (merged["padding_free"] and not merged["packing"]) else max_length
    return Strategy(name=name, sft_config_kwargs=merged)
