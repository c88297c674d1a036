"""Which batches a benchmark measures: a random sample of the batches a whole epoch would have.

A benchmark can afford a few steps, not an epoch. Measuring the first steps of an epoch is biased
for length-grouped batches (the sampler puts the longest batch first and sorts inside each
mega-batch), and shrinking the data set to one short epoch is biased too (the sampler groups within
mega-batches of up to 50 batches, so a small data set groups badly). Instead, the whole epoch's
order is drawn with the Trainer's own samplers over the full row pool, and a seeded random sample of
its batches is trained on, in order, with a sequential sampler.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def epoch_batches(lengths: Sequence[int], batch_size: int, group_by_length: bool, seed: int) -> list[list[int]]:
    """Row indexes of every full batch of one epoch, as the Trainer would draw them.

    Random order (trl's default) uses a seeded permutation; length grouping uses transformers'
    get_length_grouped_indices, which LengthGroupedSampler calls.
    """
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    generator = torch.Generator().manual_seed(seed)
    if group_by_length:
        order = get_length_grouped_indices(list(lengths), batch_size, generator=generator)
    else:
        order = torch.randperm(len(lengths), generator=generator).tolist()
    return [order[start : start + batch_size] for start in range(0, len(order) - batch_size + 1, batch_size)]


def sample_batches(
    lengths: Sequence[int], batch_size: int, group_by_length: bool, steps: int, seed: int
) -> list[list[int]]:
    """`steps` batches drawn at random (seeded) from one epoch, kept in epoch order."""
    batches = epoch_batches(lengths, batch_size, group_by_length, seed)
    if steps > len(batches):
        raise ValueError(
            f"{steps} steps requested, but the {len(lengths)} rows make only {len(batches)} batches of {batch_size}"
        )
    chosen = sorted(random.Random(seed).sample(range(len(batches)), steps))
    return [batches[index] for index in chosen]
