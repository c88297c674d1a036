"""Fixtures for the serving-image compatibility tests: the images' environments and evaluated models.

The environments (local_mode/compat_envs.py) are built on first use and cached under .cache/.
Each model is fine-tuned with train.py and scored with evaluate.py in the project's environment;
check_serving.py then reads the result inside each image's environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from local_mode.compat_envs import SERVING_IMAGES, ensure_env
from local_mode.models import build_tiny_model
from tests.training.conftest import run_training, sql_conversations, write_jsonl

from .tiny_models import build_bos_llama_model, build_qwen2_model

MAX_NEW_TOKENS = 24
SAMPLES = 8
MODEL_BUILDERS = {
    "tiny-llama": build_tiny_model,
    "qwen2-rope-1e6": build_qwen2_model,
    "llama-bos-in-template": build_bos_llama_model,
}


@dataclass(frozen=True)
class EvaluatedModel:
    name: str
    base: Path
    merged: Path
    predictions: Path


@pytest.fixture(scope="session")
def compat_envs() -> dict[str, Path]:
    """Every serving image's interpreter, built once (minutes) and then reused from the cache."""
    return {image.name: ensure_env(image.name) for image in SERVING_IMAGES}


@pytest.fixture(scope="session")
def evaluated_models(tmp_path_factory):
    """evaluated_models(name): that model fine-tuned, merged and evaluated once per session."""
    import evaluate

    built: dict[str, EvaluatedModel] = {}

    def get(name: str) -> EvaluatedModel:
        if name not in built:
            work = tmp_path_factory.mktemp(name)
            base = MODEL_BUILDERS[name](work / "base")
            data = work / "data"
            write_jsonl(data / "train.jsonl", sql_conversations(48, seed=1))
            write_jsonl(data / "test.jsonl", sql_conversations(SAMPLES, seed=2))
            output = run_training(work / "job", base, data)
            evaluate.run(
                evaluate.EvalConfig(
                    model_dir=output / "merged",
                    test_file=data / "test.jsonl",
                    output_dir=work / "eval",
                    max_new_tokens=MAX_NEW_TOKENS,
                    batch_size=4,
                )
            )
            built[name] = EvaluatedModel(name, base, output / "merged", work / "eval" / "predictions.jsonl")
        return built[name]

    return get
