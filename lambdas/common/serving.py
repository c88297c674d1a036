"""The TGI container's settings and the SageMaker model that serves the merged weights."""
from __future__ import annotations

from common.instance_types import gpu_count

# Seconds added per GB of weights to the download and start-up time limits.
BASE_SECONDS, SECONDS_PER_GB, MIN_SECONDS, MAX_SECONDS = 600, 90, 60, 3600


def tgi_environment(deployment: dict) -> dict[str, str]:
    """Environment of the Hugging Face LLM (TGI) container; the weights are at /opt/ml/model."""
    gpus = deployment.get("num_gpus") or gpu_count(deployment["instance_type"])
    if not gpus:
        raise ValueError(f"deployment.instance_type {deployment['instance_type']} has no known GPU; "
                         "set deployment.num_gpus")
    return {"HF_MODEL_ID": "/opt/ml/model", "SM_NUM_GPUS": str(gpus),
            "MAX_INPUT_TOKENS": str(deployment["max_input_tokens"]),
            "MAX_TOTAL_TOKENS": str(deployment["max_total_tokens"])}


def model_data_source(merged_uri: str) -> dict:
    """The uncompressed merged/ prefix, copied as is to /opt/ml/model."""
    return {"S3DataSource": {"S3Uri": merged_uri if merged_uri.endswith("/") else merged_uri + "/",
                             "S3DataType": "S3Prefix", "CompressionType": "None"}}


def timeout_for_size(size_bytes: int, configured: int | None) -> int:
    """A timeout that grows with the model: 600 s plus 90 s per GB, within SageMaker's 60..3600."""
    if configured:
        return configured
    seconds = BASE_SECONDS + SECONDS_PER_GB * size_bytes / 1e9
    return int(min(MAX_SECONDS, max(MIN_SECONDS, seconds)))
