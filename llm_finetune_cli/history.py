"""An execution's history, read without flooding GetExecutionHistory, and what it says about the run.

Each poll makes exactly one GetExecutionHistory call: the newest page first (`reverseOrder`). When
more events arrived since the last poll than one page holds, the next polls follow that page's
`nextToken` back to the last event already seen, and only then are the new events handed on, in
order. An event is never read twice once delivered, so a day-long execution costs one page per poll.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

PAGE_SIZE = 1000  # GetExecutionHistory's maximum
END_EVENTS = ("ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut")


class ExecutionHistory:
    def __init__(self, sfn: Any, execution_arn: str, page_size: int = PAGE_SIZE):
        self.sfn = sfn
        self.execution_arn = execution_arn
        self.page_size = page_size
        self.events: list[dict] = []
        self._delivered = 0  # the highest event id handed on
        self._pending: dict[int, dict] = {}
        self._token: str | None = None

    @property
    def caught_up(self) -> bool:
        """False while older pages of new events are still to be read."""
        return self._token is None

    def poll(self) -> list[dict]:
        """One GetExecutionHistory call; the events new since the last delivery, oldest first."""
        kwargs: dict[str, Any] = {
            "executionArn": self.execution_arn,
            "reverseOrder": True,
            "maxResults": self.page_size,
        }
        if self._token:
            kwargs["nextToken"] = self._token
        page = self.sfn.get_execution_history(**kwargs)
        ids = []
        for event in page["events"]:
            ids.append(event["id"])
            if event["id"] > self._delivered:
                self._pending[event["id"]] = event
        token = page.get("nextToken")
        if token and ids and min(ids) > self._delivered + 1:
            self._token = token  # the gap to what was delivered is not closed yet
            return []
        self._token = None
        new = [self._pending[key] for key in sorted(self._pending)]
        self._pending.clear()
        if new:
            self._delivered = new[-1]["id"]
            self.events.extend(new)
        return new

    def read_all(self) -> list[dict]:
        """Everything up to now (for one-shot commands); a history holds at most 25,000 events."""
        self.poll()
        while not self.caught_up:
            self.poll()
        return self.events


@dataclass
class RunState:
    """The run as the history tells it: the states entered, the workflow's state, how it ended."""

    entered: list[str] = field(default_factory=list)
    state: dict = field(default_factory=dict)
    end: dict | None = None
    current: str | None = None

    def add(self, event: dict) -> None:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            name = event["stateEnteredEventDetails"]["name"]
            self.current = name
            if name not in self.entered:
                self.entered.append(name)
        details = event.get("stateExitedEventDetails")
        if details and details.get("output"):
            output = _json(details["output"])
            if isinstance(output, dict):
                self.state.update(output)
        if kind in END_EVENTS:
            self.end = {
                "type": kind,
                **(
                    event.get("executionFailedEventDetails")
                    or event.get("executionAbortedEventDetails")
                    or event.get("executionTimedOutEventDetails")
                    or {}
                ),
            }
            output = _json((event.get("executionSucceededEventDetails") or {}).get("output"))
            if isinstance(output, dict):
                self.state.update(output)

    def add_all(self, events: list[dict]) -> RunState:
        for event in events:
            self.add(event)
        return self

    @property
    def run(self) -> dict:
        """`$.run` from ValidateInput: run_id, names, paths, the resolved config."""
        run = self.state.get("run")
        return run if isinstance(run, dict) else {}

    @property
    def deployment(self) -> dict | None:
        """Deploy's result at `$.deployment` (until Deploy runs, that key holds the input's deployment group)."""
        deployment = self.state.get("deployment")
        if isinstance(deployment, dict) and "endpoint_config_name" in deployment:
            return deployment
        return None

    @property
    def jobs(self) -> dict[str, str]:
        """The jobs the run has started, by kind (prepare, train, evaluate): their names."""
        jobs = self.state.get("jobs") if isinstance(self.state.get("jobs"), dict) else {}
        return {kind: job["name"] for kind, job in jobs.items() if isinstance(job, dict) and job.get("name")}


def failure_of(events: list[dict]) -> tuple[str | None, str | None]:
    """The error and cause of the last failed task, for an execution whose description has none."""
    for event in reversed(events):
        for key in ("executionFailedEventDetails", "taskFailedEventDetails", "lambdaFunctionFailedEventDetails"):
            details = event.get(key)
            if details:
                return details.get("error"), lambda_error_message(details.get("cause"))
    return None, None


def lambda_error_message(cause: str | None) -> str | None:
    """A Lambda task's cause is its error payload (JSON with errorMessage); the message is what matters."""
    payload = _json(cause)
    if isinstance(payload, dict) and "errorMessage" in payload:
        return str(payload["errorMessage"])
    return cause


def _json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None
