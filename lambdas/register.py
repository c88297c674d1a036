"""Register: a model package for this run, Approved or Rejected by the gate, with its metrics."""

from __future__ import annotations

import hashlib

from common import aws, model_registry
from common.environment import LambdaEnvironment
from common.errors import translate_throttling
from common.job_requests import owner_tags
from common.lineage import lineage, lineage_line
from common.model_registry import metadata_value
from common.observability import logger, tracer
from common.run import run_of
from common.serving import container_environment, model_data_source

APPROVAL_DESCRIPTION_LIMIT = 1024


def _metadata(run: dict, gate: dict, record: dict[str, str]) -> dict[str, str]:
    fine_tuned = (gate.get("metrics") or {}).get("fine_tuned") or {}
    base = (gate.get("metrics") or {}).get("base") or {}
    values = {
        "run_id": run["run_id"],
        "gate_passed": str(bool(gate["passed"])).lower(),
        "reasons": "; ".join(gate.get("reasons", [])),
        "metrics_uri": run["paths"]["metrics"],
        "merged_model_uri": run["paths"]["merged"],
        **record,
    }
    for label, source in (("", fine_tuned), ("base_", base)):
        for key in ("execution_accuracy", "exact_match", "count"):
            if isinstance(source.get(key), (int, float)):
                values[f"{label}{key}"] = f"{source[key]:.4f}" if isinstance(source[key], float) else str(source[key])
    return {key: metadata_value(value) for key, value in values.items()}


def _request(run: dict, gate: dict, env: LambdaEnvironment, status: str, metadata: dict[str, str]) -> dict:
    deployment = run["config"]["deployment"]
    return {
        "ModelPackageGroupName": env.model_package_group_name,
        "ModelPackageDescription": metadata_value(f"Fine-tuned {_base_label(run)} run {run['run_id']}", 1000),
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image": env.serving_image(deployment),
                    "ModelDataSource": model_data_source(run["paths"]["merged"]),
                    "Environment": container_environment(deployment),
                }
            ],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
            "SupportedRealtimeInferenceInstanceTypes": [deployment["instance_type"]],
        },
        "ModelApprovalStatus": status,
        "ModelMetrics": {
            "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": run["paths"]["metrics"]}}
        },
        "CustomerMetadataProperties": metadata,
        "ClientToken": hashlib.sha256(run["run_id"].encode()).hexdigest()[:36],
        "Tags": owner_tags(run["run_id"], env.stack_tag),
    }


def _base_label(run: dict) -> str:
    base = run["config"]["base_model"]
    return base.get("hf_model_id") or base.get("s3_uri")


@tracer.capture_lambda_handler
@translate_throttling
def handler(event: dict, context: object) -> dict:
    env = LambdaEnvironment.from_os()
    run = run_of(event)
    gate = event["state"].get("gate")
    if not isinstance(gate, dict) or "passed" not in gate:
        raise ValueError("the state has no gate decision at $.gate; Register runs after Gate")
    status = "Approved" if gate["passed"] else "Rejected"
    serving_image = env.serving_image(run["config"]["deployment"])
    record = lineage(run, event["state"].get("preflight"), env, serving_image)
    metadata = _metadata(run, gate, record)
    group = env.model_package_group_name
    model_registry.ensure_group(group, env.create_model_package_group)
    existing = model_registry.find_run_package(group, run["run_id"])
    sagemaker = aws.client("sagemaker")
    if existing:
        arn = existing["ModelPackageArn"]
    else:
        arn = sagemaker.create_model_package(**_request(run, gate, env, status, metadata))["ModelPackageArn"]
    description = "; ".join(gate.get("reasons", [])) or status
    # The metadata is sent again: an update must never lose the run id the re-run looks for.
    sagemaker.update_model_package(
        ModelPackageArn=arn,
        ModelApprovalStatus=status,
        ApprovalDescription=description[:APPROVAL_DESCRIPTION_LIMIT],
        CustomerMetadataProperties=metadata,
    )
    logger.info(
        "model package registered",
        extra={"run_id": run["run_id"], "arn": arn, "status": status, "adopted": bool(existing)},
    )
    return {
        "arn": arn,
        "status": status,
        "adopted": bool(existing),
        "lineage": record,
        "lineage_summary": lineage_line(record),
    }
