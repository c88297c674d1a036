"""EventBridge for local mode: Step Functions' status-change events, delivered to the stack's rules.

When an execution ends, AWS emits a "Step Functions Execution Status Change" event; a rule whose
pattern matches invokes its targets, a Lambda only if the function's resource policy lets
events.amazonaws.com invoke it from that rule. A watcher thread does the same for the emulated
account: it sees each execution end, builds the event as AWS does, matches it with moto's own
pattern matching, has IAM decide the invocation, and invokes the function.

EventBridge invokes Lambda asynchronously: an event whose invocation fails goes to the function's
dead-letter queue, when it has one, sent by Lambda as the function's role (IAM decides that too; a
denied send drops the event, as in AWS). Lambda's own retries before that are not emulated.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import boto3

TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def status_change_event(description: dict, account: str, region: str) -> dict:
    """The event EventBridge sends for an ended execution (times in epoch milliseconds)."""

    def millis(value: Any) -> int | None:
        return int(value.timestamp() * 1000) if hasattr(value, "timestamp") else None

    detail = {
        "executionArn": description["executionArn"],
        "stateMachineArn": description["stateMachineArn"],
        "name": description["name"],
        "status": description["status"],
        "startDate": millis(description.get("startDate")),
        "stopDate": millis(description.get("stopDate")),
        "input": description.get("input"),
        "output": description.get("output"),
        "inputDetails": {"included": True},
        "outputDetails": {"included": True},
        "error": description.get("error"),
        "cause": description.get("cause"),
    }
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": account,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": region,
        "resources": [description["executionArn"]],
        "detail": detail,
    }


class ExecutionEndings:
    """Watches one state machine's executions and delivers each ending to the matching rules."""

    def __init__(
        self, region: str, account: str, state_machine_arn: str, rules: list, iam: Any, poll_seconds: float = 0.5
    ):
        self.region, self.account = region, account
        self.state_machine_arn = state_machine_arn
        self.rules = rules
        self.iam = iam
        self.poll_seconds = poll_seconds
        self.deliveries: dict[str, list[dict]] = {}  # execution ARN -> what each matching rule returned
        self.errors: list[str] = []  # what went wrong delivering (the watcher goes on)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="eventbridge", daemon=True)

    def start(self) -> ExecutionEndings:
        # Clients of their own: boto3 sessions are not thread-safe.
        session = boto3.session.Session(region_name=self.region)
        self._sfn, self._lambda = session.client("stepfunctions"), session.client("lambda")
        self._sqs = session.client("sqs")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def wait_delivered(self, execution_arn: str, timeout: float = 120) -> list[dict] | None:
        deadline = time.monotonic() + timeout
        while execution_arn not in self.deliveries:
            if time.monotonic() > deadline or not self._thread.is_alive():
                return None
            time.sleep(0.1)
        return self.deliveries[execution_arn]

    # ---- the watcher -------------------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self._deliver_new_endings()
            except Exception as error:
                self.errors.append(f"{type(error).__name__}: {error}")
            self._stop.wait(self.poll_seconds)

    def _deliver_new_endings(self) -> None:
        pages = self._sfn.get_paginator("list_executions").paginate(stateMachineArn=self.state_machine_arn)
        for execution in (e for page in pages for e in page["executions"]):
            if execution["status"] not in TERMINAL or execution["executionArn"] in self.deliveries:
                continue
            description = self._sfn.describe_execution(executionArn=execution["executionArn"])
            if description["status"] != "SUCCEEDED" and not description.get("error"):
                description.update(self._ending_details(execution["executionArn"]))
            self.deliveries[execution["executionArn"]] = self.deliver(
                status_change_event(description, self.account, self.region)
            )

    def _ending_details(self, execution_arn: str) -> dict:
        """The error and cause of the execution's last event (StopExecution's, a timeout's), as AWS reports them."""
        events = self._sfn.get_execution_history(executionArn=execution_arn)["events"]
        last = events[-1] if events else {}
        details = next((value for key, value in last.items() if key.endswith("EventDetails")), {}) or {}
        return {key: details[key] for key in ("error", "cause") if details.get(key)}

    def deliver(self, event: dict) -> list[dict]:
        from moto.events.models import EventPattern

        from local_mode.iam import Principal
        from local_mode.iam.enforcer import AccessDenied
        from local_mode.iam.requests import Authorization

        results = []
        for rule in self.rules:
            if not EventPattern.load(json.dumps(rule.pattern)).matches_event(event):
                continue
            for function_arn in rule.function_arns:
                principal = Principal.service_principal("events.amazonaws.com", self.account)
                check = Authorization(
                    "lambda:InvokeFunction",
                    function_arn,
                    {"aws:SourceArn": rule.arn, "aws:SourceAccount": self.account},
                    f"target of rule {rule.name}",
                )
                try:
                    self.iam.authorize(principal, [check], f"eventbridge rule {rule.name}", service="lambda")
                except AccessDenied as denied:
                    results.append({"rule": rule.name, "function": function_arn, "error": str(denied)})
                    continue
                response = self._lambda.invoke(FunctionName=function_arn, Payload=json.dumps(event).encode())
                payload = json.loads(response["Payload"].read() or b"null")
                result = {
                    "rule": rule.name,
                    "function": function_arn,
                    "result": payload,
                    "error": response.get("FunctionError"),
                }
                if response.get("FunctionError"):
                    result.update(self._dead_letter(function_arn, event, payload, response))
                results.append(result)
        return results

    def _dead_letter(self, function_arn: str, event: dict, payload: Any, response: dict) -> dict:
        """Send a failed event to the function's dead-letter queue, as Lambda does: `{"dead_letter": ...}`."""
        info = next(
            (
                info
                for info in self.iam.stack.functions.values()
                if self.iam.stack.physical[info.logical_id].attributes["Arn"] == function_arn
            ),
            None,
        )
        if info is None or not info.dead_letter_arn:
            return {}
        queue_arn = info.dead_letter_arn
        denial = self.iam.dead_letter_denial(info.name, queue_arn)
        if denial is not None:
            return {"dead_letter": {"queue": queue_arn, "error": denial}}
        message = payload.get("errorMessage", "") if isinstance(payload, dict) else ""
        queue_url = self._sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[-1])["QueueUrl"]
        self._sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=json.dumps(event),
            MessageAttributes={
                "RequestID": {
                    "DataType": "String",
                    "StringValue": response["ResponseMetadata"].get("RequestId") or str(uuid.uuid4()),
                },
                "ErrorCode": {"DataType": "Number", "StringValue": "200"},
                "ErrorMessage": {"DataType": "String", "StringValue": message[:1024] or "Unhandled"},
            },
        )
        return {"dead_letter": {"queue": queue_arn}}
