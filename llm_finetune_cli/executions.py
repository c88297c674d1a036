"""Step Functions calls on the stack's state machine: start, find, list and stop executions."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from llm_finetune_cli.errors import CliError, ExitCode

# StartExecution's limit on the input (UTF-8 bytes).
MAX_INPUT_BYTES = 256 * 1024


def execution_arn(state_machine_arn: str, execution: str) -> str:
    """An execution's ARN from its name (or the ARN itself): arn:...:stateMachine:M -> arn:...:execution:M:NAME."""
    if execution.startswith("arn:"):
        return execution
    prefix, machine = state_machine_arn.rsplit(":stateMachine:", 1)
    return f"{prefix}:execution:{machine}:{execution}"


def describe(sfn: Any, arn: str) -> dict:
    try:
        return sfn.describe_execution(executionArn=arn)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code in ("ExecutionDoesNotExist", "InvalidArn"):
            name = arn.rsplit(":", 1)[-1]
            raise CliError(
                f"no execution {name!r} of state machine {arn.split(':')[-2]} "
                f"({code}); `llm-finetune list` shows the executions",
                ExitCode.NOT_FOUND,
            ) from None
        raise


def start(sfn: Any, state_machine_arn: str, name: str, execution_input: dict) -> str:
    body = json.dumps(execution_input)
    if len(body.encode()) > MAX_INPUT_BYTES:
        raise CliError(
            f"--input: the execution input is {len(body.encode())} bytes; Step Functions takes at most "
            f"{MAX_INPUT_BYTES}",
            ExitCode.USAGE,
        )
    try:
        return sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=body)["executionArn"]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if code == "ExecutionAlreadyExists":
            raise CliError(
                f"--name {name}: an execution of that name already exists with another input, or has "
                "ended (a name is kept for 90 days); choose another --name, or `llm-finetune watch "
                f"{name}` to follow it",
                ExitCode.USAGE,
            ) from None
        if code in ("InvalidName", "InvalidExecutionInput"):
            raise CliError(
                f"StartExecution: {code}: {error.response['Error'].get('Message')}", ExitCode.USAGE
            ) from None
        raise


def list_executions(sfn: Any, state_machine_arn: str, status: str | None = None, limit: int = 20) -> list[dict]:
    """The newest executions first (as Step Functions lists them), at most `limit`."""
    return list(_iterate(sfn, state_machine_arn, status, limit))


def _iterate(sfn: Any, state_machine_arn: str, status: str | None, limit: int) -> Iterator[dict]:
    kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn, "maxResults": min(limit, 1000)}
    if status:
        kwargs["statusFilter"] = status
    count = 0
    while True:
        page = sfn.list_executions(**kwargs)
        for execution in page["executions"]:
            yield execution
            count += 1
            if count >= limit:
                return
        if not page.get("nextToken"):
            return
        kwargs["nextToken"] = page["nextToken"]


def stop(sfn: Any, arn: str, cause: str, settle_seconds: float = 10) -> tuple[dict, bool]:
    """Stop a running execution: (its description once it is no longer RUNNING, whether this call stopped it)."""
    description = describe(sfn, arn)
    if description["status"] != "RUNNING":
        return description, False
    sfn.stop_execution(executionArn=arn, error="StoppedByUser", cause=cause[:32768])
    deadline = time.monotonic() + settle_seconds
    while True:
        description = describe(sfn, arn)
        if description["status"] != "RUNNING" or time.monotonic() > deadline:
            return description, True
        time.sleep(0.5)
