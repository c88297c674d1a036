"""serving_artifacts.py and check_serving.py with the project's own transformers.

The same checks inside each serving image's transformers are in tests/compat.
"""

import json
import shutil
import struct
from pathlib import Path

import check_serving
import evaluate
import pytest
import torch
from chat_format import render_prompt
from safetensors import safe_open
from serving_artifacts import (
    _without_single_specials,
    legacy_rope_fields,
    make_tokenizer_portable,
    serving_dtype,
)
from serving_manifest import MANIFEST_NAME, PROBE_MESSAGES
from transformers import AutoTokenizer

from tests.compat.tiny_models import build_bos_llama_model

MAX_NEW_TOKENS = 16


def _dtypes(path: Path) -> set[str]:
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return {entry["dtype"] for name, entry in header.items() if name != "__metadata__"}


@pytest.mark.parametrize(
    "parameters, legacy",
    [
        ({"rope_theta": 1e6, "rope_type": "default"}, {"rope_theta": 1e6, "rope_scaling": None}),
        (
            {
                "rope_theta": 5e5,
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192,
            },
            {
                "rope_theta": 5e5,
                "rope_scaling": {
                    "rope_type": "llama3",
                    "factor": 8.0,
                    "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 8192,
                },
            },
        ),
        (
            {"rope_theta": 1e4, "rope_type": "default", "partial_rotary_factor": 0.5},
            {"rope_theta": 1e4, "rope_scaling": None, "partial_rotary_factor": 0.5},
        ),
        ({"full_attention": {"rope_theta": 1e6}, "sliding_attention": {"rope_theta": 1e4}}, {}),
        (None, {}),
    ],
)
def test_legacy_rope_fields_equal_the_new_form(parameters, legacy):
    assert legacy_rope_fields(parameters) == legacy


@pytest.mark.parametrize(
    "declared, served",
    [
        ("bfloat16", "bfloat16"),
        ("float16", "float16"),
        ("float32", "bfloat16"),
        (None, "bfloat16"),
    ],
)
def test_serving_dtype_keeps_a_half_precision_base_and_halves_the_rest(declared, served):
    assert serving_dtype(declared) == served


def test_post_processors_stop_adding_special_tokens_to_single_sequences():
    template = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
    }
    stripped, removed = _without_single_specials(template)
    assert removed == ["<s>"] and stripped["single"] == [{"Sequence": {"id": "A", "type_id": 0}}]
    sequence, removed = _without_single_specials({"type": "Sequence", "processors": [{"type": "ByteLevel"}, template]})
    assert removed == ["<s>"] and sequence["processors"][0] == {"type": "ByteLevel"}
    roberta, removed = _without_single_specials({"type": "RobertaProcessing", "cls": ["<s>", 0], "sep": ["</s>", 2]})
    assert removed == ["<s>", "</s>"] and roberta["single"] == [{"Sequence": {"id": "A", "type_id": 0}}]
    assert _without_single_specials({"type": "ByteLevel"}) == ({"type": "ByteLevel"}, [])


def test_merged_folder_holds_what_older_transformers_read(tiny_training_run):
    merged = tiny_training_run[0] / "merged"
    assert _dtypes(merged / "model.safetensors") == {"BF16"}
    config = json.loads((merged / "config.json").read_text())
    assert config["dtype"] == config["torch_dtype"] == "bfloat16"
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"] and config["rope_scaling"] is None
    tokenizer_config = json.loads((merged / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert tokenizer_config["chat_template"] == (merged / "chat_template.jinja").read_text()
    assert tokenizer_config["additional_special_tokens"] == ["<|system|>", "<|user|>", "<|assistant|>"]
    assert not isinstance(tokenizer_config.get("extra_special_tokens"), list)
    manifest = json.loads((merged / MANIFEST_NAME).read_text())
    assert manifest["weights"]["dtype"] == manifest["config"]["dtype"] == "bfloat16"
    assert manifest["config"]["rope"] == {"rope_theta": 10000.0, "rope_type": "default"}
    assert manifest["generation"]["eos_token_id"] == [manifest["tokenizer"]["eos_token_id"]]
    assert manifest["tokenizer"]["removed_special_tokens"] == []


def test_the_merged_bf16_weights_are_half_the_bytes_of_fp32(tiny_training_run, tiny_model_dir):
    merged = tiny_training_run[0] / "merged" / "model.safetensors"
    base = tiny_model_dir / "model.safetensors"
    assert _dtypes(base) == {"F32"}
    assert merged.stat().st_size < 0.55 * base.stat().st_size


def test_evaluation_loads_the_saved_bf16_bytes_and_computes_in_fp32_on_cpu(tiny_training_run):
    merged = tiny_training_run[0] / "merged"
    model, _ = evaluate.load_model(merged)
    name = "model.layers.0.self_attn.q_proj.weight"
    loaded = dict(model.named_parameters())[name]
    assert loaded.dtype == torch.float32
    with safe_open(merged / "model.safetensors", framework="pt") as weights:
        saved = weights.get_tensor(name)
    assert saved.dtype == torch.bfloat16 and torch.equal(loaded, saved.float())


def test_a_tokenizer_whose_template_writes_bos_no_longer_adds_its_own(tmp_path):
    source = build_bos_llama_model(tmp_path / "base")
    tokenizer = AutoTokenizer.from_pretrained(source)
    prompt = render_prompt(tokenizer, list(PROBE_MESSAGES))
    assert tokenizer(prompt)["input_ids"][:2] == [tokenizer.bos_token_id] * 2  # as the base model saves it
    saved = tmp_path / "saved"
    tokenizer.save_pretrained(saved)
    assert make_tokenizer_portable(saved, tokenizer) == ["<s>"]
    reloaded = AutoTokenizer.from_pretrained(saved)
    ids = reloaded(prompt)["input_ids"]
    assert ids == tokenizer(prompt, add_special_tokens=False)["input_ids"] and ids[:2] != [ids[0]] * 2
    assert ids[0] == tokenizer.bos_token_id
    assert json.loads((saved / "tokenizer_config.json").read_text())["add_bos_token"] is False


# ---------------------------------------------------------------- check_serving.py, in this process


@pytest.fixture(scope="module")
def evaluated_tiny(tiny_training_run, sql_train_dir, tmp_path_factory):
    """The tiny run's merged folder and evaluate.py's predictions for it."""
    folder = tmp_path_factory.mktemp("evaluated")
    evaluate.run(
        evaluate.EvalConfig(
            model_dir=tiny_training_run[0] / "merged",
            test_file=sql_train_dir / "test.jsonl",
            output_dir=folder,
            max_new_tokens=MAX_NEW_TOKENS,
            batch_size=4,
        )
    )
    return tiny_training_run[0] / "merged", folder / "predictions.jsonl"


def _check(tmp_path, merged, predictions, engine="tgi", *extra):
    report_file = tmp_path / f"report-{engine}.json"
    code = check_serving.main(
        [
            "--model-dir",
            str(merged),
            "--predictions",
            str(predictions),
            "--engine",
            engine,
            "--max-new-tokens",
            str(MAX_NEW_TOKENS),
            "--output",
            str(report_file),
            *extra,
        ]
    )
    return code, json.loads(report_file.read_text()) if report_file.is_file() else None


@pytest.mark.parametrize("engine", ["tgi", "vllm"])
def test_check_serving_passes_for_the_merged_model(evaluated_tiny, tmp_path, engine):
    code, report = _check(tmp_path, *evaluated_tiny, engine)
    assert code == 0, report["mismatches"]
    assert report["passed"] and report["rows"]["compared"] == report["rows"]["matching"] == 8
    assert set(report["checks"].values()) == {"passed"} and report["settings"]["dtype"] == "float32"


def test_check_serving_names_each_mismatch_with_found_and_expected(evaluated_tiny, tmp_path):
    merged, predictions = evaluated_tiny
    broken = tmp_path / "merged"
    shutil.copytree(merged, broken)
    config = json.loads((broken / "config.json").read_text())
    config["rope_theta"] = config["rope_parameters"]["rope_theta"] = 500000.0
    (broken / "config.json").write_text(json.dumps(config))
    tokenizer_config = json.loads((broken / "tokenizer_config.json").read_text())
    del tokenizer_config["chat_template"]
    (broken / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    rows[2]["fine_tuned"]["output"] = "SELECT something else"
    changed = tmp_path / "predictions.jsonl"
    changed.write_text("".join(json.dumps(row) + "\n" for row in rows))

    code, report = _check(tmp_path, broken, predictions, "tgi", "--samples", "3")
    assert code == 1 and not report["passed"]
    by_field = {(m["check"], m["field"]): m for m in report["mismatches"]}
    rope = by_field[("config", "config.rope.rope_theta")]
    assert rope["found"] == 500000.0 and rope["expected"] == 10000.0
    assert by_field[("tokenizer", "chat_template_sha256")]["found"] is None
    assert report["checks"]["weights"] == "passed"

    code, report = _check(tmp_path, merged, changed, "vllm", "--samples", "3")
    assert code == 1
    assert [(m["check"], m["row"], m["field"]) for m in report["mismatches"]] == [("outputs", rows[2]["id"], "output")]
    assert report["mismatches"][0]["found"] == evaluated_output(predictions, 2)
    assert report["mismatches"][0]["expected"] == "SELECT something else"
    assert report["rows"] == {"compared": 3, "matching": 2, "results": report["rows"]["results"]}


def evaluated_output(predictions: Path, index: int) -> str:
    return json.loads(predictions.read_text().splitlines()[index])["fine_tuned"]["output"]


def test_check_serving_refuses_unusable_input_with_exit_status_2(evaluated_tiny, tmp_path, capsys):
    merged, predictions = evaluated_tiny
    code, _ = _check(tmp_path, merged, predictions, "tgi", "--expected-config", str(tmp_path / "missing.json"))
    assert code == 2 and "missing.json does not exist" in capsys.readouterr().err
    broken = tmp_path / "broken.jsonl"
    broken.write_text(predictions.read_text().splitlines()[0] + "\n{not json\n")
    code, _ = _check(tmp_path, merged, broken, "tgi", "--samples", "5")
    assert code == 2 and "broken.jsonl line 2: not valid JSON" in capsys.readouterr().err
    manifest = tmp_path / "old.json"
    manifest.write_text(json.dumps({"format": 99}))
    code, _ = _check(tmp_path, merged, predictions, "tgi", "--expected-config", str(manifest))
    assert code == 2 and "format 99" in capsys.readouterr().err
