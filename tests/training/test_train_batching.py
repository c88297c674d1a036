"""Batching strategies: settings per strategy, no attention across packed examples, assistant-only labels."""

import batching
import pytest
import torch
from chat_format import IGNORE_INDEX, encode_conversation
from hyperparameters import Hyperparameters
from job_paths import Paths
from metrics_logging import TokenCounter
from model_loading import configure_for_training, load_training_model
from run_settings import RunSettings
from sft_config import build_sft_config
from sft_trainer import make_trainer
from training_data import tokenize_conversations
from transformers import AutoModelForCausalLM

from .conftest import sql_conversations


@pytest.mark.parametrize(
    "strategy, device, expected",
    [
        ("auto", "cpu", ("group_by_length", False, False, True)),
        ("auto", "cuda", ("padding_free", False, True, False)),
        ("auto", "cuda:1", ("padding_free", False, True, False)),
        ("padding", "cuda", ("padding", False, False, False)),
        ("padding_free", "cpu", ("padding_free", False, True, False)),
        ("packing", "cpu", ("packing", True, True, False)),
        ("group_by_length", "cuda", ("group_by_length", False, False, True)),
    ],
)
def test_resolve_gives_concrete_settings(strategy, device, expected):
    settings = batching.resolve(strategy, device)
    assert (settings.strategy, settings.packing, settings.padding_free, settings.group_by_length) == expected


def test_sft_config_values_per_strategy():
    assert batching.resolve("padding_free", "cpu").sft_config_kwargs(256)["max_length"] is None
    packing = batching.resolve("packing", "cpu").sft_config_kwargs(256)
    assert packing["max_length"] == 256 and packing["packing_strategy"] == "bfd"
    assert (
        batching.resolve("group_by_length", "cpu").sft_config_kwargs(64)["train_sampling_strategy"] == "group_by_length"
    )
    with pytest.raises(ValueError, match="batching='sorted'"):
        batching.resolve("sorted", "cpu")


def test_packed_examples_do_not_attend_to_each_other(tiny_model_dir):
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    configure_for_training(model)
    model.train()
    first, second = [20, 21, 22, 23, 24], [30, 31, 32]
    collate = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)
    packed = collate([{"input_ids": first}, {"input_ids": second}])
    assert "attention_mask" not in packed
    with torch.no_grad():
        packed_logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"]).logits[0]
        alone = model(input_ids=torch.tensor([second])).logits[0]
    assert torch.allclose(packed_logits[len(first) :], alone, atol=1e-5)


def test_count_batch_tokens_separates_padding():
    padded = {"input_ids": torch.ones(2, 5), "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])}
    assert batching.count_batch_tokens(padded) == (7, 3)
    flat = {"input_ids": torch.ones(1, 9), "position_ids": torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]])}
    assert batching.count_batch_tokens(flat) == (9, 0)


@pytest.mark.parametrize("strategy", ["padding", "group_by_length", "padding_free", "packing"])
def test_trainer_batches_train_on_assistant_tokens_only(tiny_model_dir, tiny_tokenizer, tmp_path, strategy):
    conversations = [(index, row["messages"]) for index, row in enumerate(sql_conversations(8, seed=5))]
    dataset, dropped = tokenize_conversations(tiny_tokenizer, conversations, max_length=128)
    assert dropped == 0
    hyperparameters = Hyperparameters(
        batching=strategy, per_device_train_batch_size=4, max_length=128, gradient_checkpointing=False, max_steps=1
    )
    settings = RunSettings(
        device="cpu",
        quantize_4bit=False,
        batching=batching.resolve(strategy, "cpu"),
        model_source=str(tiny_model_dir),
        num_processes=1,
    )
    paths = Paths.defaults(tmp_path)
    model = load_training_model(str(tiny_model_dir), settings, hyperparameters, None)
    trainer = make_trainer(
        model,
        tiny_tokenizer,
        dataset,
        None,
        build_sft_config(paths, hyperparameters, settings, model),
        hyperparameters,
        TokenCounter(),
        1,
    )
    expected = {tuple(encode_conversation(tiny_tokenizer, messages).labels) for _, messages in conversations}
    answers = sorted(tiny_tokenizer.decode([label for label in labels if label != IGNORE_INDEX]) for labels in expected)
    seen = []
    for batch in trainer.get_train_dataloader():
        labels, ids = batch["labels"], batch["input_ids"]
        kept = labels != IGNORE_INDEX
        assert torch.equal(labels[kept], ids[kept])  # labels are the tokens themselves, never shifted
        for row in labels:
            pieces, current = [], []
            for label in [*row.tolist(), IGNORE_INDEX]:
                if label == IGNORE_INDEX:
                    if current:
                        pieces.append(tiny_tokenizer.decode(current))
                    current = []
                else:
                    current.append(label)
            seen.extend(pieces)
    # Every trained span is one whole answer ending with EOS; no prompt token is trained.
    assert sorted(seen) == answers
    assert all(piece.endswith(tiny_tokenizer.eos_token) and piece.startswith("SELECT") for piece in seen)
