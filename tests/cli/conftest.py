"""The CLI against moto: a stack's outputs in CloudFormation and a fake of the workflow's contract.

The fake state machine is made of Pass, Wait, Choice, Succeed and Fail states with the real
workflow's state names, writing what the real Lambdas write where docs/workflow-contract.md says
(`$.run`, `$.jobs.<kind>`, `$.gate`, `$.model_package`, `$.deployment`, `$.endpoint_check`) and,
for `orchestration.dry_run`, the preflight report at `$.preflight` as the dry-run contract
describes. `fake_outcome` in the input picks the ending. moto's interpreter really executes it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sagemaker.models import sagemaker_backends
from rich.console import Console

from llm_finetune_cli.cli import main

REGION = "us-east-1"
STACK = "LlmFineTuning"
ARTIFACTS = "llm-ft-artifacts-test"
DATA = "llm-ft-data-test"
RUN_ID = "fake-run-1a2b3c4d"
ROLE = f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/fake-state-machine"
NAMES = {
    "prepare": f"{RUN_ID}-prep",
    "train": f"{RUN_ID}-train",
    "evaluate": f"{RUN_ID}-eval",
    "model": f"{RUN_ID}-model",
    "endpoint_config": f"{RUN_ID}-cfg",
    "endpoint": "sql-assistant",
    "model_package_group": "llm-ft-models",
}
PATHS = {
    "metrics": f"s3://{ARTIFACTS}/runs/{RUN_ID}/eval/metrics.json",
    "report": f"s3://{ARTIFACTS}/runs/{RUN_ID}/eval/report.html",
}
METRICS = {
    "fine_tuned": {"execution_accuracy": 0.62, "exact_match": 0.41, "count": 100, "execution_errors": 3},
    "base": {"execution_accuracy": 0.31, "exact_match": 0.12, "count": 100, "execution_errors": 20},
    "settings": {"max_new_tokens": 128},
}
PACKAGE_ARN = f"arn:aws:sagemaker:{REGION}:{DEFAULT_ACCOUNT_ID}:model-package/llm-ft-models/3"
# The shape lambdas/preflight.py returns: each passed check and each problem is one sentence.
PREFLIGHT_PASSED = {
    "passed": True,
    "problems": [],
    "checks": [
        "quota 'ml.g5.2xlarge for spot training job usage' is 2, the run needs 1",
        "the longest run (13.0 h) fits the state machine's timeout (72 h)",
    ],
}
PREFLIGHT_FAILED = {
    "passed": False,
    "problems": [
        "training.instance_type: 'ml.p5.48xlarge' has no SageMaker quota 'ml.p5.48xlarge "
        "for spot training job usage' in us-east-1; choose an instance type offered for "
        "spot training job usage in this region"
    ],
    "checks": [],
}


def _pass(result: dict, path: str, next_state: str) -> dict:
    return {"Type": "Pass", "Result": result, "ResultPath": path, "Next": next_state}


def _job(kind: str) -> dict:
    return {
        "name": NAMES[kind],
        "kind": kind,
        "arn": f"arn:aws:sagemaker:{REGION}:{DEFAULT_ACCOUNT_ID}:job/{NAMES[kind]}",
        "status": "InProgress",
        "adopted": False,
    }


def _outcome_is(value: str, next_state: str) -> dict:
    return {
        "And": [
            {"Variable": "$.fake_outcome", "IsPresent": True},
            {"Variable": "$.fake_outcome", "StringEquals": value},
        ],
        "Next": next_state,
    }


DEFINITION = {
    "StartAt": "ValidateInput",
    "States": {
        "ValidateInput": _pass(
            {
                "run_id": RUN_ID,
                "names": NAMES,
                "paths": PATHS,
                "poll_seconds": 1,
                "config": {"training": {"hyperparameters": {"max_steps": 4}}},
            },
            "$.run",
            "IsDryRun",
        ),
        "IsDryRun": {
            "Type": "Choice",
            "Default": "StartPrepare",
            "Choices": [
                {
                    "And": [
                        {"Variable": "$.orchestration.dry_run", "IsPresent": True},
                        {"Variable": "$.orchestration.dry_run", "BooleanEquals": True},
                    ],
                    "Next": "Preflight",
                }
            ],
        },
        "Preflight": {
            "Type": "Choice",
            "Default": "PreflightPasses",
            "Choices": [_outcome_is("preflight_fails", "PreflightFails"), _outcome_is("ignores_dry_run", "Succeeded")],
        },
        "PreflightPasses": _pass(PREFLIGHT_PASSED, "$.preflight", "Succeeded"),
        "PreflightFails": _pass(PREFLIGHT_FAILED, "$.preflight", "PreflightFailed"),
        "PreflightFailed": {
            "Type": "Fail",
            "Error": "PreflightFailed",
            "Cause": 'training.instance_type: "ml.p5.48xlarge" has no spot training quota',
        },
        "StartPrepare": _pass(_job("prepare"), "$.jobs.prepare", "WaitForPrepare"),
        "WaitForPrepare": {"Type": "Wait", "Seconds": 1, "Next": "StartTrain"},
        "StartTrain": _pass(_job("train"), "$.jobs.train", "CountPolls"),
        "CountPolls": _pass({"count": 0}, "$.polls", "WaitForTrain"),
        "WaitForTrain": {"Type": "Wait", "Seconds": 1, "Next": "DescribeTrain"},
        "DescribeTrain": {
            "Type": "Pass",
            "Parameters": {"count.$": "States.MathAdd($.polls.count, 1)"},
            "ResultPath": "$.polls",
            "Next": "TrainComplete",
        },
        "TrainComplete": {
            "Type": "Choice",
            "Default": "WaitForTrain",
            "Choices": [{"Variable": "$.polls.count", "NumericGreaterThanEquals": 3, "Next": "StartEvaluate"}],
        },
        "StartEvaluate": _pass(_job("evaluate"), "$.jobs.evaluate", "WaitForEvaluate"),
        "WaitForEvaluate": {"Type": "Wait", "Seconds": 1, "Next": "Outcome"},
        "Outcome": {
            "Type": "Choice",
            "Default": "Gate",
            "Choices": [_outcome_is("gate_fails", "GateRejects"), _outcome_is("stalls", "Stall")],
        },
        "Stall": {"Type": "Wait", "Seconds": 600, "Next": "Gate"},
        "Gate": _pass(
            {"passed": True, "reasons": ["pass: execution accuracy 0.62 vs minimum 0.60"], "metrics": METRICS},
            "$.gate",
            "Register",
        ),
        "Register": _pass({"arn": PACKAGE_ARN, "status": "Approved"}, "$.model_package", "Deploy"),
        "Deploy": _pass(
            {
                "endpoint_name": "sql-assistant",
                "endpoint_config_name": f"{RUN_ID}-cfg",
                "model_name": f"{RUN_ID}-model",
                "action": "create",
            },
            "$.deployment",
            "CheckEndpoint",
        ),
        "CheckEndpoint": _pass(
            {
                "passed": True,
                "compared": 3,
                "matches": 3,
                "url": f"https://runtime.sagemaker.{REGION}.amazonaws.com/endpoints/sql-assistant/invocations",
            },
            "$.endpoint_check",
            "Succeeded",
        ),
        "GateRejects": _pass(
            {"passed": False, "reasons": ["fail: execution accuracy 0.31 vs minimum 0.60"], "metrics": METRICS},
            "$.gate",
            "RegisterRejected",
        ),
        "RegisterRejected": _pass({"arn": PACKAGE_ARN, "status": "Rejected"}, "$.model_package", "RejectedByGate"),
        "RejectedByGate": {
            "Type": "Fail",
            "Error": "EvaluationGateFailed",
            "Cause": "fail: execution accuracy 0.31 vs minimum 0.60",
        },
        "Succeeded": {"Type": "Succeed"},
    },
}


@dataclass
class Run:
    code: int
    out: str
    err: str


@dataclass
class FakeStack:
    """moto's account with the stack's outputs, the fake workflow, and SageMaker jobs and logs on demand."""

    session: boto3.Session
    state_machine_arn: str
    outputs: dict[str, str]
    log_sequence: dict[str, int] = field(default_factory=dict)

    def cli(self, *args: str) -> Run:
        out, err = io.StringIO(), io.StringIO()
        code = main(
            ["--region", REGION, "--interval", "0.2", *args],
            out=Console(file=out, width=200, highlight=False),
            err=Console(file=err, width=200),
        )
        return Run(code, out.getvalue(), err.getvalue())

    def client(self, service: str):
        return self.session.client(service, region_name=REGION)

    @property
    def backend(self):
        return sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION]

    def create_jobs(self, max_steps: str = "4") -> None:
        sagemaker = self.client("sagemaker")
        for kind in ("prepare", "evaluate"):
            sagemaker.create_processing_job(
                ProcessingJobName=NAMES[kind],
                RoleArn=ROLE,
                AppSpecification={"ImageUri": "image"},
                ProcessingResources={
                    "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30}
                },
                StoppingCondition={"MaxRuntimeInSeconds": 3600},
            )
        sagemaker.create_training_job(
            TrainingJobName=NAMES["train"],
            RoleArn=ROLE,
            HyperParameters={"max_steps": max_steps, "epochs": "3"},
            AlgorithmSpecification={"TrainingImage": "image", "TrainingInputMode": "File"},
            OutputDataConfig={"S3OutputPath": f"s3://{ARTIFACTS}/runs/{RUN_ID}/training/"},
            ResourceConfig={"InstanceType": "ml.g5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 100},
            StoppingCondition={"MaxRuntimeInSeconds": 3600},
        )

    def set_training(self, status: str, secondary: str, message: str) -> None:
        job = self.backend.training_jobs[NAMES["train"]]
        job.training_job_status = status
        job.secondary_status = secondary
        job.secondary_status_transitions = [
            {"Status": secondary, "StartTime": datetime.now(UTC), "StatusMessage": message}
        ]

    def log(
        self, kind: str, lines: list[str], host: str = "algo-1", start_ms: int | None = None, step_ms: int = 1000
    ) -> None:
        """Lines of a job's host stream, as SageMaker writes them; timestamps `step_ms` apart."""
        logs = self.client("logs")
        group = "/aws/sagemaker/TrainingJobs" if kind == "train" else "/aws/sagemaker/ProcessingJobs"
        stream = f"{NAMES[kind]}/{host}-1700000000"
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=group)
        if stream not in self.log_sequence:
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
            self.log_sequence[stream] = start_ms or int(time.time() * 1000) - 600_000
        events = []
        for line in lines:
            events.append({"timestamp": self.log_sequence[stream], "message": line})
            self.log_sequence[stream] += step_ms
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)

    def start(self, name: str, execution_input: dict) -> str:
        return self.client("stepfunctions").start_execution(
            stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(execution_input)
        )["executionArn"]

    def wait(self, arn: str, timeout: float = 60) -> dict:
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while True:
            description = sfn.describe_execution(executionArn=arn)
            if description["status"] != "RUNNING" or time.monotonic() > deadline:
                return description
            time.sleep(0.2)


@pytest.fixture
def stack(monkeypatch):
    # moto's interpreter logs every IsPresent test of a missing field as an error.
    logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
    for variable in ("AWS_PROFILE", "AWS_REGION", "LLM_FINETUNE_STACK"):
        monkeypatch.delenv(variable, raising=False)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        session = boto3.Session(region_name=REGION)
        s3 = session.client("s3")
        for bucket in (ARTIFACTS, DATA):
            s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=ARTIFACTS, Key=f"runs/{RUN_ID}/eval/metrics.json", Body=json.dumps(METRICS).encode())
        machine = session.client("stepfunctions").create_state_machine(
            name="LlmFineTuning-Workflow", definition=json.dumps(DEFINITION), roleArn=ROLE
        )["stateMachineArn"]
        outputs = {
            "StateMachineArn": machine,
            "ArtifactsBucketName": ARTIFACTS,
            "DataBucketName": DATA,
            "TopicArn": f"arn:aws:sns:{REGION}:{DEFAULT_ACCOUNT_ID}:llm-ft",
            "ModelPackageGroupName": "llm-ft-models",
        }
        template = {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
        session.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(template))
        yield FakeStack(session=session, state_machine_arn=machine, outputs=outputs)


@pytest.fixture
def input_file(tmp_path):
    def write(value, name: str = "input.json"):
        path = tmp_path / name
        path.write_text(value if isinstance(value, str) else json.dumps(value))
        return path

    return write
