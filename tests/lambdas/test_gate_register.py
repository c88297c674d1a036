"""Gate decisions with reasons; registration Approved or Rejected, once per run."""

import math

import gate
import pytest
import register
from common.gate_rules import decide

from .conftest import GROUP
from .helpers import metrics, put_evaluation, put_merged_model

GATE = {"min_execution_accuracy": 0.6, "min_improvement_over_base": 0.05, "compare_to_production": True}


def test_passes_with_a_reason_per_rule():
    decision = decide(metrics(0.7, 0.4), GATE)
    assert decision.passed
    assert any("execution accuracy 0.7000 vs minimum 0.6000" in r for r in decision.reasons)
    assert all(r.startswith("pass: ") for r in decision.reasons)


@pytest.mark.parametrize(
    "data, gate_config, failing",
    [
        (metrics(0.5, 0.2), GATE, "execution accuracy 0.5000 vs minimum 0.6000"),
        (metrics(0.7, 0.68), GATE, "improvement over the base model +0.0200"),
        (metrics(0.7, None), GATE, "base model was not evaluated"),
        (metrics(0.7, 0.4, exact=0.1), {**GATE, "min_exact_match": 0.3}, "exact match 0.1000 vs minimum 0.3000"),
    ],
)
def test_fails_naming_the_rule(data, gate_config, failing):
    decision = decide(data, gate_config)
    assert not decision.passed
    assert any(r.startswith("FAIL: ") and failing in r for r in decision.reasons), decision.reasons


def test_without_execution_accuracy_the_rules_use_exact_match():
    data = metrics(None, None)
    data["base"] = {"execution_accuracy": None, "exact_match": 0.2, "count": 100}
    data["fine_tuned"]["exact_match"] = 0.65
    decision = decide(data, GATE)
    assert decision.passed, decision.reasons
    assert any("exact match (no row has a schema for execution accuracy) 0.6500" in r for r in decision.reasons)
    assert any("+0.4500 (0.2000 to 0.6500)" in r for r in decision.reasons)


def test_fails_below_the_production_model():
    decision = decide(metrics(0.7, 0.4), GATE, production_accuracy=0.75)
    assert not decision.passed
    assert "FAIL: execution accuracy 0.7000 vs the production model's 0.7500" in decision.reasons


SIGNIFICANT = {**GATE, "require_significance": True, "significance_level": 0.05}


def with_statistics(data, fine_tuned_only=30, base_only=2, low=0.6, confidence=0.95):
    """metrics() with what evaluate.py adds: intervals, the paired comparison and its settings."""
    data["fine_tuned"]["intervals"] = {
        "execution_accuracy": {"low": low, "high": low + 0.18, "rows": 100},
        "exact_match": {"low": 0.4, "high": 0.6, "rows": 100},
    }
    difference = (fine_tuned_only - base_only) / 100
    data["comparison"] = {
        "execution_accuracy": {
            "difference": difference,
            "low": difference - 0.08,
            "high": difference + 0.08,
            "rows": 100,
            "fine_tuned_only": fine_tuned_only,
            "base_only": base_only,
            "both": 38,
            "neither": 30,
            "p_value": mcnemar_exact(fine_tuned_only, base_only),
            "test": "mcnemar_exact",
        },
        "exact_match": None,
    }
    data["statistics"] = {"confidence": confidence, "resamples": 2000, "seed": 0}
    return data


def mcnemar_exact(b, c):
    return min(1.0, 2 * sum(math.comb(b + c, k) for k in range(min(b, c) + 1)) / 2 ** (b + c))


def test_significant_improvement_passes_with_its_reason():
    decision = decide(with_statistics(metrics(0.7, 0.42)), SIGNIFICANT)
    assert decision.passed, decision.reasons
    (reason,) = [r for r in decision.reasons if "McNemar" in r]
    assert reason.startswith(
        "pass: improvement over the base model +0.2800, 95% interval +0.2000 to +0.3600 is "
        "significant: McNemar exact p="
    )
    assert "vs level 0.05 (30 rows only the fine-tuned model got right, 2 only the base model)" in reason
    assert decision.metrics["comparison"]["execution_accuracy"]["fine_tuned_only"] == 30


@pytest.mark.parametrize(
    "fine_tuned_only, base_only, level, words",
    [
        (
            6,
            1,
            0.05,
            "+0.0500, 95% interval -0.0300 to +0.1300 is not significant: McNemar exact p=0.125 vs level 0.05",
        ),
        (1, 9, 0.5, "-0.0800, 95% interval -0.1600 to +0.0000 is not significant"),  # significant, but worse
        (8, 1, 0.01, "is not significant: McNemar exact p=0.03906 vs level 0.01"),
    ],
)
def test_an_improvement_that_may_be_luck_fails(fine_tuned_only, base_only, level, words):
    gate = {**SIGNIFICANT, "min_improvement_over_base": 0.0, "significance_level": level, "min_execution_accuracy": 0.0}
    decision = decide(with_statistics(metrics(0.7, 0.6), fine_tuned_only, base_only), gate)
    assert not decision.passed
    assert any(r.startswith("FAIL: improvement over the base model ") and words in r for r in decision.reasons), (
        decision.reasons
    )


def test_old_metrics_without_a_paired_comparison_fail_clearly():
    decision = decide(metrics(0.7, 0.4), SIGNIFICANT)
    assert not decision.passed
    assert any(
        r.startswith("FAIL: metrics.json has no paired comparison; evaluate.py writes one") for r in decision.reasons
    ), decision.reasons
    # Without the option the same metrics pass as before.
    assert decide(metrics(0.7, 0.4), {**SIGNIFICANT, "require_significance": False}).passed


def test_significance_without_a_base_model_fails():
    decision = decide(with_statistics(metrics(0.7, None)), {**SIGNIFICANT, "min_improvement_over_base": 0.0})
    assert (
        "FAIL: the base model was not evaluated, so no improvement over it can be shown significant at level 0.05"
        in decision.reasons
    )


@pytest.mark.parametrize(
    "low, production, passed, words",
    [
        (
            0.6,
            0.55,
            True,
            "pass: execution accuracy 95% interval lower bound 0.6000 exceeds the production model's 0.5500",
        ),
        (
            0.6,
            0.65,
            False,
            "FAIL: execution accuracy 95% interval lower bound 0.6000 does not exceed the production model's 0.6500",
        ),
    ],
)
def test_over_production_the_interval_must_lie_above_its_accuracy(low, production, passed, words):
    decision = decide(with_statistics(metrics(0.7, 0.4), low=low), SIGNIFICANT, production_accuracy=production)
    assert decision.passed is passed and words in decision.reasons, decision.reasons
    # The point estimate alone beats production in both cases.
    assert "pass: execution accuracy 0.7000 vs the production model's " + f"{production:.4f}" in decision.reasons


def test_production_significance_needs_intervals_of_the_level():
    no_intervals = with_statistics(metrics(0.7, 0.4))
    del no_intervals["fine_tuned"]["intervals"]
    decision = decide(no_intervals, SIGNIFICANT, production_accuracy=0.5)
    assert any(
        r.startswith(
            "FAIL: metrics.json has no interval for the fine-tuned model's execution accuracy; evaluate.py writes one"
        )
        for r in decision.reasons
    ), decision.reasons
    decision = decide(
        with_statistics(metrics(0.7, 0.4), fine_tuned_only=60, base_only=2),
        {**SIGNIFICANT, "significance_level": 0.01},
        production_accuracy=0.5,
    )
    assert (
        "FAIL: metrics.json's intervals are 95%; level 0.01 needs at least 99% (evaluate.py --confidence 0.99) "
        "to compare with the production model" in decision.reasons
    )
    # compare_to_production false: no production rule at all.
    decision = decide(
        with_statistics(metrics(0.7, 0.4)), {**SIGNIFICANT, "compare_to_production": False}, production_accuracy=0.9
    )
    assert decision.passed and not any("production" in r for r in decision.reasons)


def test_an_evaluation_error_in_metrics_fails_the_gate():
    data = metrics(0.7, 0.4)
    data["error"] = "base model: generation failed on rows 3 (index 2)"
    decision = decide(data, GATE)
    assert "FAIL: the evaluation did not finish: base model: generation failed on rows 3 (index 2)" in decision.reasons


def _event(run, **state):
    return {"state": {"run": run, **state}, "execution_name": run["execution_name"]}


def serve(aws, endpoint_name, run_id):
    """An endpoint of this stack's runs (as Deploy creates it); returns its ARN."""
    sagemaker = aws.session.client("sagemaker")
    sagemaker.create_model(
        ModelName=f"{run_id}-model",
        PrimaryContainer={"Image": "tgi"},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/fine-tune-sagemaker",
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"{run_id}-cfg",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": f"{run_id}-model",
                "InstanceType": "ml.g5.2xlarge",
                "InitialInstanceCount": 1,
            }
        ],
    )
    return sagemaker.create_endpoint(
        EndpointName=endpoint_name,
        EndpointConfigName=f"{run_id}-cfg",
        Tags=[{"Key": "fine-tune:run-id", "Value": run_id}],
    )["EndpointArn"]


def test_gate_and_register_approved_then_rejected_against_production(aws, run):
    put_evaluation(aws, run, fine_tuned_accuracy=0.7, base_accuracy=0.4)
    put_merged_model(aws, run)
    decision = gate.handler(_event(run), None)
    assert decision["passed"] is True and "production" not in decision["metrics"]
    package = register.handler(_event(run, gate=decision), None)
    assert package["status"] == "Approved"
    (request,) = aws.calls_to("CreateModelPackage")
    container = request["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataSource"]["S3DataSource"] == {
        "S3Uri": run["paths"]["merged"],
        "S3DataType": "S3Prefix",
        "CompressionType": "None",
    }
    assert container["Environment"]["HF_MODEL_ID"] == "/opt/ml/model"
    assert request["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == run["paths"]["metrics"]
    assert request["CustomerMetadataProperties"]["execution_accuracy"] == "0.7000"
    (update,) = aws.calls_to("UpdateModelPackage")
    assert update["ApprovalDescription"].startswith("pass: ")

    # The same run registers once.
    again = register.handler(_event(run, gate=decision), None)
    assert again["arn"] == package["arn"] and len(aws.calls_to("CreateModelPackage")) == 1

    # Approved alone is not production: only the package the endpoint serves is.
    import validate

    later = validate.handler(
        {"execution_name": "later-run", "state": {"deployment": {"endpoint_name": run["names"]["endpoint"]}}}, None
    )
    put_evaluation(aws, later, fine_tuned_accuracy=0.65, base_accuracy=0.4)
    assert "production" not in gate.handler(_event(later), None)["metrics"]

    # Once the deployment of the first package passed its check, the endpoint records it.
    from common import model_registry

    endpoint_arn = serve(aws, run["names"]["endpoint"], run["run_id"])
    model_registry.record_serving(endpoint_arn, package["arn"])
    # A later, weaker run is compared with this production model and rejected.
    decision = gate.handler(_event(later), None)
    assert decision["passed"] is False
    assert decision["metrics"]["production"]["execution_accuracy"] == 0.7
    rejected = register.handler(_event(later, gate=decision), None)
    assert rejected["status"] == "Rejected"
    described = aws.session.client("sagemaker").describe_model_package(ModelPackageName=rejected["arn"])
    assert described["ModelApprovalStatus"] == "Rejected"
    assert described["CustomerMetadataProperties"]["gate_passed"] == "false"


def test_missing_group_is_an_error_unless_creation_is_allowed(aws, run, monkeypatch):
    monkeypatch.setenv("MODEL_PACKAGE_GROUP_NAME", "other-group")
    decision = {"passed": True, "reasons": ["pass: ok"], "metrics": metrics()}
    with pytest.raises(ValueError, match="other-group does not exist"):
        register.handler(_event(run, gate=decision), None)
    monkeypatch.setenv("CREATE_MODEL_PACKAGE_GROUP", "true")
    assert register.handler(_event(run, gate=decision), None)["status"] == "Approved"
    assert GROUP != "other-group"
