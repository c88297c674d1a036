"""What a run's summary reports, and the requests it makes to build it, in order, for each kind of outcome."""

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from local_mode import run


class NotFound(Exception):
    pass


def fake_aws(calls: list, case: dict):
    def log(name, answer):
        def call(*args, **kwargs):
            calls.append([name, [str(a) for a in args], {k: str(v) for k, v in kwargs.items()}])
            if isinstance(answer, Exception):
                raise answer
            return answer(*args, **kwargs) if callable(answer) else answer

        return call

    description = {"status": case["status"], "name": "exec", **case.get("description", {})}
    return SimpleNamespace(
        sfn=SimpleNamespace(describe_execution=log("describe_execution", description)),
        final_state=log("final_state", case.get("state", {})),
        history=log("history", case.get("history", [])),
        artifacts_bucket="bkt",
        read_json=log("read_json", lambda uri: case.get("files", {}).get(uri)),
        endpoints="endpoint-emulator",
        sagemaker=SimpleNamespace(
            describe_endpoint=log("describe_endpoint", case.get("endpoint_status", NotFound())),
            exceptions=SimpleNamespace(ClientError=NotFound),
        ),
        workdir=Path("/local-workdir"),
        jobs=SimpleNamespace(summaries=log("job_summaries", case.get("jobs", []))),
        stack=SimpleNamespace(not_emulated=["AWS::CloudWatch::Dashboard"]),
        iam=SimpleNamespace(summary=log("iam_summary", {"checks": 3})),
    )


JOB = {
    "name": "r1-train",
    "kind": "training",
    "status": "Completed",
    "attempts": 1,
    "failure_reason": None,
    "started": "t0",
    "ended": "t1",
    "seconds": 5.0,
    "run_id": "r1",
    "extra": "dropped",
}
CASES = {
    "succeeded with everything": {
        "status": "SUCCEEDED",
        "description": {"output": '{"ok": true}'},
        "state": {
            "run": {"run_id": "r1"},
            "deployment": {"endpoint_name": "ep", "engine": "vllm"},
            "gate": {"passed": True},
            "model_package": {"arn": "p"},
            "endpoint_check": {"passed": True},
            "cleanup": None,
        },
        "files": {
            "s3://bkt/runs/r1/eval/metrics.json": {"base": {"a": 1}, "fine_tuned": {"a": 2}, "other": 3},
            "s3://bkt/runs/r1/serving-check/report.json": {"passed": True, "rows": {"compared": 2, "matching": 2}},
        },
        "endpoint": {"name": "ep", "url": "http://x"},
        "endpoint_status": {"EndpointStatus": "InService"},
        "jobs": [JOB, {**JOB, "name": "other-train", "run_id": "r0"}],
    },
    "failed with the error on the execution": {
        "status": "FAILED",
        "description": {"error": "E", "cause": "C"},
        "state": {"run": {"run_id": "r1"}, "deployment": {"endpoint_name": "ep"}},
        "endpoint": {"name": "ep"},
        "jobs": [JOB],
    },
    "failed with the error in the history": {
        "status": "FAILED",
        "history": [
            {"executionFailedEventDetails": {"error": "Old", "cause": "old"}},
            {"type": "x"},
            {"executionFailedEventDetails": {"error": "States.Timeout", "cause": "late"}},
            {"type": "y"},
        ],
    },
    "aborted without any failure event": {"status": "ABORTED", "history": [{"type": "x"}], "jobs": [JOB]},
}


EXPECTED = json.loads(Path(__file__).with_name("run_summary_cases.json").read_text())


@pytest.mark.parametrize("name", CASES)
def test_summary_and_its_requests(monkeypatch, name):
    case = CASES[name]
    calls: list = []

    def describe_for_summary(emulator, endpoint_name, since, engine):
        calls.append(["describe_for_summary", [emulator, str(endpoint_name), str(since)], {"engine": engine}])
        return dict(case["endpoint"]) if case.get("endpoint") and endpoint_name else None

    monkeypatch.setattr(run, "describe_for_summary", describe_for_summary)
    since = datetime(2026, 1, 1, tzinfo=UTC)
    summary = run.summarize(fake_aws(calls, case), "arn:exec", since, first_check=7)
    assert {"summary": summary, "calls": calls} == EXPECTED[name]
