"""A real fine-tune: SmolLM2-135M-Instruct learns the project's text-to-SQL task on CPU.

Generates the example data set, prepares it, fine-tunes with train.py and scores base and
fine-tuned model with evaluate.py on held-out rows by execution accuracy. Takes minutes on two
cores; the settings below are the smallest that still give a clear, repeatable gain.
"""

import json
import subprocess
import sys

import pytest

from local_mode.models import ModelUnavailableError, smollm2_model_dir

from .conftest import REPO_ROOT_FOR_TESTS, run_training

ROWS, TEST_ROWS, SEED = 144, 16, 11
HYPERPARAMETERS = {
    "max_steps": 20,
    "per_device_train_batch_size": 4,
    "gradient_accumulation_steps": 1,
    "learning_rate": 1e-3,
    "lora_r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.0,
    "warmup_ratio": 0.1,
    "max_length": 256,
    "logging_steps": 5,
    "save_steps": 1000,
    "gradient_checkpointing": False,
    "batching": "auto",
    "quantization": "none",
}
MAX_NEW_TOKENS = 48
REQUIRED_GAIN = 0.25


def _run(*command):
    result = subprocess.run([sys.executable, *map(str, command)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_fine_tuned_smollm2_beats_its_base_model_on_execution_accuracy(tmp_path):
    try:
        base_model = smollm2_model_dir()
    except ModelUnavailableError as error:
        pytest.skip(str(error))
    scripts = REPO_ROOT_FOR_TESTS / "training"
    raw = tmp_path / "sql.jsonl"
    _run(REPO_ROOT_FOR_TESTS / "examples" / "generate_sql_dataset.py", "--rows", ROWS, "--seed", SEED, "--output", raw)
    data = tmp_path / "data"
    _run(
        scripts / "prepare_data.py",
        "--input",
        raw,
        "--format",
        "sql-create-context",
        "--output-dir",
        data,
        "--test-size",
        TEST_ROWS,
        "--seed",
        SEED,
    )

    output = run_training(tmp_path / "job", base_model, data, **HYPERPARAMETERS)
    training = json.loads((output / "training_metrics.json").read_text())
    assert training["global_step"] == HYPERPARAMETERS["max_steps"]
    assert training["final_loss"] < training["first_loss"]

    evaluation = tmp_path / "eval"
    _run(
        scripts / "evaluate.py",
        "--model-dir",
        output / "merged",
        "--base-model-dir",
        base_model,
        "--test-file",
        data / "test.jsonl",
        "--output-dir",
        evaluation,
        "--batch-size",
        TEST_ROWS,
        "--max-new-tokens",
        MAX_NEW_TOKENS,
        "--training-metrics",
        output / "training_metrics.json",
    )
    metrics = json.loads((evaluation / "metrics.json").read_text())
    tuned, base = metrics["fine_tuned"], metrics["base"]
    print(
        f"execution accuracy: base {base['execution_accuracy']:.3f}, fine-tuned {tuned['execution_accuracy']:.3f}"
        f" ({tuned['count']} held-out rows); exact match: base {base['exact_match']:.3f},"
        f" fine-tuned {tuned['exact_match']:.3f}"
    )
    assert tuned["count"] == base["count"] == TEST_ROWS
    assert tuned["execution_accuracy"] >= base["execution_accuracy"] + REQUIRED_GAIN
