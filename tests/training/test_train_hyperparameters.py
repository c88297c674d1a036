"""Hyperparameters: SageMaker's string values are coerced; bad values fail before any model loads."""

import json
import re
from pathlib import Path
from typing import ClassVar

import pytest
import train
from distributed_setup import fsdp_arguments
from hf_token import read_hf_token
from hyperparameters import HyperparameterError, Hyperparameters, build_hyperparameters
from run_settings import wants_4bit

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_sagemaker_string_values_are_coerced_to_declared_types():
    parsed = build_hyperparameters(
        {
            "epochs": "2",
            "max_steps": "100",
            "learning_rate": "1e-4",
            "lora_r": "8",
            "lora_alpha": "16",
            "lora_dropout": "0.1",
            "max_length": "512",
            "quantization": "4bit",
            "per_device_train_batch_size": "2",
            "gradient_accumulation_steps": "8",
            "batching": "packing",
            "seed": "7",
            "logging_steps": "5",
            "save_steps": "50",
            "warmup_ratio": "0.1",
            "gradient_checkpointing": "False",
            "fsdp": "full_shard auto_wrap",
            "model_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
            "hf_token_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:hf-token-AbCdEf",
        }
    )
    assert parsed == Hyperparameters(
        epochs=2.0,
        max_steps=100,
        learning_rate=1e-4,
        lora_r=8,
        lora_alpha=16.0,
        lora_dropout=0.1,
        max_length=512,
        quantization="4bit",
        per_device_train_batch_size=2,
        gradient_accumulation_steps=8,
        batching="packing",
        seed=7,
        logging_steps=5,
        save_steps=50,
        warmup_ratio=0.1,
        gradient_checkpointing="none",
        fsdp="full_shard auto_wrap",
        model_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        hf_token_secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:hf-token-AbCdEf",
    )


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("true", "full"),
        ("1", "full"),
        ("YES", "full"),
        ("false", "none"),
        ("0", "none"),
        (True, "full"),
        (False, "none"),
        ('"false"', "none"),
        ("selective", "selective"),
        ("Auto", "auto"),
    ],
)
def test_gradient_checkpointing_keeps_the_boolean_inputs_written_before_its_choices(raw, expected):
    assert build_hyperparameters({"gradient_checkpointing": raw}).gradient_checkpointing == expected


def test_json_numbers_and_integer_looking_floats_are_accepted():
    parsed = build_hyperparameters({"max_steps": 10.0, "lora_r": "1e1", "epochs": 1, "seed": '"3"'})
    assert (parsed.max_steps, parsed.lora_r, parsed.epochs, parsed.seed) == (10, 10, 1.0, 3)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("false", ""),
        ("False", ""),
        ("none", ""),
        ("", ""),
        ("true", "full_shard auto_wrap"),
        ("shard_grad_op  offload", "shard_grad_op offload"),
    ],
)
def test_fsdp_accepts_the_execution_inputs_boolean_form(raw, expected):
    assert build_hyperparameters({"fsdp": raw}).fsdp == expected


def test_sagemaker_reserved_entries_are_ignored():
    assert build_hyperparameters({"sagemaker_region": '"us-east-1"'}) == Hyperparameters()


@pytest.mark.parametrize(
    "values, expected",
    [
        (
            {"learning_rat": "1e-4"},
            "learning_rat='1e-4': unknown hyperparameter; known: attn_implementation, batching, epochs",
        ),
        ({"lora_r": "eight"}, "lora_r='eight': not an integer; allowed: an integer from 1 to 1024"),
        ({"lora_r": "2.5"}, "lora_r='2.5': not an integer"),
        ({"lora_r": "0"}, "lora_r='0': out of range; allowed: an integer from 1 to 1024"),
        ({"learning_rate": "-1"}, "learning_rate='-1': out of range; allowed: a number > 0 and <= 1"),
        ({"learning_rate": "nan"}, "learning_rate='nan': not a number"),
        ({"quantization": "8bit"}, "quantization='8bit': out of range; allowed: one of auto, 4bit, none"),
        ({"batching": "sorted"}, "batching='sorted': out of range; allowed: one of auto, padding, group_by_length"),
        (
            {"gradient_checkpointing": "maybe"},
            "gradient_checkpointing='maybe': out of range; allowed: one of auto, full, selective, none, or true (full)",
        ),
        ({"max_steps": "0"}, "max_steps='0': out of range; allowed: -1 (use epochs) or an integer >= 1"),
        ({"lora_dropout": "1"}, "lora_dropout='1': out of range"),
        ({"fsdp": "full_shard turbo"}, "fsdp='full_shard turbo': out of range; allowed: true, false, none"),
        ({"fsdp": "full_shard shard_grad_op"}, "with at most one sharding strategy (full_shard or shard_grad_op)"),
        ({"hf_token_secret_arn": "hf_abc123"}, "hf_token_secret_arn='hf_abc123': out of range"),
        ({"model_id": "not a hub id"}, "model_id='not a hub id': out of range"),
    ],
)
def test_each_bad_value_names_field_value_and_what_is_allowed(values, expected):
    with pytest.raises(HyperparameterError) as error:
        build_hyperparameters(values)
    assert expected in str(error.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(HyperparameterError) as error:
        build_hyperparameters({"epochs": "-1", "lora_r": "x", "colour": "blue", "batching": "fast"})
    assert len(error.value.problems) == 4
    assert {problem.split("=")[0] for problem in error.value.problems} == {"epochs", "lora_r", "colour", "batching"}


def test_hyperparameters_file_is_read_and_command_line_wins(tmp_path):
    (tmp_path / "hp.json").write_text(json.dumps({"learning_rate": "0.001", "lora_r": "4", "batching": "packing"}))
    paths, parsed = train.parse_arguments(
        ["--hyperparameters_file", str(tmp_path / "hp.json"), "--lora_r", "32", "--max-steps", "7"]
    )
    assert (parsed.learning_rate, parsed.lora_r, parsed.batching, parsed.max_steps) == (0.001, 32, "packing", 7)
    assert paths.hyperparameters_file == tmp_path / "hp.json"


def test_paths_default_to_the_sagemaker_layout_under_opt_ml(monkeypatch, tmp_path):
    monkeypatch.setenv("OPT_ML", str(tmp_path))
    paths, _ = train.parse_arguments([])
    assert paths.train_dir == tmp_path / "input" / "data" / "train"
    assert paths.base_model_dir == tmp_path / "input" / "data" / "model"
    assert paths.output_dir == tmp_path / "model"
    assert paths.checkpoint_dir == tmp_path / "checkpoints"
    assert paths.hyperparameters_file == tmp_path / "input" / "config" / "hyperparameters.json"


def test_main_rejects_bad_hyperparameters_before_loading_anything(monkeypatch, tmp_path, capsys):
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({"epochs": "many", "lora_alpha": "0"}))
    monkeypatch.setenv("OPT_ML", str(tmp_path))
    monkeypatch.setattr(train, "train", lambda *args: pytest.fail("training started despite bad input"))
    assert train.main([]) == 2
    err = capsys.readouterr().err
    assert "epochs='many': not a number" in err and "lora_alpha='0': out of range" in err
    assert "epochs='many'" in (tmp_path / "output" / "failure").read_text()


def test_malformed_hyperparameters_file_is_reported(tmp_path):
    (tmp_path / "hp.json").write_text("{not json")
    with pytest.raises(HyperparameterError, match=re.escape("hp.json: not valid JSON")):
        train.parse_arguments(["--hyperparameters_file", str(tmp_path / "hp.json")])


def test_hf_token_is_read_from_secrets_manager():
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("secretsmanager", region_name="eu-west-1")
        plain = client.create_secret(Name="hf-plain", SecretString="hf_plain_token")["ARN"]
        as_json = client.create_secret(Name="hf-json", SecretString=json.dumps({"HF_TOKEN": "hf_json_token"}))["ARN"]
        assert read_hf_token(plain) == "hf_plain_token"
        assert read_hf_token(as_json) == "hf_json_token"
    assert read_hf_token("") is None


def test_quantization_choice_follows_device():
    assert wants_4bit(Hyperparameters(quantization="auto"), "cuda")
    assert not wants_4bit(Hyperparameters(quantization="auto"), "cpu")
    assert wants_4bit(Hyperparameters(quantization="4bit"), "cpu")
    assert not wants_4bit(Hyperparameters(quantization="none"), "cuda")


def test_fsdp_settings_wrap_decoder_layers():
    class Model:
        _no_split_modules: ClassVar[list[str]] = ["LlamaDecoderLayer"]

    settings = fsdp_arguments(Hyperparameters(fsdp="full_shard auto_wrap offload"), Model())
    assert settings["fsdp"] is True
    config = settings["fsdp_config"]
    assert config["transformer_layer_cls_to_wrap"] == ["LlamaDecoderLayer"]
    assert config["reshard_after_forward"] is True and config["cpu_offload"] is True
    assert (
        fsdp_arguments(Hyperparameters(fsdp="shard_grad_op"), Model())["fsdp_config"]["reshard_after_forward"] is False
    )
    assert fsdp_arguments(Hyperparameters(fsdp=""), Model()) == {}


def _documented_defaults() -> dict[str, str]:
    """The `default` column of docs/training.md's hyperparameter table, by name."""
    text = (REPO_ROOT / "docs" / "training.md").read_text(encoding="utf-8")
    table = text.split("| name | type | default | allowed | meaning |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `([a-z_0-9]+)` \| [^|]+ \| ([^|]+) \|", table, flags=re.MULTILINE)
    return {name: default.strip().strip("`") for name, default in rows}


def test_train_pys_defaults_the_workflows_and_the_docs_agree():
    """One set of defaults: the schema's (what the workflow passes), train.py's own, and the docs table's."""
    schema = json.loads((REPO_ROOT / "lambdas" / "common" / "execution_input.schema.json").read_text())
    workflow = {
        name: spec["default"]
        for name, spec in schema["properties"]["training"]["properties"]["hyperparameters"]["properties"].items()
        if "default" in spec
    }
    own = {name: field.default for name, field in Hyperparameters.model_fields.items()}
    documented = _documented_defaults()
    for name, default in workflow.items():
        expected = build_hyperparameters({name: default}) if name == "fsdp" else None
        assert own[name] == (expected.fsdp if expected else default), name
        text = documented[name]
        if isinstance(default, bool) or default in ("", None) or name == "fsdp":
            assert text.startswith("empty") or text == str(default).lower(), (name, text)
        elif isinstance(default, (int, float)):
            assert float(text) == float(default), (name, text, default)
        else:
            assert text == default, (name, text, default)
