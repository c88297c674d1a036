"""Each serving image's own transformers reads the merged model as it was evaluated.

For every supported image (local_mode/compat_envs.py: TGI 3.3.6 with transformers 4.51.0, the
SageMaker vLLM image with 5.15.0), check_serving.py runs in an environment holding that image's
pins and compares config values, tokenizer, stop tokens, weights dtype and greedy outputs for the
evaluated prompts, tokenized the way that engine tokenizes a request, with evaluate.py's results.
"""

import json
import shutil
import subprocess

import pytest

from local_mode.compat_envs import SERVING_IMAGES, run_check, serving_image

from .conftest import MAX_NEW_TOKENS, MODEL_BUILDERS, SAMPLES

IMAGES = [image.name for image in SERVING_IMAGES]


def _check(image, merged, predictions, tmp_path):
    report_file = tmp_path / f"report-{image}.json"
    result = run_check(
        image,
        [
            "--model-dir",
            str(merged),
            "--predictions",
            str(predictions),
            "--samples",
            str(SAMPLES),
            "--max-new-tokens",
            str(MAX_NEW_TOKENS),
            "--output",
            str(report_file),
        ],
    )
    report = json.loads(report_file.read_text()) if report_file.is_file() else None
    return result, report


def test_each_environment_holds_its_images_pins_and_nothing_of_the_project(compat_envs):
    for name, python in compat_envs.items():
        image = serving_image(name)
        script = (
            "import json, importlib.util, torch, transformers\n"
            "print(json.dumps({'transformers': transformers.__version__, 'cuda': torch.version.cuda,\n"
            "  'torch': torch.__version__, 'trl': importlib.util.find_spec('trl') is not None,\n"
            "  'peft': importlib.util.find_spec('peft') is not None,\n"
            "  'local_mode': importlib.util.find_spec('local_mode') is not None}))"
        )
        result = subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=True, cwd="/")
        found = json.loads(result.stdout)
        assert found == {
            "transformers": image.transformers,
            "cuda": None,
            "torch": "2.13.0+cpu",
            "trl": False,
            "peft": False,
            "local_mode": False,
        }, name


@pytest.mark.parametrize("image", IMAGES)
@pytest.mark.parametrize("model", list(MODEL_BUILDERS))
def test_the_merged_model_reads_as_evaluated(compat_envs, evaluated_models, tmp_path, model, image):
    evaluated = evaluated_models(model)
    result, report = _check(image, evaluated.merged, evaluated.predictions, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert report["passed"] and report["software"]["transformers"] == serving_image(image).transformers
    assert report["rows"]["compared"] == report["rows"]["matching"] == SAMPLES
    assert set(report["checks"]) == {"config", "weights", "generation_config", "tokenizer_load", "tokenizer", "outputs"}


def _plain_folder(evaluated, folder):
    """The merged model as train.py wrote it before: fp32 weights, config and tokenizer as transformers 5 saves them."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(evaluated.merged, dtype=torch.float32).save_pretrained(folder)
    AutoTokenizer.from_pretrained(evaluated.base).save_pretrained(folder)
    shutil.copy(evaluated.merged / "serving_check.json", folder)
    return folder


def test_the_plain_transformers_5_layout_misreads_rope_and_dtype_in_tgi(compat_envs, evaluated_models, tmp_path):
    evaluated = evaluated_models("qwen2-rope-1e6")
    result, report = _check("tgi-3.3.6", _plain_folder(evaluated, tmp_path / "plain"), evaluated.predictions, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    found = {(m["check"], m["field"]): m for m in report["mismatches"]}
    rope = found[("config", "config.rope.rope_theta")]
    assert (rope["found"], rope["expected"]) == (10000.0, 1e6)
    assert found[("config", "config.dtype")] == {
        "check": "config",
        "field": "config.dtype",
        "found": None,
        "expected": "bfloat16",
    }
    assert (found[("weights", "dtype")]["found"], found[("weights", "dtype")]["expected"]) == (
        ["float32"],
        ["bfloat16"],
    )
    assert found[("tokenizer", "chat_template_sha256")]["found"] is None  # only in chat_template.jinja
    assert "config.rope.rope_theta: found 10000.0, expected 1000000.0" in result.stdout


def test_the_plain_transformers_5_tokenizer_does_not_load_in_tgi(compat_envs, evaluated_models, tmp_path):
    evaluated = evaluated_models("tiny-llama")
    result, report = _check("tgi-3.3.6", _plain_folder(evaluated, tmp_path / "plain"), evaluated.predictions, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    failure = next(m for m in report["mismatches"] if m["check"] == "tokenizer_load")
    assert failure["field"] == "error" and "TokenizersBackend does not exist" in failure["found"]
    assert report["checks"]["tokenizer_load"] == "failed" and "outputs" not in report["checks"]


@pytest.mark.parametrize("image", IMAGES)
def test_a_bos_added_on_top_of_the_templates_bos_is_reported(compat_envs, evaluated_models, tmp_path, image):
    evaluated = evaluated_models("llama-bos-in-template")
    doubled = tmp_path / "doubled"
    shutil.copytree(evaluated.merged, doubled)
    tokenizer_file = doubled / "tokenizer.json"
    data = json.loads(tokenizer_file.read_text())
    bos_id = json.loads((doubled / "config.json").read_text())["bos_token_id"]
    data["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [bos_id], "tokens": ["<s>"]}},
    }
    tokenizer_file.write_text(json.dumps(data))
    config = json.loads((doubled / "tokenizer_config.json").read_text())
    config["add_bos_token"] = True
    (doubled / "tokenizer_config.json").write_text(json.dumps(config))

    result, report = _check(image, doubled, evaluated.predictions, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr[-3000:]
    rows = [m for m in report["mismatches"] if m["check"] == "outputs" and m["field"] == "prompt_ids"]
    assert len(rows) == SAMPLES
    assert all(m["found"][:2] == [bos_id, bos_id] and m["expected"][0] == bos_id for m in rows)
    assert all("so the model sees it twice" in m["message"] for m in rows)
    probe = next(m for m in report["mismatches"] if m["field"] == "probe_ids")
    assert probe["found"] == [bos_id] + probe["expected"]
