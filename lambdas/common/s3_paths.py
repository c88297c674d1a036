"""The artifacts bucket's layout for one run (docs/workflow-contract.md, "S3 layout")."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from common import aws
from common.contract import MODEL_LAYOUT, RUN_LAYOUT, RUNS_PREFIX

S3_URI = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>.*)")


def split_s3_uri(uri: str) -> tuple[str, str]:
    match = S3_URI.fullmatch(uri)
    if not match:
        raise ValueError(f"{uri!r} is not an S3 URI of the form s3://bucket/key")
    return match.group("bucket"), match.group("key")


@dataclass(frozen=True)
class RunPaths:
    input: str
    data: str
    train_file: str
    test_file: str
    data_report: str
    checkpoints: str
    training_output: str
    model: str
    adapter: str
    merged: str
    training_metrics: str
    eval: str
    metrics: str
    predictions: str
    report: str
    serving_check: str

    @classmethod
    def for_run(cls, bucket: str, run_id: str, training_job_name: str) -> RunPaths:
        run = f"s3://{bucket}/{RUNS_PREFIX}{run_id}/"
        # SageMaker writes a training job's model under <output path>/<job name>/output/model/.
        model = f"{run}{RUN_LAYOUT['training_output']}{training_job_name}/output/model/"
        return cls(
            model=model,
            **{name: run + key for name, key in RUN_LAYOUT.items()},
            **{name: model + key for name, key in MODEL_LAYOUT.items()},
        )

    def as_dict(self) -> dict:
        return asdict(self)


def read_text(uri: str) -> str:
    bucket, key = split_s3_uri(uri)
    return aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")


def read_json(uri: str) -> dict:
    text = read_text(uri)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{uri} is not valid JSON: {error}") from error


def write_json(uri: str, value: dict, kms_key_arn: str) -> None:
    """Write with SSE-KMS under the stack's key."""
    bucket, key = split_s3_uri(uri)
    aws.client("s3").put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(value, indent=2).encode(),
        ContentType="application/json",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=kms_key_arn,
    )


def prefix_size_bytes(uri: str) -> int:
    """Total size of the objects under an S3 prefix."""
    bucket, prefix = split_s3_uri(uri)
    total = 0
    for page in aws.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        total += sum(obj["Size"] for obj in page.get("Contents", []))
    return total
