"""Every job uses the commit Preflight resolved; the model package records what produced the model."""

import json

import register
from common.environment import LambdaEnvironment
from common.job_requests import BUILDERS, RunContext

from .helpers import metrics, put_evaluation, put_merged_model, put_uri

SHA = "0123456789abcdef0123456789abcdef01234567"
DATA_SHA = "fedcba9876543210fedcba9876543210fedcba98"
PREFLIGHT = {
    "passed": True,
    "problems": [],
    "checks": [],
    "base_model": {
        "source": "hub",
        "id": "Qwen/Qwen2.5-Coder-7B-Instruct",
        "revision": "main",
        "sha": SHA,
        "gated": False,
    },
    "dataset": {"source": "hub", "id": "b-mc2/sql-create-context", "revision": "main", "sha": DATA_SHA},
}


def _hub_dataset(run):
    run = json.loads(json.dumps(run))
    run["config"]["dataset"] = {
        **{k: v for k, v in run["config"]["dataset"].items() if k != "s3_uri"},
        "hf_dataset_id": "b-mc2/sql-create-context",
    }
    return run


def _args(request):
    return request["AppSpecification"]["ContainerEntrypoint"]


def test_every_job_downloads_the_commit_preflight_resolved(aws, run, monkeypatch):
    monkeypatch.setenv("HF_TOKEN_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:hf-AbCdEf")
    ctx = RunContext.from_run(_hub_dataset(run), LambdaEnvironment.from_os(), PREFLIGHT)
    prepare = _args(BUILDERS["prepare"](ctx))
    assert prepare[prepare.index("--hf-revision") + 1] == DATA_SHA
    assert prepare[prepare.index("--hf-token-secret-arn") + 1].endswith(":secret:hf-AbCdEf")
    assert BUILDERS["train"](ctx)["HyperParameters"]["model_revision"] == SHA
    evaluate = _args(BUILDERS["evaluate"](ctx))
    assert evaluate[evaluate.index("--base-model-revision") + 1] == SHA
    assert evaluate[evaluate.index("--hf-token-secret-arn") + 1].endswith(":secret:hf-AbCdEf")


def test_without_preflight_results_the_asked_revision_is_used_and_no_token_is_passed(aws, run):
    run = _hub_dataset(run)
    run["config"]["base_model"]["revision"] = "v1.0"
    ctx = RunContext.from_run(run, LambdaEnvironment.from_os())
    assert BUILDERS["train"](ctx)["HyperParameters"]["model_revision"] == "v1.0"
    prepare = _args(BUILDERS["prepare"](ctx))
    assert "--hf-revision" not in prepare and "--hf-token-secret-arn" not in prepare


def test_the_model_package_records_its_lineage(aws, run):
    run = _hub_dataset(run)
    run["config"]["training"]["hyperparameters"] = {
        "learning_rate": 0.0002,
        "lora_r": 16,
        "gradient_checkpointing": True,
        "quantization": "4bit",
    }
    put_evaluation(aws, run)
    put_merged_model(aws, run)
    put_uri(
        aws,
        run["paths"]["data_report"],
        json.dumps(
            {"files": {"train.jsonl": {"sha256": "a" * 64, "rows": 90}, "test.jsonl": {"sha256": "b" * 64, "rows": 10}}}
        ),
    )
    decision = {"passed": True, "reasons": ["pass: ok"], "metrics": metrics()}
    result = register.handler({"state": {"run": run, "gate": decision, "preflight": PREFLIGHT}}, None)
    assert result["lineage_summary"] == (
        f"base hf://Qwen/Qwen2.5-Coder-7B-Instruct@{SHA[:12]}; "
        f"data hf://b-mc2/sql-create-context@{DATA_SHA[:12]}; "
        f"train sha256 {'a' * 12}, test sha256 {'b' * 12}"
    )
    (request,) = aws.calls_to("CreateModelPackage")
    recorded = request["CustomerMetadataProperties"]
    assert recorded["base_model"] == "hf://Qwen/Qwen2.5-Coder-7B-Instruct"
    assert recorded["base_model_revision"] == SHA
    assert recorded["train_sha256"] == "a" * 64 and recorded["test_sha256"] == "b" * 64
    assert recorded["training_job"] == run["names"]["train"]
    env = LambdaEnvironment.from_os()
    assert recorded["training_image"] == env.training_image_uri
    assert recorded["serving_image"] == env.serving_image(run["config"]["deployment"])
    assert recorded["code_uri"] == env.code_s3_uri
    assert len(recorded["settings_sha256"]) == 64
    hyperparameters = run["config"]["training"].get("hyperparameters", {})
    pairs = dict(pair.split("=", 1) for pair in recorded["hyperparameters"].split())
    assert pairs == {
        key: str(value).lower() if isinstance(value, bool) else str(value) for key, value in hyperparameters.items()
    }
    assert len(recorded) <= 50 and all(0 < len(value) <= 256 for value in recorded.values())


def test_a_run_without_a_data_report_says_so(aws, run):
    put_evaluation(aws, run)
    put_merged_model(aws, run)
    decision = {"passed": False, "reasons": ["FAIL: low"], "metrics": metrics(0.1, 0.2)}
    register.handler({"state": {"run": run, "gate": decision}}, None)
    (request,) = aws.calls_to("CreateModelPackage")
    assert request["CustomerMetadataProperties"]["train_sha256"] == "not recorded"
