"""A template with one grant removed: the run fails with AccessDenied where AWS would, and Cleanup runs.

In a module of its own: it needs an emulated account of its own, with the edited template.
"""

import copy

from local_mode.run import RunRequest, run_execution
from tests.e2e.conftest import EXAMPLE_DATA, local_aws


def without_create_training_job(template):
    """The template with sagemaker:CreateTrainingJob taken out of every policy."""
    template = copy.deepcopy(template)
    removed = 0
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if "sagemaker:CreateTrainingJob" in actions:
                statement["Action"] = [a for a in actions if a != "sagemaker:CreateTrainingJob"]
                removed += 1
    assert removed == 1
    return template


def test_a_missing_grant_fails_the_state_that_needs_it_and_cleanup_runs(
    stack_template, tiny_model, tiny_input, tmp_path
):
    stack_name, template = stack_template
    with local_aws(tmp_path, (stack_name, without_create_training_job(template))) as aws:
        summary = run_execution(
            aws,
            RunRequest(tiny_input, "missing-grant", model_dir=tiny_model, dataset=EXAMPLE_DATA, timeout_seconds=600),
        )
        failure = next(
            event.get("taskFailedEventDetails") or event["lambdaFunctionFailedEventDetails"]
            for event in aws.history(summary["execution_arn"])
            if "taskFailedEventDetails" in event or "lambdaFunctionFailedEventDetails" in event
        )
        entered = [
            event["stateEnteredEventDetails"]["name"]
            for event in aws.history(summary["execution_arn"])
            if "stateEnteredEventDetails" in event
        ]
    assert summary["status"] == "FAILED"
    assert "AccessDeniedException" in summary["cause"]
    assert "sagemaker:CreateTrainingJob" in summary["cause"] and "StartJobRole" in summary["cause"]
    assert "training-job/" in summary["cause"]
    assert "AccessDeniedException" in failure["cause"]
    assert entered.index("StartTrain") < entered.index("Cleanup")
    assert [job["kind"] for job in summary["jobs"]] == ["processing"]
    assert summary["cleanup"] is not None and summary["cleanup"]["error"] == "ClientError"
    denied = summary["iam"]["denials"]
    assert [(d["action"], d["operation"]) for d in denied] == [
        ("sagemaker:CreateTrainingJob", "sagemaker:CreateTrainingJob")
    ]


def without_data_reads_for_sagemaker(template):
    """The template with the SageMaker role's read of the data bucket's objects taken out."""
    template = copy.deepcopy(template)
    for statement in _sagemaker_role_statements(template):
        if statement["Action"] == "s3:GetObject":
            statement["Resource"] = [r for r in statement["Resource"] if "DataBucket" not in str(r)]
            return template
    raise AssertionError("the SageMaker role's s3:GetObject statement was not found")


def without_output_writes_for_sagemaker(template):
    """The template with s3:PutObject taken out of the SageMaker role's grant on runs/*."""
    template = copy.deepcopy(template)
    for statement in _sagemaker_role_statements(template):
        if isinstance(statement["Action"], list) and "s3:PutObject" in statement["Action"]:
            statement["Action"] = [a for a in statement["Action"] if a != "s3:PutObject"]
            return template
    raise AssertionError("the SageMaker role's s3:PutObject statement was not found")


def _sagemaker_role_statements(template):
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::IAM::Policy" and logical_id.startswith("PipelineSageMakerRoleDefaultPolicy"):
            yield from resource["Properties"]["PolicyDocument"]["Statement"]


def test_preflight_finds_inputs_the_sagemaker_role_cannot_read_before_any_job(
    stack_template, tiny_model, tiny_input, tmp_path
):
    stack_name, template = stack_template
    with local_aws(tmp_path, (stack_name, without_data_reads_for_sagemaker(template))) as aws:
        summary = run_execution(
            aws, RunRequest(tiny_input, "no-data-read", model_dir=tiny_model, dataset=EXAMPLE_DATA, timeout_seconds=600)
        )
    assert summary["status"] == "FAILED" and summary["error"] == "PreflightFailed"
    assert summary["jobs"] == []  # found before a job (or a GPU) was paid for
    assert "dataset.s3_uri: the SageMaker role may not read" in summary["cause"]
    assert "base_model.s3_uri: the SageMaker role may not read" in summary["cause"]
    assert "s3:GetObject" in summary["cause"] and "implicitDeny" in summary["cause"]
    assert summary["cleanup"] is not None


def test_a_job_whose_role_cannot_write_its_outputs_fails_as_sagemaker_reports_it(
    stack_template, tiny_model, tiny_input, tmp_path
):
    stack_name, template = stack_template
    with local_aws(tmp_path, (stack_name, without_output_writes_for_sagemaker(template))) as aws:
        summary = run_execution(
            aws,
            RunRequest(tiny_input, "no-output-write", model_dir=tiny_model, dataset=EXAMPLE_DATA, timeout_seconds=600),
        )
    [prepare] = summary["jobs"]
    assert prepare["status"] == "Failed"
    assert prepare["failure_reason"].startswith("ClientError: Failed to upload outputs to s3://"), prepare
    assert "s3:PutObject" in prepare["failure_reason"] and "SageMakerRole" in prepare["failure_reason"]
    assert summary["status"] == "FAILED" and summary["error"] == "PrepareJobFailed"
    assert summary["cleanup"] is not None
    assert {d["action"] for d in summary["iam"]["denials"]} == {"s3:PutObject"}
