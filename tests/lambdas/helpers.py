"""Artifacts a finished evaluation leaves in S3, for the later steps' tests."""

import json

from common.s3_paths import split_s3_uri


def metrics(fine_tuned_accuracy=0.7, base_accuracy=0.4, exact=0.5):
    return {
        "fine_tuned": {
            "execution_accuracy": fine_tuned_accuracy,
            "exact_match": exact,
            "count": 100,
            "execution_errors": 3,
            "seconds": 12.3,
            "prompts_per_second": 8.1,
        },
        "base": None
        if base_accuracy is None
        else {
            "execution_accuracy": base_accuracy,
            "exact_match": 0.2,
            "count": 100,
            "execution_errors": 9,
            "seconds": 10.0,
            "prompts_per_second": 10.0,
        },
        "settings": {"max_new_tokens": 128, "batch_size": 16, "greedy": True},
    }


def put_uri(world, uri, body):
    bucket, key = split_s3_uri(uri)
    world.put(key, body, bucket=bucket)


def put_evaluation(world, run, **kwargs):
    put_uri(world, run["paths"]["metrics"], json.dumps(metrics(**kwargs)))


def put_merged_model(world, run, size=1000):
    put_uri(world, run["paths"]["merged"] + "model.safetensors", b"0" * size)
    put_uri(world, run["paths"]["merged"] + "tokenizer.json", b"{}")
