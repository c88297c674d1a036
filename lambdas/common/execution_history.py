"""An ended execution read back from its history: the state it left, and whether Cleanup ran.

EventBridge tells Cleanup that an execution ended (failed, timed out or was aborted) but not what it
had started; the history has it: every state's output, merged in order, is the workflow's state as
the last states left it (`$.run`, `$.jobs`, `$.deployment`, `$.model_package`).
"""

from __future__ import annotations

import json

from common import aws

STATUS_CHANGE = "Step Functions Execution Status Change"
# The error Cleanup reports for an execution that ended outside the workflow's own Catch.
ENDING_ERRORS = {"TIMED_OUT": "States.Timeout", "ABORTED": "ExecutionAborted", "FAILED": "States.Runtime"}


def history(execution_arn: str) -> list[dict]:
    events, kwargs = [], {"executionArn": execution_arn, "maxResults": 1000}
    states = aws.client("stepfunctions")
    while True:
        page = states.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def last_state(events: list[dict]) -> dict:
    state: dict = {}
    for event in events:
        details = event.get("stateExitedEventDetails") or {}
        if details.get("output"):
            try:
                output = json.loads(details["output"])
            except json.JSONDecodeError:
                continue
            if isinstance(output, dict):
                state.update(output)
    return state


def cleanup_ran(events: list[dict]) -> bool:
    return any((event.get("stateExitedEventDetails") or {}).get("name") == "Cleanup" for event in events)
