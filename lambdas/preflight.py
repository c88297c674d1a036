"""Preflight: every problem of the run found at once, before any job starts (docs/deploy.md, "Preflight").

Raises PreflightFailed with one problem per line; otherwise returns what it checked and what it
resolved (the base model's and the data set's commit), which the jobs use so none of them downloads
a moving branch.
"""

from __future__ import annotations

import json

from botocore.exceptions import ClientError
from common import aws, endpoints, preflight_checks
from common.environment import LambdaEnvironment
from common.errors import PreflightFailed, translate_throttling
from common.observability import logger, tracer
from common.run import run_of

TOKEN_KEYS = ("HF_TOKEN", "hf_token", "token")


def hub_token(secret_arn: str) -> str | None:
    """The stack's Hugging Face token (plain text, or JSON with HF_TOKEN/hf_token/token), if it has one."""
    if not secret_arn:
        return None
    value = aws.client("secretsmanager").get_secret_value(SecretId=secret_arn).get("SecretString") or ""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return value.strip() or None
    if isinstance(parsed, dict):
        return next((str(parsed[key]) for key in TOKEN_KEYS if parsed.get(key)), None)
    return str(parsed) or None


def serving_instances(config: dict) -> int:
    """Instances the endpoint already runs on the same instance type (a blue/green update doubles them)."""
    deployment = config["deployment"]
    endpoint = (
        endpoints.describe_endpoint(deployment.get("endpoint_name", "")) if deployment.get("endpoint_name") else None
    )
    if not endpoint:
        return 0
    return sum(
        variant.get("CurrentInstanceCount", 0)
        for variant in endpoint.get("ProductionVariants", [])
        if (variant.get("CurrentInstanceType") or deployment["instance_type"]) == deployment["instance_type"]
    )


@tracer.capture_lambda_handler
@translate_throttling
def handler(event: dict, context: object) -> dict:
    env = LambdaEnvironment.from_os()
    run = run_of(event)
    config = run["config"]
    findings = preflight_checks.Findings()
    allowed = {env.data_bucket: "data", env.artifacts_bucket: "artifacts", **dict.fromkeys(env.input_buckets, "input")}
    try:
        token = hub_token(env.hf_token_secret_arn)
    except ClientError as error:
        findings.problems.append(f"the Hugging Face token secret {env.hf_token_secret_arn} cannot be read: {error}")
        token = None
    preflight_checks.check_quotas(config, serving_instances(config), findings)
    if "s3_uri" in config["dataset"]:
        preflight_checks.check_s3_input(
            "dataset.s3_uri", config["dataset"]["s3_uri"], allowed, env.sagemaker_role_arn, findings
        )
        findings.dataset = {"source": "s3", "uri": config["dataset"]["s3_uri"]}
    else:
        preflight_checks.check_hub_dataset(config, token, findings)
    if "s3_uri" in config["base_model"]:
        preflight_checks.check_s3_model(config, allowed, env.sagemaker_role_arn, findings)
    else:
        preflight_checks.check_hub_model(config, token, findings)
    preflight_checks.check_time(config, env.state_machine_timeout_seconds, findings)
    result = findings.as_dict()
    logger.info(
        "preflight", extra={"run_id": run["run_id"], "passed": result["passed"], "problems": len(result["problems"])}
    )
    if findings.problems:
        raise PreflightFailed(findings.problems)
    return result
