"""IAM `Condition` blocks, evaluated as IAM evaluates them.

Operators: the String, Numeric, Bool, Null and Arn families, their `...IfExists` forms, and the
`ForAnyValue:` / `ForAllValues:` set qualifiers for multivalued keys. A key the emulation cannot
supply is never treated as absent: evaluating a condition on it raises `UnmodeledConditionKey`, so a
policy that depends on something local mode does not see fails the run loudly instead of passing.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from typing import Any

# Condition keys local mode supplies (or knows to be absent) for the requests it evaluates.
MODELED_KEYS = (
    "aws:requesttag/*",
    "aws:resourcetag/*",
    "aws:tagkeys",
    "aws:securetransport",
    "aws:principalarn",
    "aws:principalaccount",
    "aws:principaltype",
    "aws:sourceaccount",
    "aws:sourcearn",
    "iam:passedtoservice",
    "s3:prefix",
    "s3:delimiter",
    "kms:viaservice",
    "kms:calleraccount",
    "kms:grantisforawsresource",
    "kms:encryptioncontext:*",
    "cloudwatch:namespace",
    "sagemaker:resourcetag/*",
    "application-autoscaling:service-namespace",
    "application-autoscaling:scalable-dimension",
    "iam:awsservicename",
    "servicequotas:service",
    "states:statemachinearn",
)
_VARIABLE = re.compile(r"\$\{(?![*?$]\})[^}]+\}")


class UnmodeledConditionKey(RuntimeError):
    """A policy condition uses a key local mode does not model; the check cannot be decided."""


class UnsupportedConditionOperator(RuntimeError):
    """A policy uses a condition operator local mode does not evaluate."""


def is_modeled(key: str) -> bool:
    lowered = key.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern) for pattern in MODELED_KEYS)


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _glob(pattern: str, value: str) -> bool:
    """IAM's `*` and `?` wildcards; `${*}`, `${?}` and `${$}` stand for the literal characters."""
    if _VARIABLE.search(pattern):
        raise UnmodeledConditionKey(f"policy variable in {pattern!r}: local mode does not substitute policy variables")
    escaped = pattern.replace("${*}", "\0").replace("${?}", "\1").replace("${$}", "$")
    regex = "".join(
        ".*"
        if char == "*"
        else "."
        if char == "?"
        else "\\*"
        if char == "\0"
        else "\\?"
        if char == "\1"
        else re.escape(char)
        for char in escaped
    )
    return re.fullmatch(regex, value, re.DOTALL) is not None


def arn_like(pattern: str, arn: str) -> bool:
    """ArnLike: the six colon-separated parts are matched one by one, the last may hold colons."""
    pattern_parts, arn_parts = pattern.split(":", 5), arn.split(":", 5)
    if len(pattern_parts) != 6 or len(arn_parts) != 6:
        return _glob(pattern, arn)
    return all(_glob(p, a) for p, a in zip(pattern_parts, arn_parts, strict=True))


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _compare(family: str, operator: str, policy_value: Any, context_value: Any) -> bool:
    """One context value against one policy value, with the operator's positive sense."""
    if family == "String":
        left, right = _text(context_value), _text(policy_value)
        if operator in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
            return left.lower() == right.lower()
        if operator in ("StringLike", "StringNotLike"):
            return _glob(right, left)
        return left == right
    if family == "Arn":
        if operator in ("ArnLike", "ArnNotLike"):
            return arn_like(_text(policy_value), _text(context_value))
        return _text(context_value) == _text(policy_value)
    if family == "Numeric":
        left, right = _number(context_value), _number(policy_value)
        if left is None or right is None:
            return False
        return {
            "NumericEquals": left == right,
            "NumericNotEquals": left == right,
            "NumericLessThan": left < right,
            "NumericLessThanEquals": left <= right,
            "NumericGreaterThan": left > right,
            "NumericGreaterThanEquals": left >= right,
        }[operator]
    if family == "Bool":
        return _text(context_value).lower() == _text(policy_value).lower()
    raise UnsupportedConditionOperator(operator)


_FAMILIES = {
    "StringEquals": "String",
    "StringNotEquals": "String",
    "StringEqualsIgnoreCase": "String",
    "StringNotEqualsIgnoreCase": "String",
    "StringLike": "String",
    "StringNotLike": "String",
    "ArnEquals": "Arn",
    "ArnLike": "Arn",
    "ArnNotEquals": "Arn",
    "ArnNotLike": "Arn",
    "NumericEquals": "Numeric",
    "NumericNotEquals": "Numeric",
    "NumericLessThan": "Numeric",
    "NumericLessThanEquals": "Numeric",
    "NumericGreaterThan": "Numeric",
    "NumericGreaterThanEquals": "Numeric",
    "Bool": "Bool",
}
_NEGATED = {
    "StringNotEquals",
    "StringNotEqualsIgnoreCase",
    "StringNotLike",
    "ArnNotEquals",
    "ArnNotLike",
    "NumericNotEquals",
}


def _lookup(context: dict[str, Any], key: str) -> tuple[bool, list]:
    """(present, values) for a key; keys are case-insensitive."""
    lowered = key.lower()
    for name, value in context.items():
        if name.lower() == lowered:
            return True, _as_list(value)
    return False, []


def evaluate_operator(operator_name: str, key: str, policy_values: Iterable[Any], context: dict[str, Any]) -> bool:
    """One `"Operator": {"key": values}` entry of a Condition block."""
    if not is_modeled(key):
        raise UnmodeledConditionKey(
            f"condition {operator_name} on {key!r}: local mode does not model this condition key, so it cannot "
            "decide the check (a key it does not see is never treated as absent)"
        )
    qualifier, _, operator = operator_name.rpartition(":")
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    policy_values = _as_list(policy_values)
    present, values = _lookup(context, key)
    if operator == "Null":
        wanted_absent = any(_text(value).lower() == "true" for value in policy_values)
        return (not present) if wanted_absent else present
    family = _FAMILIES.get(operator)
    if family is None or qualifier not in ("", "ForAnyValue", "ForAllValues"):
        raise UnsupportedConditionOperator(
            f"condition operator {operator_name!r} is not evaluated by local mode; supported: "
            f"{', '.join(sorted(_FAMILIES))}, Null, their IfExists forms and ForAnyValue:/ForAllValues:"
        )
    negated = operator in _NEGATED

    def matches(value: Any) -> bool:
        hit = any(_compare(family, operator, policy_value, value) for policy_value in policy_values)
        return not hit if negated else hit

    if not present:
        if if_exists or qualifier == "ForAllValues":
            return True
        return negated and qualifier == ""
    if qualifier == "ForAllValues":
        return all(matches(value) for value in values)
    # ForAnyValue, and single-valued keys (one value) alike: any value that satisfies the operator.
    return any(matches(value) for value in values)


def evaluate_block(block: dict[str, dict[str, Any]] | None, context: dict[str, Any]) -> bool:
    """A whole Condition block: every operator, and every key within it, must hold."""
    for operator_name, entries in (block or {}).items():
        for key, values in entries.items():
            if not evaluate_operator(operator_name, key, values, context):
                return False
    return True
