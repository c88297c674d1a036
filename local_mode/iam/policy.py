"""Policy documents as statements that can be matched against one request.

A statement applies to a request when its principal (resource policies only), action and resource
match and its conditions hold. Actions match case-insensitively with IAM's wildcards; resources match
case-sensitively; `NotAction`, `NotResource` and `NotPrincipal` invert their element.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from local_mode.iam.conditions import _glob, evaluate_block


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


@dataclass(frozen=True)
class Principal:
    """Who makes a request: a role session, a service, or (for checks of the deployer) an account."""

    arn: str  # arn:aws:sts::<account>:assumed-role/<role>/<session>, or the service name
    account: str
    role_arn: str | None = None  # arn:aws:iam::<account>:role/<role> for a role session
    service: str | None = None  # e.g. logs.us-east-1.amazonaws.com for a service principal

    @classmethod
    def role_session(cls, role_arn: str, session: str) -> Principal:
        partition, account = role_arn.split(":")[1], role_arn.split(":")[4]
        role_name = role_arn.rsplit("/", 1)[-1]
        return cls(f"arn:{partition}:sts::{account}:assumed-role/{role_name}/{session}", account, role_arn=role_arn)

    @classmethod
    def service_principal(cls, service: str, account: str) -> Principal:
        return cls(service, account, service=service)

    @property
    def label(self) -> str:
        """A short name for reports: the role name, or the service."""
        if self.role_arn:
            return self.role_arn.rsplit("/", 1)[-1]
        return self.service or self.arn


@dataclass(frozen=True)
class Request:
    principal: Principal
    action: str
    resource: str
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Statement:
    effect: str
    source: str  # where it comes from: "<policy logical id>" or "bucket policy of X"
    sid: str = ""
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] = ()
    principals: dict[str, tuple[str, ...]] | None = None  # resource policies only; "*" as {"*": ("*",)}
    not_principals: dict[str, tuple[str, ...]] | None = None
    conditions: dict[str, dict[str, Any]] | None = None

    @property
    def label(self) -> str:
        return f"{self.source}" + (f" [{self.sid}]" if self.sid else "")

    def matches_action(self, action: str) -> bool:
        lowered = action.lower()
        if self.actions:
            return any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in self.actions)
        return not any(fnmatch.fnmatchcase(lowered, pattern.lower()) for pattern in self.not_actions)

    def matches_resource(self, resource: str) -> bool:
        if self.resources:
            return any(_resource_glob(pattern, resource) for pattern in self.resources)
        if self.not_resources:
            return not any(_resource_glob(pattern, resource) for pattern in self.not_resources)
        return False

    def principal_match(self, principal: Principal) -> str | None:
        """'direct' when the statement names this principal (or everyone), 'account' when it names the
        principal's account (which delegates the decision to IAM policies), None when it does not apply."""
        if self.not_principals is not None:
            return None if _principal_kind(self.not_principals, principal) else "direct"
        if self.principals is None:
            return None
        return _principal_kind(self.principals, principal)


def _resource_glob(pattern: str, resource: str) -> bool:
    if pattern == "*":
        return True
    return _glob(pattern, resource)


def _principal_kind(principals: dict[str, tuple[str, ...]], principal: Principal) -> str | None:
    for kind, values in principals.items():
        for value in values:
            if kind == "*" or value == "*":
                return "direct"
            if kind == "Service" and principal.service and value.lower() == principal.service.lower():
                return "direct"
            if kind == "AWS" and not principal.service:
                if value == principal.account or value.endswith(f":iam::{principal.account}:root"):
                    return "account"
                if value in (principal.role_arn, principal.arn):
                    return "direct"
    return None


def parse_document(document: dict[str, Any], source: str, resource_policy: bool = False) -> list[Statement]:
    """Statements of one policy document, with its elements normalized to tuples."""
    statements = []
    for raw in _as_list(document.get("Statement")):
        principals = None if not resource_policy else _principals(raw.get("Principal"))
        not_principals = _principals(raw.get("NotPrincipal")) if "NotPrincipal" in raw else None
        statements.append(
            Statement(
                effect=raw.get("Effect", "Deny"),
                source=source,
                sid=raw.get("Sid", ""),
                actions=tuple(_as_list(raw.get("Action"))),
                not_actions=tuple(_as_list(raw.get("NotAction"))),
                resources=tuple(_as_list(raw.get("Resource"))),
                not_resources=tuple(_as_list(raw.get("NotResource"))),
                principals=principals,
                not_principals=not_principals,
                conditions=raw.get("Condition"),
            )
        )
    return statements


def _principals(value: Any) -> dict[str, tuple[str, ...]] | None:
    if value is None:
        return None
    if value == "*":
        return {"*": ("*",)}
    return {kind: tuple(_as_list(values)) for kind, values in value.items()}


def applies(statement: Statement, request: Request, identity: bool) -> str | None:
    """How the statement applies to the request ('direct', 'account'), or None.

    Identity-policy statements need no principal; resource-policy statements must name it. Conditions
    are evaluated last, only for statements that otherwise match (as IAM does).
    """
    if identity:
        kind = "direct"
    else:
        kind = statement.principal_match(request.principal)
        if kind is None:
            return None
    if not statement.matches_action(request.action) or not statement.matches_resource(request.resource):
        return None
    if not evaluate_block(statement.conditions, request.context):
        return None
    return kind
