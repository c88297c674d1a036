"""The benchmarks' counting and FLOPs arithmetic, checked on batches made by trl's own collator."""

from __future__ import annotations

import pytest
import torch
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from benchmarks.measure import (
    CountingCollator,
    ModelShape,
    StepRecord,
    VariantResult,
    count_batch,
    lora_training_flops,
    padding_share,
    spread,
)

ROWS = [{"input_ids": [5, 6, 7, 8, 9]}, {"input_ids": [5, 6]}, {"input_ids": [5, 6, 7]}]


def test_padded_batch_counts_real_tokens_from_the_attention_mask():
    batch = DataCollatorForLanguageModeling(pad_token_id=0)(ROWS)
    count = count_batch(batch)
    assert count.processed_tokens == 15  # 3 rows padded to 5
    assert count.real_tokens == 10
    assert count.padding_tokens == 5
    assert count.document_lengths == (5, 2, 3)


def test_padding_free_batch_splits_documents_at_position_restarts():
    batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(ROWS)
    count = count_batch(batch)
    assert count.processed_tokens == 10
    assert count.padding_tokens == 0
    assert count.document_lengths == (5, 2, 3)


def test_counting_collator_pairs_steps_with_their_batches():
    counter = CountingCollator(DataCollatorForLanguageModeling(pad_token_id=0))
    counter(ROWS[:2])
    counter(ROWS[1:])
    counter(ROWS)
    assert [c.real_tokens for c in counter.step_counts(0, gradient_accumulation_steps=2)] == [7, 5]
    assert [c.real_tokens for c in counter.step_counts(1, gradient_accumulation_steps=2)] == [10]


def test_padding_share():
    assert padding_share(100, 62) == pytest.approx(0.38)
    assert padding_share(0, 0) == 0.0


def test_spread_reports_median_and_quartiles():
    result = spread([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (result.median, result.minimum, result.maximum, result.q1, result.q3) == (3.0, 1.0, 5.0, 2.0, 4.0)
    with pytest.raises(ValueError):
        spread([])


def test_lora_flops_count_4n_per_token_plus_causal_attention_per_document():
    shape = ModelShape(matmul_parameters=1000, num_layers=2, hidden_size=8)
    flops = lora_training_flops(shape, [10, 4])
    attention_forward = 2 * (10**2 + 4**2) * 8 * 2
    assert flops["model_flops"] == 4 * 1000 * 14 + 3 * attention_forward
    assert flops["hardware_flops_with_recompute"] == flops["model_flops"] + 2 * 1000 * 14 + attention_forward


def test_llama3_8b_matmul_parameters_match_the_published_size():
    # Llama-3-8B: 8.03B parameters, of which the input embedding (128256 x 4096) does no matrix product.
    from transformers import LlamaConfig, LlamaForCausalLM

    from benchmarks.measure import model_shape

    config = LlamaConfig(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        tie_word_embeddings=False,
    )
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    shape = model_shape(model)
    assert shape.matmul_parameters == pytest.approx(8.03e9 - 128256 * 4096, rel=0.01)


def test_variant_summary_uses_totals_and_flags_padding():
    result = VariantResult(name="x", settings={})
    result.steps = [
        StepRecord(seconds=2.0, processed_tokens=100, real_tokens=60, document_lengths=(30, 30)),
        StepRecord(seconds=1.0, processed_tokens=100, real_tokens=90, document_lengths=(90,)),
    ]
    summary = result.summary(ModelShape(matmul_parameters=10, num_layers=1, hidden_size=2), peak_flops=1e6)
    assert summary["real_tokens_per_second"] == pytest.approx(150 / 3.0)
    assert summary["padding_share"] == pytest.approx(0.25)
    assert summary["step_seconds"]["median"] == pytest.approx(1.5)
    assert 0 < summary["mfu"] < summary["hfu"]
