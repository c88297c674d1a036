"""Notify: a short summary of the run on the SNS topic; SNS trouble never fails the workflow."""

from __future__ import annotations

from botocore.exceptions import ClientError
from common import aws
from common.environment import LambdaEnvironment
from common.errors import is_throttling, translate_throttling
from common.observability import logger, tracer

SUBJECT_LIMIT = 100


def outcome(state: dict, declared: str | None = None) -> str:
    """The state machine names the outcome in the payload; otherwise it is read from the state."""
    if declared:
        return declared.upper()
    if state.get("cleanup") or state.get("error"):
        return "FAILED"
    if (state.get("gate") or {}).get("passed") is False:
        return "REJECTED"
    return "SUCCEEDED"


def summary(state: dict, execution_name: str, status: str) -> tuple[str, str]:
    """(subject, message) for one run."""
    run = state.get("run") or {}
    run_id = run.get("run_id", execution_name)
    lines = [f"Fine-tuning run {run_id}: {status}", f"Execution: {execution_name}"]
    gate = state.get("gate") or {}
    fine_tuned = (gate.get("metrics") or {}).get("fine_tuned") or {}
    base = (gate.get("metrics") or {}).get("base") or {}
    if fine_tuned:
        lines.append(
            f"Execution accuracy: {fine_tuned.get('execution_accuracy')} "
            f"(base {base.get('execution_accuracy', 'not evaluated')}), "
            f"exact match {fine_tuned.get('exact_match')}"
        )
    if gate:
        lines.append("Gate: " + ("passed" if gate.get("passed") else "failed"))
        lines += [f"  {reason}" for reason in gate.get("reasons", [])]
    if state.get("model_package"):
        lines.append(f"Model package: {state['model_package'].get('arn')} ({state['model_package'].get('status')})")
    if state.get("deployment"):
        lines.append(
            f"Endpoint: {state['deployment'].get('endpoint_name')} "
            f"({state['deployment'].get('action')}, {state['deployment'].get('status')})"
        )
    cleanup = state.get("cleanup") or {}
    if cleanup:
        lines.append(f"Error: {cleanup.get('error')}: {cleanup.get('cause')}")
    subject = f"Fine-tuning {status}: {run_id}"[:SUBJECT_LIMIT]
    return subject, "\n".join(lines)


@tracer.capture_lambda_handler
@translate_throttling
def handler(event: dict, context: object) -> dict:
    env = LambdaEnvironment.from_os(required=("TOPIC_ARN",))
    state = event.get("state") or {}
    status = outcome(state, event.get("outcome"))
    subject, message = summary(state, event.get("execution_name", ""), status)
    run_id = (state.get("run") or {}).get("run_id", "unknown")
    try:
        response = aws.client("sns").publish(
            TopicArn=env.topic_arn,
            Subject=subject,
            Message=message,
            MessageAttributes={
                "status": {"DataType": "String", "StringValue": status},
                "run_id": {"DataType": "String", "StringValue": run_id},
            },
        )
    except ClientError as error:
        if is_throttling(error):
            raise
        logger.warning("notification not sent", extra={"error": str(error)})
        return {"message_id": None, "error": str(error)}
    return {"message_id": response["MessageId"]}
