"""The serving container of each engine: image, environment, AMI, and its request and response shapes.

Two engines serve the merged model from `/opt/ml/model`:

- `tgi`: the Hugging Face LLM inference image (Text Generation Inference), configured by
  `HF_MODEL_ID`, `SM_NUM_GPUS`, `MAX_INPUT_TOKENS`, `MAX_TOTAL_TOKENS`; it answers
  `{"inputs", "parameters"}` with `[{"generated_text"}]` and adds the tokenizer's special tokens.
- `vllm`: the Hugging Face vLLM image, configured by `SM_VLLM_*` (each is a vLLM server flag); its
  `/invocations` takes OpenAI chat-completion requests and renders the model's own chat template.
"""

from __future__ import annotations

import re

from common.instance_types import gpu_count

ENGINES = ("tgi", "vllm")
MODEL_DIR = "/opt/ml/model"
VARIANT_NAME = "AllTraffic"
# Seconds added per GB of weights to the download and start-up time limits.
BASE_SECONDS, SECONDS_PER_GB, MIN_SECONDS, MAX_SECONDS = 600, 90, 60, 3600
# Images built for CUDA 12.5 or newer need an AMI whose driver runs them (driver 580, CUDA 13.0).
CUDA_13_AMI = "al2023-ami-sagemaker-inference-gpu-4-1"
_CUDA_TAG = re.compile(r"-cu(\d{2,3})(?=[-.]|$)")


class ServingError(ValueError):
    """The deployment settings cannot be served by the chosen engine."""


def engine_of(deployment: dict) -> str:
    engine = deployment.get("engine", "tgi")
    if engine not in ENGINES:
        raise ServingError(f"deployment.engine {engine!r} is not supported; allowed: {', '.join(ENGINES)}")
    return engine


def evaluation_generation(config: dict) -> str:
    """What generates the evaluated answers: "vllm" (in the vLLM serving image) or "transformers".

    "auto" evaluates a vllm deployment with vLLM, so the gate judges the engine that will serve it.
    """
    chosen = (config.get("evaluation") or {}).get("generation", "auto")
    if chosen == "auto":
        return "vllm" if (config.get("deployment") or {}).get("engine", "tgi") == "vllm" else "transformers"
    return chosen


def gpus_of(deployment: dict) -> int:
    gpus = deployment.get("num_gpus") or gpu_count(deployment["instance_type"])
    if not gpus:
        raise ServingError(
            f"deployment.instance_type {deployment['instance_type']} has no known GPU; set deployment.num_gpus"
        )
    return gpus


def tgi_environment(deployment: dict) -> dict[str, str]:
    """Environment of the Hugging Face LLM (TGI) container; the weights are at /opt/ml/model."""
    return {
        "HF_MODEL_ID": MODEL_DIR,
        "SM_NUM_GPUS": str(gpus_of(deployment)),
        "MAX_INPUT_TOKENS": str(deployment["max_input_tokens"]),
        "MAX_TOTAL_TOKENS": str(deployment["max_total_tokens"]),
    }


def vllm_environment(deployment: dict) -> dict[str, str]:
    """Environment of the Hugging Face vLLM container: `SM_VLLM_<FLAG>` becomes `--flag`."""
    vllm = deployment.get("vllm") or {}
    return {
        "SM_VLLM_MODEL": MODEL_DIR,
        "SM_VLLM_HOST": "0.0.0.0",  # nosec B104 # the container must listen on every interface for SageMaker to reach it
        "SM_VLLM_TENSOR_PARALLEL_SIZE": str(gpus_of(deployment)),
        "SM_VLLM_MAX_MODEL_LEN": str(deployment["max_total_tokens"]),
        "SM_VLLM_GPU_MEMORY_UTILIZATION": str(vllm.get("gpu_memory_utilization", 0.9)),
        "SM_VLLM_DTYPE": str(vllm.get("dtype", "auto")),
        "SM_VLLM_SERVED_MODEL_NAME": "model",
    }


def container_environment(deployment: dict) -> dict[str, str]:
    return vllm_environment(deployment) if engine_of(deployment) == "vllm" else tgi_environment(deployment)


def image_for(deployment: dict, tgi_image: str, vllm_image: str) -> str:
    image = vllm_image if engine_of(deployment) == "vllm" else tgi_image
    if not image:
        raise ServingError(f"the stack has no image for engine {engine_of(deployment)!r} in this region")
    return image


def inference_ami_version(image_uri: str) -> str | None:
    """The production variant's InferenceAmiVersion an image needs, or None for the default AMI."""
    match = _CUDA_TAG.search(image_uri.rsplit(":", 1)[-1])
    if not match:
        return None
    digits = match.group(1)
    major, minor = int(digits[:-1]), int(digits[-1])
    return CUDA_13_AMI if (major, minor) >= (12, 5) else None


def model_data_source(merged_uri: str) -> dict:
    """The uncompressed merged/ prefix, copied as is to /opt/ml/model."""
    return {
        "S3DataSource": {
            "S3Uri": merged_uri if merged_uri.endswith("/") else merged_uri + "/",
            "S3DataType": "S3Prefix",
            "CompressionType": "None",
        }
    }


def timeout_for_size(size_bytes: int, configured: int | None) -> int:
    """A timeout that grows with the model: 600 s plus 90 s per GB, within SageMaker's 60..3600."""
    if configured:
        return configured
    seconds = BASE_SECONDS + SECONDS_PER_GB * size_bytes / 1e9
    return int(min(MAX_SECONDS, max(MIN_SECONDS, seconds)))


# ---- requests and responses -------------------------------------------------------------------


def generation_request(engine: str, row: dict, max_new_tokens: int) -> dict:
    """A greedy request for one evaluated row, in the engine's own format.

    TGI gets the rendered prompt the evaluation used; vLLM gets the conversation and renders it
    with the chat template saved beside the weights, as a client of the endpoint would.
    """
    if engine == "vllm":
        return {"model": "model", "messages": row["messages"], "max_tokens": max_new_tokens, "temperature": 0}
    return {
        "inputs": row["prompt"],
        "parameters": {"max_new_tokens": max_new_tokens, "do_sample": False, "return_full_text": False},
    }


def generated_text(engine: str, answer: object) -> str | None:
    """The generated text of a parsed response, or None when the response has another shape."""
    if engine == "vllm":
        choices = answer.get("choices") if isinstance(answer, dict) else None
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            message = choices[0].get("message") or {}
            text = message.get("content") if isinstance(message, dict) else None
            if text is None:
                text = choices[0].get("text")
            return text if isinstance(text, str) else None
        return None
    if isinstance(answer, list) and answer and isinstance(answer[0], dict):
        answer = answer[0]
    text = answer.get("generated_text") if isinstance(answer, dict) else None
    return text if isinstance(text, str) else None


RESPONSE_SHAPES = {"tgi": '[{"generated_text": ...}]', "vllm": '{"choices": [{"message": {"content": ...}}]}'}
