"""Gate decisions with reasons; registration Approved or Rejected, once per run."""
import pytest

import gate
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


@pytest.mark.parametrize("data, gate_config, failing", [
    (metrics(0.5, 0.2), GATE, "execution accuracy 0.5000 vs minimum 0.6000"),
    (metrics(0.7, 0.68), GATE, "improvement over the base model +0.0200"),
    (metrics(0.7, None), GATE, "base model was not evaluated"),
    (metrics(0.7, 0.4, exact=0.1), {**GATE, "min_exact_match": 0.3}, "exact match 0.1000 vs minimum 0.3000"),
])
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


def _event(run, **state):
    return {"state": {"run": run, **state}, "execution_name": run["execution_name"]}


def serve(aws, endpoint_name, run_id):
    """An endpoint of this stack's runs (as Deploy creates it); returns its ARN."""
    sagemaker = aws.session.client("sagemaker")
    sagemaker.create_model(ModelName=f"{run_id}-model", PrimaryContainer={"Image": "tgi"},
                           ExecutionRoleArn="arn:aws:iam::123456789012:role/fine-tune-sagemaker")
    sagemaker.create_endpoint_config(EndpointConfigName=f"{run_id}-cfg", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": f"{run_id}-model", "InstanceType": "ml.g5.2xlarge",
        "InitialInstanceCount": 1}])
    return sagemaker.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=f"{run_id}-cfg",
                                     Tags=[{"Key": "fine-tune:run-id", "Value": run_id}])["EndpointArn"]


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
        "S3Uri": run["paths"]["merged"], "S3DataType": "S3Prefix", "CompressionType": "None"}
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
    later = validate.handler({"execution_name": "later-run",
                              "state": {"deployment": {"endpoint_name": run["names"]["endpoint"]}}}, None)
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
