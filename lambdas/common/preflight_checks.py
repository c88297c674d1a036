"""Every problem a run would meet, found before a GPU is paid for.

- Service quotas: each instance type, for its usage (training, spot training, processing, endpoint),
  must allow the instances the run starts (a blue/green update needs the new fleet beside the old).
- S3 inputs: the data set file and an S3 base model exist, lie in a bucket the stack grants, and the
  SageMaker role may read them (IAM's own policy simulation).
- The base model: a Hub id's revision resolves to a commit (with the token for a gated model), and the
  model has a config, a tokenizer and an end-of-sequence token; a chat template, or the project's.
- Time: the longest the run can take fits the state machine's timeout.

Each problem names the input field, the value and what is allowed or what to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from common import aws, hub_client
from common.errors import error_code
from common.polling import stage_limits
from common.s3_paths import split_s3_uri

QUOTA_CONSOLE = "https://console.aws.amazon.com/servicequotas/home/services/sagemaker/quotas"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    base_model: dict = field(default_factory=dict)
    dataset: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "passed": not self.problems,
            "problems": self.problems,
            "checks": self.checks,
            "base_model": self.base_model,
            "dataset": self.dataset,
        }


# ---- service quotas ------------------------------------------------------------------------------


def sagemaker_quotas() -> dict[str, dict]:
    """Quota name -> quota, for SageMaker in this region."""
    quotas = {}
    for page in aws.client("service-quotas").get_paginator("list_service_quotas").paginate(ServiceCode="sagemaker"):
        for quota in page["Quotas"]:
            quotas[quota["QuotaName"]] = quota
    return quotas


def needed_instances(config: dict, serving_now: int) -> list[tuple[str, str, str, int]]:
    """(field, instance type, usage, instances) for every stage of the run."""
    training, deployment = config["training"], config["deployment"]
    needs = [
        ("preparation.instance_type", config["preparation"]["instance_type"], "processing job usage", 1),
        (
            "training.instance_type",
            training["instance_type"],
            "spot training job usage" if training["use_spot"] else "training job usage",
            training["instance_count"],
        ),
        ("evaluation.instance_type", config["evaluation"]["instance_type"], "processing job usage", 1),
    ]
    # The serving check runs on the evaluation's instance type too, after it: the same one instance.
    if deployment.get("enabled", True):
        count = max(deployment["instance_count"], (deployment.get("autoscaling") or {}).get("max_instances", 0))
        needs.append(("deployment.instance_type", deployment["instance_type"], "endpoint usage", count + serving_now))
    return needs


def check_quotas(config: dict, serving_now: int, findings: Findings) -> None:
    quotas = sagemaker_quotas()
    for field_name, instance_type, usage, count in needed_instances(config, serving_now):
        name = f"{instance_type} for {usage}"
        quota = quotas.get(name)
        if quota is None:
            findings.problems.append(
                f"{field_name}: {instance_type!r} has no SageMaker quota '{name}' in "
                f"{aws.region()}; choose an instance type offered for {usage} in this region"
            )
            continue
        if quota["Value"] < count:
            findings.problems.append(
                f"{field_name}: {count} x {instance_type} needs the quota '{name}' ({quota['QuotaCode']}), which is "
                f"{quota['Value']:g} in {aws.region()}; ask for more in the Service Quotas console "
                f"({QUOTA_CONSOLE}) or "
                f"with `aws service-quotas request-service-quota-increase --service-code sagemaker --quota-code "
                f"{quota['QuotaCode']} --desired-value {count}`"
            )
        else:
            findings.checks.append(f"quota '{name}' is {quota['Value']:g}, the run needs {count}")


# ---- S3 inputs -------------------------------------------------------------------------------------


def role_can_read(role_arn: str, bucket: str, key_or_prefix: str, prefix: bool) -> list[str]:
    """What the SageMaker role may not do to read the input (empty when it may), by IAM's simulation."""
    checks = [
        ("s3:GetObject", f"arn:aws:s3:::{bucket}/{key_or_prefix}{'*' if prefix else ''}", []),
        (
            "s3:ListBucket",
            f"arn:aws:s3:::{bucket}",
            [{"ContextKeyName": "s3:prefix", "ContextKeyValues": [key_or_prefix], "ContextKeyType": "string"}],
        ),
    ]
    denied = []
    for action, resource, context in checks:
        result = aws.client("iam").simulate_principal_policy(
            PolicySourceArn=role_arn, ActionNames=[action], ResourceArns=[resource], ContextEntries=context
        )
        decision = result["EvaluationResults"][0]["EvalDecision"]
        if decision != "allowed":
            denied.append(f"{action} on {resource} ({decision})")
    return denied


def check_s3_input(
    field_name: str, uri: str, allowed_buckets: dict[str, str], role_arn: str, findings: Findings, prefix: bool = False
) -> list[str]:
    """Checks one S3 input; returns the keys found under it."""
    bucket, key = split_s3_uri(uri)
    if bucket not in allowed_buckets:
        findings.problems.append(
            f"{field_name}: {uri!r} is in bucket {bucket}, which is neither the stack's "
            f"({', '.join(sorted(allowed_buckets))}) "
            "nor one it grants; add the bucket to the context key fine-tune:input_bucket_names and deploy again"
        )
        return []
    s3 = aws.client("s3")
    try:
        if prefix:
            keys = [
                item["Key"]
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
                for item in page.get("Contents", [])
            ]
        else:
            s3.head_object(Bucket=bucket, Key=key)
            keys = [key]
    except ClientError as error:
        code = error_code(error)
        what = "does not exist" if code in ("404", "NoSuchKey", "NotFound") else f"cannot be read ({code})"
        findings.problems.append(f"{field_name}: {uri!r} {what}")
        return []
    if not keys:
        findings.problems.append(f"{field_name}: {uri!r} holds no objects; expected a model folder")
        return []
    denied = role_can_read(role_arn, bucket, key, prefix)
    if denied:
        findings.problems.append(f"{field_name}: the SageMaker role may not read {uri!r}: {'; '.join(denied)}")
    else:
        findings.checks.append(f"{uri} exists ({len(keys)} object(s)) and the SageMaker role may read it")
    return keys


def _s3_json(bucket: str, key: str) -> dict | None:
    try:
        body = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        value = json.loads(body)
        return value if isinstance(value, dict) else None
    except (ClientError, json.JSONDecodeError):
        return None


# ---- the base model ---------------------------------------------------------------------------------


def model_file_problems(field_name: str, where: str, files: set[str], read: Any) -> tuple[list[str], list[str]]:
    """(problems, checks) for a model's files; `read(name)` returns a small JSON file or None."""
    problems: list[str] = []
    checks: list[str] = []
    if "config.json" not in files:
        problems.append(f"{field_name}: {where} has no config.json; expected a Hugging Face model")
        return problems, checks
    if not files & set(TOKENIZER_FILES):
        problems.append(f"{field_name}: {where} has no tokenizer ({', '.join(TOKENIZER_FILES)})")
    tokenizer_config = read("tokenizer_config.json") or {} if "tokenizer_config.json" in files else {}
    config = read("config.json") or {}
    generation = read("generation_config.json") or {} if "generation_config.json" in files else {}
    if "chat_template" in tokenizer_config or "chat_template.jinja" in files:
        checks.append(f"{where} has a chat template")
    else:
        checks.append(
            f"{where} has no chat template: training gives it the project's, which ends each answer "
            "with the end-of-sequence token"
        )
    eos = (
        tokenizer_config.get("eos_token")
        or config.get("eos_token_id") is not None
        or generation.get("eos_token_id") is not None
    )
    if not eos:
        problems.append(
            f"{field_name}: {where} declares no end-of-sequence token (eos_token in tokenizer_config.json "
            "or eos_token_id in config.json); a model fine-tuned from it would never stop"
        )
    return problems, checks


def check_hub_model(config: dict, token: str | None, findings: Findings) -> None:
    base = config["base_model"]
    repo_id, revision = base["hf_model_id"], base.get("revision", "main")
    try:
        info = hub_client.repo_info(repo_id, revision, token)
    except hub_client.HubError as error:
        findings.problems.append(_hub_problem("base_model", repo_id, revision, error, token))
        return
    files = {sibling["rfilename"] for sibling in info.get("siblings", [])}
    problems, checks = model_file_problems(
        "base_model.hf_model_id",
        f"{repo_id}@{info['sha'][:12]}",
        files,
        lambda name: hub_client.read_json_file(repo_id, info["sha"], name, token),
    )
    findings.problems += problems
    findings.checks += [f"{repo_id} revision {revision} is commit {info['sha']}", *checks]
    findings.base_model = {
        "source": "hub",
        "id": repo_id,
        "revision": revision,
        "sha": info["sha"],
        "gated": bool(info.get("gated")),
    }


def check_hub_dataset(config: dict, token: str | None, findings: Findings) -> None:
    dataset = config["dataset"]
    repo_id, revision = dataset["hf_dataset_id"], dataset.get("hf_revision", "main")
    try:
        info = hub_client.repo_info(repo_id, revision, token, kind="dataset")
    except hub_client.HubError as error:
        findings.problems.append(_hub_problem("dataset", repo_id, revision, error, token))
        return
    findings.checks.append(f"data set {repo_id} revision {revision} is commit {info['sha']}")
    findings.dataset = {"source": "hub", "id": repo_id, "revision": revision, "sha": info["sha"]}


def _hub_problem(group: str, repo_id: str, revision: str, error: hub_client.HubError, token: str | None) -> str:
    id_field = "base_model.hf_model_id" if group == "base_model" else "dataset.hf_dataset_id"
    revision_field = "base_model.revision" if group == "base_model" else "dataset.hf_revision"
    if error.code == "GatedRepo":
        fix = (
            "the stack's token was not granted access to it"
            if token
            else "set the context key fine-tune:hf_token_secret_arn to a secret holding a token granted access"
        )
        return f"{id_field}: {repo_id!r} is gated; {fix}"
    if error.code == "RevisionNotFound":
        return f"{revision_field}: {revision!r} is not a branch, tag or commit of {repo_id}"
    if error.code == "RepoNotFound" or error.status in (401, 404):
        return f"{id_field}: {repo_id!r} does not exist on the Hub ({hub_client.endpoint()}), or is private"
    return f"{id_field}: {repo_id!r} could not be checked: {error}"


def check_s3_model(config: dict, allowed_buckets: dict[str, str], role_arn: str, findings: Findings) -> None:
    uri = config["base_model"]["s3_uri"]
    keys = check_s3_input("base_model.s3_uri", uri, allowed_buckets, role_arn, findings, prefix=True)
    if not keys:
        return
    bucket, prefix = split_s3_uri(uri)
    files = {key[len(prefix) :].lstrip("/") for key in keys}
    problems, checks = model_file_problems(
        "base_model.s3_uri", uri, files, lambda name: _s3_json(bucket, prefix + name)
    )
    findings.problems += problems
    findings.checks += checks
    findings.base_model = {"source": "s3", "uri": uri}


# ---- time ---------------------------------------------------------------------------------------------


def check_time(config: dict, timeout_seconds: int, findings: Findings) -> None:
    limits = stage_limits(config)
    deployment_on = (config.get("deployment") or {}).get("enabled", True)
    total = (
        limits["prepare"]
        + limits["train"]
        + limits["evaluate"]
        + limits["serving_check"]
        + (limits["endpoint"] if deployment_on else 0)
    )
    if timeout_seconds and total > timeout_seconds:
        findings.problems.append(
            f"training.max_runtime_hours: the longest this run can take is {total / 3600:.1f} h (preparation "
            f"{limits['prepare'] / 3600:g} h, training {limits['train'] / 3600:g} h, evaluation "
            f"{limits['evaluate'] / 3600:g} h, serving check {limits['serving_check'] / 3600:g} h"
            + (f", endpoint {limits['endpoint'] / 3600:.1f} h" if deployment_on else "")
            + "), above the state machine's "
            f"timeout of {timeout_seconds / 3600:g} h; lower the runtimes, or raise the context key "
            "fine-tune:state_machine_timeout_hours and deploy again"
        )
    else:
        findings.checks.append(
            f"the longest run ({total / 3600:.1f} h) fits the state machine's timeout ({timeout_seconds / 3600:g} h)"
        )
