"""The synthesized state machine follows docs/workflow-contract.md and always ends."""

from __future__ import annotations

from typing import Any

import pytest

from cdk_app.asl import transitions

RETRYABLE = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "ThrottlingException",
    "Throttled",
}

# Task state -> (step in the payload, handler verb, result path, constant payload keys).
CONTRACT = {
    "ValidateInput": ("ValidateInput", "validate", "$.run", {}),
    "StartPrepare": ("StartPrepare", "start_job", "$.jobs.prepare", {"kind": "prepare"}),
    "DescribePrepare": ("DescribePrepare", "describe_job", "$.jobs.prepare", {"kind": "prepare"}),
    "StartTrain": ("StartTrain", "start_job", "$.jobs.train", {"kind": "train"}),
    "DescribeTrain": ("DescribeTrain", "describe_job", "$.jobs.train", {"kind": "train"}),
    "StartEvaluate": ("StartEvaluate", "start_job", "$.jobs.evaluate", {"kind": "evaluate"}),
    "DescribeEvaluate": ("DescribeEvaluate", "describe_job", "$.jobs.evaluate", {"kind": "evaluate"}),
    "StartServingCheck": ("StartServingCheck", "start_job", "$.jobs.serving_check", {"kind": "serving_check"}),
    "DescribeServingCheck": ("DescribeServingCheck", "describe_job", "$.jobs.serving_check", {"kind": "serving_check"}),
    "Gate": ("Gate", "gate", "$.gate", {}),
    "Register": ("Register", "register", "$.model_package", {}),
    "Deploy": ("Deploy", "deploy", "$.deployment", {}),
    "DescribeEndpoint": ("DescribeEndpoint", "describe_endpoint", "$.deployment", {}),
    "Preflight": ("Preflight", "preflight", "$.preflight", {}),
    "ConfigureScaling": ("ConfigureScaling", "configure_scaling", "$.scaling", {}),
    "CheckEndpoint": ("CheckEndpoint", "check_endpoint", "$.endpoint_check", {}),
    "NotifySuccess": ("Notify", "notify", "$.notification", {"outcome": "succeeded"}),
    "NotifyRejected": ("Notify", "notify", "$.notification", {"outcome": "rejected"}),
    "NotifyFailure": ("Notify", "notify", "$.notification", {"outcome": "failed"}),
    "Cleanup": ("Cleanup", "cleanup", "$.cleanup", {}),
}


def tasks(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: state for name, state in definition["States"].items() if state["Type"] == "Task"}


def reachable(definition: dict[str, Any], without: tuple[str, str] | None = None) -> set[str]:
    seen, stack = set(), [definition["StartAt"]]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        for _, _, target in transitions(definition["States"][name]):
            if (name, target) != without:
                stack.append(target)
    return seen


def test_tasks_are_exactly_the_contract_steps(definition, synthesized):
    assert set(tasks(definition)) == set(CONTRACT)
    functions = dict(synthesized.resources("AWS::Lambda::Function").items())
    for name, state in tasks(definition).items():
        step, verb, result_path, constants = CONTRACT[name]
        logical_id = state["Resource"].removeprefix("${").removesuffix(".Arn}")
        assert functions[logical_id]["Properties"]["Handler"] == f"{verb}.handler", name
        assert state["Parameters"] == {
            "step": step,
            **constants,
            "state.$": "$",
            "execution_name.$": "$$.Execution.Name",
        }, name
        assert state["ResultPath"] == result_path, name
        assert "ResultSelector" not in state and "OutputPath" not in state, name


def test_every_task_retries_throttling_and_lambda_errors_with_backoff(definition):
    for name, state in tasks(definition).items():
        retry = state["Retry"]
        assert len(retry) == 1, name
        assert set(retry[0]["ErrorEquals"]) == RETRYABLE, name
        assert retry[0]["BackoffRate"] > 1 and retry[0]["MaxAttempts"] >= 3, name


def test_every_task_catches_all_errors(definition):
    for name, state in tasks(definition).items():
        catchers = state["Catch"]
        assert [c["ErrorEquals"] for c in catchers] == [["States.ALL"]], name
        target = catchers[0]["Next"]
        if name == "Cleanup":
            assert target == "CleanupFailed"
        elif name == "NotifyFailure":
            assert target == "RunFailed"
        else:
            assert target == "Cleanup", name
            assert catchers[0]["ResultPath"] == "$.error", name


def test_every_task_and_the_state_machine_have_a_timeout(definition, synthesized):
    for name, state in tasks(definition).items():
        assert 0 < state["TimeoutSeconds"] <= 1200, name
    assert definition["TimeoutSeconds"] == 72 * 3600


def test_waits_poll_at_the_interval_the_last_look_chose(definition):
    waits = {name: state for name, state in definition["States"].items() if state["Type"] == "Wait"}
    paths = {
        "WaitForPrepare": "$.jobs.prepare.poll_seconds",
        "WaitForTrain": "$.jobs.train.poll_seconds",
        "WaitForEvaluate": "$.jobs.evaluate.poll_seconds",
        "WaitForServingCheck": "$.jobs.serving_check.poll_seconds",
        "WaitForEndpoint": "$.deployment.poll_seconds",
    }
    assert set(waits) == set(paths)
    for name, state in waits.items():
        assert state == {"Type": "Wait", "SecondsPath": paths[name], "Next": state["Next"]}


# History events of each kind of state (Step Functions' Standard execution history).
EVENTS = {"Task": 5, "Wait": 2, "Choice": 2, "Pass": 2, "Succeed": 2, "Fail": 1}


def loop_events(definition: dict, wait: str) -> int:
    """Events of one look: the Wait, then every state until the loop comes back to it."""
    states, total, name = definition["States"], 0, wait
    while True:
        state = states[name]
        total += EVENTS[state["Type"]]
        name = state["Default"] if state["Type"] == "Choice" else state["Next"]
        if name == wait:
            return total


def test_the_longest_accepted_run_fits_the_execution_history(definition):
    from common.polling import EVENTS_PER_LOOK, HISTORY_LIMIT, caps_for, looks_for, stage_limits
    from common.validation import resolve, schema

    def maximum(*path):
        node = schema()
        for key in path:
            node = node["properties"][key]
        return node["maximum"]

    # The input that keeps every stage alive longest, polled as often as the input allows.
    longest = resolve(
        {
            "preparation": {"max_runtime_hours": maximum("preparation", "max_runtime_hours")},
            "training": {
                "use_spot": True,
                "max_runtime_hours": maximum("training", "max_runtime_hours"),
                "max_wait_hours": maximum("training", "max_wait_hours"),
            },
            "evaluation": {"max_runtime_hours": maximum("evaluation", "max_runtime_hours")},
            "deployment": {
                "model_data_download_timeout_seconds": 3600,
                "container_startup_timeout_seconds": 3600,
                "blue_green": {
                    "maximum_execution_timeout_seconds": maximum(
                        "deployment", "blue_green", "maximum_execution_timeout_seconds"
                    ),
                    "termination_wait_seconds": 3600,
                },
            },
            "orchestration": {"poll_interval_seconds": 1},
        },
        {},
    )
    caps, limits = caps_for(longest), stage_limits(longest)
    waits = {
        "prepare": "WaitForPrepare",
        "train": "WaitForTrain",
        "evaluate": "WaitForEvaluate",
        "serving_check": "WaitForServingCheck",
        "endpoint": "WaitForEndpoint",
    }
    looping = 0
    for stage, wait in waits.items():
        assert loop_events(definition, wait) == EVENTS_PER_LOOK, wait
        looping += EVENTS_PER_LOOK * looks_for(limits[stage], 1, caps[stage])
    # Every other state once, with every retry of every task (a generous bound on the rest).
    tasks_ = [state for state in definition["States"].values() if state["Type"] == "Task"]
    once = sum(EVENTS[state["Type"]] for state in definition["States"].values())
    retries = sum(2 * retry["MaxAttempts"] for state in tasks_ for retry in state.get("Retry", []))
    assert looping + once + retries < HISTORY_LIMIT, (looping, once, retries)
    assert limits["train"] == 672 * 3600


@pytest.mark.parametrize(
    "kind,title",
    [("prepare", "Prepare"), ("train", "Train"), ("evaluate", "Evaluate"), ("serving_check", "ServingCheck")],
)
def test_jobs_are_followed_until_completed(definition, kind, title):
    states = definition["States"]
    assert states[f"Start{title}"]["Next"] == f"WaitFor{title}"
    assert states[f"WaitFor{title}"]["Next"] == f"Describe{title}"
    choice = states[states[f"Describe{title}"]["Next"]]
    assert choice["Type"] == "Choice"
    targets = {rule["StringEquals"]: rule["Next"] for rule in choice["Choices"]}
    assert targets["InProgress"] == f"WaitFor{title}"
    assert targets["Completed"] not in (f"WaitFor{title}", f"Describe{title}")
    assert all(rule["Variable"] == f"$.jobs.{kind}.status" for rule in choice["Choices"])


def test_every_path_ends_in_succeed_or_fail(definition):
    states = definition["States"]
    terminal = {name for name, state in states.items() if state["Type"] in ("Succeed", "Fail")}
    assert {"Succeeded", "RunFailed", "RejectedByGate", "CleanupFailed"} <= terminal
    for name, state in states.items():
        if name in terminal:
            assert not transitions(state)
            continue
        assert "End" not in state, f"{name} ends without Succeed or Fail"
        assert transitions(state), f"{name} has no way out"
        # From every state some terminal state can be reached: no loop without an exit.
        seen, stack = set(), [name]
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(target for _, _, target in transitions(states[current]))
        assert seen & terminal, f"{name} never reaches Succeed or Fail"
    assert reachable(definition) == set(states), "every state is reachable"


def test_deploy_is_reachable_only_through_the_gate(definition):
    gate_passed = definition["States"]["GatePassed"]
    [rule] = gate_passed["Choices"]
    assert rule == {"Variable": "$.gate.passed", "BooleanEquals": True, "Next": rule["Next"]}
    assert gate_passed["Default"] == "NotifyRejected"
    assert definition["States"]["Register"]["Next"] == "GatePassed"
    assert "Deploy" in reachable(definition)
    cut = reachable(definition, without=("GatePassed", rule["Next"]))
    assert not {"Deploy", "WaitForEndpoint", "DescribeEndpoint", "CheckEndpoint"} & cut


def test_a_rejected_model_fails_with_the_gate_reasons(definition):
    states = definition["States"]
    assert states["NotifyRejected"]["Next"] == "DescribeGateFailure"
    assert states["DescribeGateFailure"]["Parameters"] == {"cause.$": "States.JsonToString($.gate.reasons)"}
    assert states["DescribeGateFailure"]["ResultPath"] == "$.gate_failure"
    assert states["RejectedByGate"] == {
        "Type": "Fail",
        "Error": "EvaluationGateFailed",
        "CausePath": "$.gate_failure.cause",
    }


def test_failures_end_with_the_error_and_cause_from_cleanup(definition):
    states = definition["States"]
    assert states["Cleanup"]["Next"] == "NotifyFailure"
    assert states["NotifyFailure"]["Next"] == "RunFailed"
    run_failed = states["RunFailed"]
    assert (run_failed["ErrorPath"], run_failed["CausePath"]) == ("$.cleanup.error", "$.cleanup.cause")
    assert states["CleanupFailed"]["ErrorPath"] == "$.cleanup_failure.Error"


def test_success_runs_through_the_endpoint_check(definition):
    states = definition["States"]
    in_service = states["EndpointInService"]
    assert in_service["Choices"] == [
        {"Variable": "$.deployment.status", "StringEquals": "InService", "Next": "ConfigureScaling"}
    ]
    assert in_service["Default"] == "WaitForEndpoint"
    assert states["ConfigureScaling"]["Next"] == "CheckEndpoint"
    assert states["CheckEndpoint"]["Next"] == "NotifySuccess"
    assert states["NotifySuccess"]["Next"] == "Succeeded"
