"""Read the state machine definition back out of a synthesized template.

The template holds the definition as an `Fn::Join` of JSON text and tokens (function ARNs);
tokens become `${LogicalId.Attribute}` placeholders, which keeps the JSON parseable and stable.
"""

from __future__ import annotations

import json
from typing import Any

STATE_MACHINE_TYPE = "AWS::StepFunctions::StateMachine"


def render_token(value: Any) -> str:
    """A CloudFormation value as text: strings as they are, intrinsics as `${...}` placeholders."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((name, argument),) = value.items()
        if name == "Fn::Join":
            separator, parts = argument
            return separator.join(render_token(part) for part in parts)
        if name == "Fn::GetAtt":
            return "${" + ".".join(argument) + "}"
        if name == "Ref":
            return "${" + argument + "}"
    raise ValueError(f"cannot render {value!r}: only Fn::Join, Fn::GetAtt and Ref are expected here")


def state_machine_definition(template: dict[str, Any]) -> dict[str, Any]:
    """The parsed definition of the template's only state machine."""
    machines = [resource for resource in template["Resources"].values() if resource["Type"] == STATE_MACHINE_TYPE]
    if len(machines) != 1:
        raise ValueError(f"expected one {STATE_MACHINE_TYPE} in the template, found {len(machines)}")
    return json.loads(render_token(machines[0]["Properties"]["DefinitionString"]))


def transitions(state: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(kind, label, target) for every way out of a state: next, choice, default, catch."""
    edges = []
    for rule in state.get("Choices", []):
        edges.append(("choice", describe_condition(rule), rule["Next"]))
    if "Default" in state:
        edges.append(("default", "otherwise", state["Default"]))
    if "Next" in state:
        edges.append(("next", "", state["Next"]))
    for catcher in state.get("Catch", []):
        edges.append(("catch", " / ".join(catcher["ErrorEquals"]), catcher["Next"]))
    return edges


def describe_condition(rule: dict[str, Any]) -> str:
    """A Choice rule as short text, e.g. `$.gate.passed == true`."""
    if "And" in rule:
        return " and ".join(describe_condition(part) for part in rule["And"])
    if "Or" in rule:
        return " or ".join(describe_condition(part) for part in rule["Or"])
    if "Not" in rule:
        return "not " + describe_condition(rule["Not"])
    variable = rule["Variable"]
    for operator, value in rule.items():
        if operator in ("Variable", "Next"):
            continue
        if operator == "IsPresent":
            return f"{variable} is present" if value else f"{variable} is absent"
        if operator.endswith("Equals"):
            return f"{variable} == {json.dumps(value)}"
        return f"{variable} {operator} {json.dumps(value)}"
    raise ValueError(f"Choice rule without a comparison: {rule!r}")
