"""train.py end to end on the tiny model: learning, outputs, merge, metrics, resume, 4-bit, batching."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from chat_format import encode_conversation
from checkpoints import newest_checkpoint
from common.job_requests import METRIC_DEFINITIONS  # the definitions the training job is created with
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from .conftest import REPO_ROOT_FOR_TESTS, run_training, sql_conversations, write_jsonl

METRIC_LINE = re.compile(
    r"^train_metrics: step=\d+ loss=\d+\.\d{4} learning_rate=[0-9.e+-]+ epoch=\d+\.\d{2} tokens_per_second=\d+\.\d$"
)


def _held_out_loss(model, tokenizer, rows) -> float:
    """Mean loss over the assistant tokens of `rows`, computed independently of the trainer."""
    losses = []
    model.eval()
    with torch.no_grad():
        for row in rows:
            encoded = encode_conversation(tokenizer, row["messages"])
            ids = torch.tensor([encoded.input_ids])
            labels = torch.tensor([encoded.labels])
            losses.append(float(model(input_ids=ids, labels=labels).loss))
    return sum(losses) / len(losses)


def test_fine_tuning_lowers_loss_on_held_out_rows(tiny_training_run, tiny_model_dir, sql_train_dir):
    output, _ = tiny_training_run
    tokenizer = AutoTokenizer.from_pretrained(output / "merged")
    rows = [json.loads(line) for line in (sql_train_dir / "test.jsonl").read_text().splitlines()]
    base = _held_out_loss(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tokenizer, rows)
    tuned = _held_out_loss(
        AutoModelForCausalLM.from_pretrained(output / "merged", dtype=torch.float32), tokenizer, rows
    )
    assert tuned < base - 0.2, (base, tuned)
    metrics = json.loads((output / "training_metrics.json").read_text())
    assert metrics["final_loss"] < metrics["first_loss"]


def test_adapter_and_merged_model_are_saved_and_reload(tiny_training_run, tiny_model_dir):
    output, _ = tiny_training_run
    adapter, merged = output / "adapter", output / "merged"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert (merged / "model.safetensors").is_file()
    assert not list(merged.glob("*.bin"))
    config = json.loads((merged / "config.json").read_text())
    assert "quantization_config" not in config and config["use_cache"] is True
    tokenizer = AutoTokenizer.from_pretrained(merged)
    assert tokenizer.chat_template and (merged / "chat_template.jinja").is_file()
    generation = GenerationConfig.from_pretrained(merged)
    assert generation.eos_token_id == tokenizer.eos_token_id
    assert generation.pad_token_id == tokenizer.pad_token_id


def test_merged_weights_give_the_same_logits_as_base_plus_adapter(tiny_training_run, tiny_model_dir):
    output, _ = tiny_training_run
    tokenizer = AutoTokenizer.from_pretrained(output / "merged")
    ids = tokenizer("SELECT name FROM players WHERE age = 7", return_tensors="pt").input_ids
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), output / "adapter")
    # The merge is computed in fp32 and its weights saved in the serving dtype (bf16): the same rounding here.
    rounded = with_adapter.merge_and_unload()
    with torch.no_grad():
        for parameter in rounded.parameters():
            parameter.copy_(parameter.to(torch.bfloat16))
    merged = AutoModelForCausalLM.from_pretrained(output / "merged", dtype=torch.float32)
    with torch.no_grad():
        expected = rounded(ids).logits
        actual = merged(ids).logits
        untrained = AutoModelForCausalLM.from_pretrained(tiny_model_dir)(ids).logits
    assert torch.allclose(actual, expected, atol=1e-5)
    assert not torch.allclose(actual, untrained, atol=1e-3)  # the adapter did change the model


def test_metric_lines_have_the_contract_format(tiny_training_run):
    _, stdout = tiny_training_run
    lines = [line for line in stdout.splitlines() if line.startswith("train_metrics:")]
    assert len(lines) == 3  # 12 steps, logging every 4
    for line in lines:
        assert METRIC_LINE.match(line), line
    values = {
        definition["Name"]: float(re.search(definition["Regex"], lines[-1]).group(1))
        for definition in METRIC_DEFINITIONS
    }
    assert values["train:epoch"] > 0 and values["train:tokens_per_second"] > 0
    assert 0 < values["train:loss"] < 20
    assert values["train:learning_rate"] > 0
    assert values["train:step"] == 12


def test_training_metrics_record_the_run(tiny_training_run):
    output, _ = tiny_training_run
    metrics = json.loads((output / "training_metrics.json").read_text())
    assert metrics["global_step"] == 12
    assert metrics["quantization"] == "none" and metrics["device"] == "cpu"
    assert metrics["batching"]["strategy"] == "group_by_length"  # what auto picks on CPU
    assert 0 <= metrics["padding_share"] < 1
    assert metrics["real_tokens"] > 0 and metrics["real_tokens_per_second"] > 0
    assert metrics["train_rows"] == 48 and metrics["dropped_rows"] == 0
    assert metrics["eval_loss"] is not None
    assert set(metrics["timings"]) == {"model_load_seconds", "train_seconds", "merge_seconds", "total_seconds"}
    assert [entry["step"] for entry in metrics["log_history"] if "loss" in entry] == [4, 8, 12]


def _train_command(work_dir: Path, model_dir: Path, train_dir: Path, **hyperparameters) -> list[str]:
    argv = [
        sys.executable,
        str(REPO_ROOT_FOR_TESTS / "training" / "train.py"),
        "--train_dir",
        str(train_dir),
        "--base_model_dir",
        str(model_dir),
        "--output_dir",
        str(work_dir / "model"),
        "--checkpoint_dir",
        str(work_dir / "checkpoints"),
        "--hyperparameters_file",
        str(work_dir / "hyperparameters.json"),
        "--failure_file",
        str(work_dir / "failure"),
    ]
    for name, value in hyperparameters.items():
        argv += [f"--{name}", str(value)]
    return argv


def test_resumes_from_newest_checkpoint_after_a_kill_and_continues_the_step_count(
    tmp_path, tiny_model_dir, sql_train_dir
):
    quick = {
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 1,
        "gradient_checkpointing": "false",
        "max_length": 128,
        "logging_steps": 2,
        "learning_rate": 1e-2,
    }
    process = subprocess.Popen(
        _train_command(tmp_path, tiny_model_dir, sql_train_dir, max_steps=200, save_steps=2, **quick),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        deadline = time.monotonic() + 240
        while newest_checkpoint(tmp_path / "checkpoints") is None:
            assert process.poll() is None, "training ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    killed_at = int(newest_checkpoint(tmp_path / "checkpoints").name.split("-")[1])
    assert killed_at < 20
    assert not (tmp_path / "model" / "training_metrics.json").exists()

    output = run_training(tmp_path, tiny_model_dir, sql_train_dir, max_steps=20, save_steps=10, logging_steps=2)
    metrics = json.loads((output / "training_metrics.json").read_text())
    assert metrics["resumed_from"].endswith(f"checkpoint-{killed_at}")
    assert metrics["global_step"] == 20
    steps = [entry["step"] for entry in metrics["log_history"] if "loss" in entry]
    assert steps == sorted(set(steps)) and steps[-1] == 20

    # A later run with a larger budget continues from where that one stopped.
    output = run_training(tmp_path, tiny_model_dir, sql_train_dir, max_steps=24, save_steps=10, logging_steps=2)
    metrics = json.loads((output / "training_metrics.json").read_text())
    assert metrics["resumed_from"].endswith("checkpoint-20")
    assert metrics["global_step"] == 24
    trained_steps = [entry["step"] for entry in metrics["log_history"] if "loss" in entry]
    assert trained_steps[-2:] == [22, 24]


def test_newest_checkpoint_ignores_one_cut_off_while_saving(tmp_path):
    for step, complete in ((4, True), (8, True), (12, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-x").mkdir()
    assert newest_checkpoint(tmp_path) == tmp_path / "checkpoint-8"
    assert newest_checkpoint(tmp_path / "missing") is None


def test_4bit_qlora_path_runs_on_cpu_and_merges_unquantized_weights(tmp_path, tiny_model_dir, sql_train_dir):
    output = run_training(
        tmp_path, tiny_model_dir, sql_train_dir, quantization="4bit", max_steps=2, logging_steps=1, save_steps=100
    )
    metrics = json.loads((output / "training_metrics.json").read_text())
    assert metrics["quantization"] == "4bit" and metrics["global_step"] == 2
    adapter_config = json.loads((output / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["r"] == 16
    merged = AutoModelForCausalLM.from_pretrained(output / "merged")
    assert getattr(merged.config, "quantization_config", None) is None
    assert merged.model.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16  # the serving dtype, not 4-bit


@pytest.mark.parametrize("strategy", ["packing", "padding_free"])
def test_padding_free_strategies_train_without_padding(tmp_path, tiny_model_dir, sql_train_dir, strategy):
    output = run_training(
        tmp_path, tiny_model_dir, sql_train_dir, batching=strategy, max_steps=2, logging_steps=1, save_steps=100
    )
    metrics = json.loads((output / "training_metrics.json").read_text())
    assert metrics["batching"]["strategy"] == strategy
    assert metrics["padding_tokens"] == 0 and metrics["real_tokens"] > 0
    assert metrics["final_loss"] > 0


def test_bad_training_rows_fail_with_line_number(tmp_path, tiny_model_dir, capsys):
    train_dir = tmp_path / "data"
    write_jsonl(train_dir / "train.jsonl", sql_conversations(2))
    with (train_dir / "train.jsonl").open("a") as file:
        file.write('{"messages": [{"role": "user", "content": "no answer"}]}\n')
    with pytest.raises(SystemExit) as exit_info:
        run_training(tmp_path, tiny_model_dir, train_dir)
    assert exit_info.value.code == 2
    message = (tmp_path / "failure").read_text()
    assert "line 3" in message and "the last message must be the assistant's answer" in message
    assert "line 3" in capsys.readouterr().err
