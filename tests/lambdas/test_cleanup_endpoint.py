"""Cleanup's endpoint decisions: what it deletes, keeps, returns or restores, and the calls it makes, in order.

The collaborators are replaced by a recorder, so each case pins the exact sequence of calls (and
so of AWS requests) and the exact notes for one state of the endpoint.
"""

import json
from pathlib import Path

import cleanup
import pytest

NAMES = {"endpoint": "ep", "endpoint_config": "ep-cfg-r1", "model": "ep-model-r1"}
CASES = json.loads(Path(__file__).with_name("cleanup_endpoint_cases.json").read_text())


class Recorder:
    """Stands in for a module: every call is logged, and answered from `answers` (default None)."""

    def __init__(self, module: str, calls: list, answers: dict):
        self._module, self._calls, self._answers = module, calls, answers

    def __getattr__(self, name: str):
        def call(*args, **kwargs):
            self._calls.append([f"{self._module}.{name}", list(args), kwargs])
            answer = self._answers.get(name)
            return answer(*args, **kwargs) if callable(answer) else answer

        return call


def run_case(monkeypatch, case: dict) -> dict:
    calls: list = []
    endpoint = case["endpoint"]
    answers = {
        "endpoints": {
            "describe_endpoint": endpoint,
            "tags_of": {"tag": "t"},
            "owned_by": case.get("owned", True),
            "created_by": case.get("created_by", False),
            "describe_endpoint_config": lambda name: {"name": name} if name in case.get("configs", []) else None,
            "describe_model": lambda name: {"name": name} if name in case.get("models", []) else None,
        },
        "scaling": {
            "deregister": case.get("deregistered"),
            "resource_id": lambda name: f"endpoint/{name}/variant/AllTraffic",
        },
        "alarms": {"delete_alarms": case.get("alarms", [])},
    }
    for module, module_answers in answers.items():
        monkeypatch.setattr(cleanup, module, Recorder(module, calls, module_answers))
    sagemaker = Recorder("sagemaker", calls, {})
    monkeypatch.setattr(cleanup, "aws", Recorder("aws", calls, {"client": sagemaker}))
    deletes = case.get("deletes", {})
    monkeypatch.setattr(
        cleanup,
        "_delete",
        lambda call, **kwargs: calls.append(["_delete", [call], kwargs]) or deletes.get(call, True),
    )
    deleted, notes = cleanup._remove_endpoint_resources(NAMES, "r1", case.get("deployment", {}), "stack-tag")
    return {"deleted": deleted, "notes": notes, "calls": calls}


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_endpoint_resources(monkeypatch, case):
    assert run_case(monkeypatch, case["given"]) == case["expected"]
