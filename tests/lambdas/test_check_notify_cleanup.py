"""CheckEndpoint against the offline predictions; Notify; Cleanup of jobs and error reporting."""

import io
import json

import check_endpoint
import cleanup
import notify
import pytest
import start_job
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import Stubber
from common import aws as common_aws
from common.errors import EndpointMismatch, ThrottlingException
from common.failure import describe_failure
from common.text_rules import postprocess_generation

from .helpers import put_evaluation, put_uri

PREDICTIONS = [
    {
        "id": 1,
        "prompt": "<|im_start|>user\nHow many heads?<|im_end|>\n<|im_start|>assistant\n",
        "fine_tuned": {"prediction": "SELECT COUNT(*) FROM head WHERE age > 56"},
    },
    {"id": 2, "prompt": "p2", "fine_tuned": {"prediction": "SELECT name FROM t"}},
    {"id": 3, "prompt": "p3", "fine_tuned": {"prediction": "SELECT 1"}},
    {
        "id": 4,
        "prompt": "p4",
        "fine_tuned": {"prediction": "SELECT 2", "output": "```sql\nSELECT 2\n```\n\nThis selects two."},
    },
]


def _body(text: str) -> StreamingBody:
    raw = json.dumps([{"generated_text": text}]).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def _check(aws, run, answers, samples=2, fraction=1.0):
    run["config"]["deployment"]["check"] = {"samples": samples, "min_match_fraction": fraction}
    put_evaluation(aws, run)
    put_uri(aws, run["paths"]["predictions"], "\n".join(json.dumps(r) for r in PREDICTIONS) + "\n")
    runtime = common_aws.client("sagemaker-runtime")
    with Stubber(runtime) as stub:
        for row, answer in zip(PREDICTIONS, answers, strict=False):
            expected_body = json.dumps(
                {
                    "inputs": row["prompt"],
                    "parameters": {"max_new_tokens": 128, "do_sample": False, "return_full_text": False},
                }
            )
            stub.add_response(
                "invoke_endpoint",
                {"Body": _body(answer), "ContentType": "application/json"},
                {
                    "EndpointName": "sql-assistant",
                    "ContentType": "application/json",
                    "Accept": "application/json",
                    "Body": expected_body,
                },
            )
        state = {"run": run, "deployment": {"endpoint_name": "sql-assistant"}}
        return check_endpoint.handler({"state": state}, None)


def test_endpoint_matches_the_offline_predictions(aws, run):
    answers = [" SELECT COUNT(*) FROM head WHERE age > 56\n\nThis query counts", "SELECT name FROM t"]
    result = _check(aws, run, answers)
    assert result["passed"] and result["compared"] == 2 and result["matches"] == 2
    assert result["url"] == "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/sql-assistant/invocations"


def test_a_mismatch_raises_with_the_row(aws, run):
    with pytest.raises(EndpointMismatch, match=r"matched 1 of 2 .*row 2: expected 'SELECT name FROM t'"):
        _check(aws, run, ["SELECT COUNT(*) FROM head WHERE age > 56", "SELECT id FROM t"])


def test_a_threshold_below_one_tolerates_a_mismatch(aws, run):
    result = _check(aws, run, ["SELECT COUNT(*) FROM head WHERE age > 56", "x", "SELECT 1"], samples=3, fraction=0.6)
    assert result["passed"] and result["matches"] == 2


def test_rows_with_raw_output_are_compared_on_the_raw_text(aws, run):
    answers = [
        "SELECT COUNT(*) FROM head WHERE age > 56",
        "SELECT name FROM t",
        "SELECT 1",
        "```sql\nSELECT 2\n```\n\nA different explanation.",
    ]
    result = _check(aws, run, answers, samples=4)
    assert result["matches"] == 4
    with pytest.raises(EndpointMismatch, match="row 4"):
        _check(aws, run, [*answers[:3], "SELECT 2"], samples=4)


@pytest.mark.parametrize(
    "raw, cut",
    [
        ("  SELECT 1  ", "SELECT 1"),
        ("SELECT 1\n\nExplanation", "SELECT 1"),
        ("SELECT a\nFROM t\n   \nmore", "SELECT a\nFROM t"),
        ("\n\nSELECT 1", "SELECT 1"),
    ],
)
def test_postprocessing_rule(raw, cut):
    assert postprocess_generation(raw) == cut


def test_notify_publishes_a_summary(aws, run):
    gate = {
        "passed": True,
        "reasons": ["pass: execution accuracy 0.7000 vs minimum 0.5000"],
        "metrics": {"fine_tuned": {"execution_accuracy": 0.7, "exact_match": 0.5}, "base": None},
    }
    sqs = aws.session.client("sqs")
    queue = sqs.create_queue(QueueName="runs")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.session.client("sns").subscribe(TopicArn=aws.topic_arn, Protocol="sqs", Endpoint=queue_arn)
    result = notify.handler(
        {
            "outcome": "succeeded",
            "execution_name": run["execution_name"],
            "state": {
                "run": run,
                "gate": gate,
                "deployment": {"endpoint_name": "sql-assistant", "action": "create", "status": "InService"},
            },
        },
        None,
    )
    assert result["message_id"]
    (message,) = sqs.receive_message(QueueUrl=queue)["Messages"]
    envelope = json.loads(message["Body"])
    assert envelope["Subject"] == f"Fine-tuning SUCCEEDED: {run['run_id']}"
    assert "Execution accuracy: 0.7" in envelope["Message"] and "Endpoint: sql-assistant" in envelope["Message"]
    assert envelope["MessageAttributes"]["status"]["Value"] == "SUCCEEDED"


def test_notify_survives_sns_errors_but_not_throttling(aws, run, monkeypatch):
    sns = common_aws.client("sns")
    with Stubber(sns) as stub:
        stub.add_client_error("publish", "AuthorizationError", "not allowed")
        result = notify.handler({"state": {"run": run}, "execution_name": "x"}, None)
    assert result["message_id"] is None and "AuthorizationError" in result["error"]
    with Stubber(sns) as stub:
        stub.add_client_error("publish", "Throttling", "Rate exceeded")
        with pytest.raises(ThrottlingException):
            notify.handler({"state": {"run": run}, "execution_name": "x"}, None)


def test_cleanup_stops_running_jobs(aws, run):
    for kind in ("prepare", "train"):
        start_job.handler({"kind": kind, "state": {"run": run}}, None)
    aws.backend.training_jobs[run["names"]["train"]].training_job_status = "InProgress"
    error = {"Error": "States.Timeout", "Cause": "The task timed out"}
    result = cleanup.handler({"state": {"run": run, "error": error}}, None)
    assert result["stopped_jobs"] == [run["names"]["train"]]
    assert aws.stopped == [run["names"]["train"]]
    assert result["error"] == "States.Timeout" and result["cause"] == "The task timed out"


def test_cleanup_before_validation_only_reports():
    cause = json.dumps({"errorType": "InvalidInput", "errorMessage": "1 problem(s) in the execution input:\n- x"})
    result = cleanup.handler({"state": {"error": {"Error": "InvalidInput", "Cause": cause}}}, None)
    assert result["error"] == "InvalidInput" and result["cause"].startswith("1 problem(s)")
    assert result["stopped_jobs"] == [] and result["deleted"] == []


@pytest.mark.parametrize(
    "error, expected",
    [
        (
            {
                "Error": "JobFailed",
                "Cause": json.dumps(
                    {
                        "errorType": "JobFailed",
                        "errorMessage": "train job r-train failed: AlgorithmError: OOM (status Failed)",
                    }
                ),
            },
            ("TrainingJobFailed", "train job r-train failed: AlgorithmError: OOM (status Failed)"),
        ),
        (
            {"Error": "JobFailed", "Cause": json.dumps({"errorMessage": "evaluate job r-eval failed: x"})},
            ("EvaluationJobFailed", "evaluate job r-eval failed: x"),
        ),
        ({"Error": "EndpointFailed", "Cause": "not json"}, ("EndpointFailed", "not json")),
        (None, ("UnknownError", "the workflow failed without an error description")),
    ],
)
def test_failure_description(error, expected):
    assert describe_failure(error) == expected


def test_cleanup_throttled_is_retryable(aws, run, monkeypatch):
    import common.jobs

    def throttled(kind, name):
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "DescribeTrainingJob")

    monkeypatch.setattr(common.jobs, "describe", throttled)
    with pytest.raises(ThrottlingException):
        cleanup.handler({"state": {"run": run, "error": {"Error": "X", "Cause": "y"}}}, None)
