"""The decision IAM makes for a same-account request.

1. An explicit `Deny` in any applicable policy (identity or resource) wins.
2. KMS keys: the key policy decides. A statement that names the principal allows by itself; one
   that names the account (`arn:aws:iam::<account>:root`) lets identity policies decide.
3. Everything else: an `Allow` in an identity policy, or a resource policy statement that names the
   principal, allows.
4. Otherwise the request is denied implicitly.

Denials carry AWS's own wording ("User: ... is not authorized to perform: ... on resource: ...
because no identity-based policy allows the ... action").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from local_mode.iam.policy import Request, Statement, applies


@dataclass(frozen=True)
class Decision:
    allowed: bool
    statement: str | None  # the statement that allowed or explicitly denied, for the report
    message: str  # AWS's wording for a denial; "allowed" otherwise

    @property
    def explicit_deny(self) -> bool:
        return not self.allowed and self.statement is not None


def _denied(request: Request, because: str) -> str:
    return (
        f"User: {request.principal.arn} is not authorized to perform: {request.action} on resource: "
        f"{request.resource} {because}"
    )


class PolicyEvaluator:
    """Identity policies by role ARN, resource policies by the ARN of the resource that owns them."""

    def __init__(
        self,
        identity_policies: dict[str, list[Statement]],
        resource_policies: dict[str, list[Statement]],
        policy_owner: Callable[[str], str | None],
    ):
        self.identity_policies = identity_policies
        self.resource_policies = resource_policies
        self.policy_owner = policy_owner

    def decide(self, request: Request) -> Decision:
        role = request.principal.role_arn
        owner = self.policy_owner(request.resource)
        identity_hits = _hits(self.identity_policies.get(role, []) if role else [], request, identity=True)
        resource_hits = _hits(self.resource_policies.get(owner, []) if owner else [], request, identity=False)
        denial = _explicit_deny(request, identity_hits, "an identity-based policy") or _explicit_deny(
            request, resource_hits, "a resource-based policy"
        )
        if denial is not None:
            return denial
        allows = _Allows.among(identity_hits, resource_hits)
        if request.action.lower().startswith("kms:") and owner is not None:
            return _key_policy_decision(request, allows)
        return _default_decision(request, allows)


Hit = tuple[Statement, str]  # a statement that applies, and how its principal matched ("direct", "account", ...)


def _hits(statements: list[Statement], request: Request, identity: bool) -> list[Hit]:
    hits = [(s, applies(s, request, identity=identity)) for s in statements]
    return [(s, kind) for s, kind in hits if kind]


def _explicit_deny(request: Request, hits: list[Hit], where: str) -> Decision | None:
    for statement, _ in hits:
        if statement.effect == "Deny":
            return Decision(
                False, statement.label, _denied(request, f"with an explicit deny in {where}: {statement.label}")
            )
    return None


@dataclass(frozen=True)
class _Allows:
    """The first allowing statement of each kind; which kinds are present decides the outcome."""

    identity: Statement | None
    direct: Statement | None
    account: Statement | None

    @classmethod
    def among(cls, identity_hits: list[Hit], resource_hits: list[Hit]) -> _Allows:
        return cls(
            next((s for s, _ in identity_hits if s.effect == "Allow"), None),
            next((s for s, kind in resource_hits if s.effect == "Allow" and kind == "direct"), None),
            next((s for s, kind in resource_hits if s.effect == "Allow" and kind == "account"), None),
        )


def _allowed(statement: Statement) -> Decision:
    return Decision(True, statement.label, "allowed")


def _no_policy_allows(request: Request, kind: str) -> Decision:
    return Decision(False, None, _denied(request, f"because no {kind}-based policy allows the {request.action} action"))


def _key_policy_decision(request: Request, allows: _Allows) -> Decision:
    """The key policy decides: it allows by itself, or delegates to identity policies by naming the account."""
    if allows.direct is not None:
        return _allowed(allows.direct)
    if allows.account is not None and allows.identity is not None:
        return _allowed(allows.identity)
    if allows.account is None:
        return _no_policy_allows(request, "resource")
    return _no_policy_allows(request, "identity")


def _default_decision(request: Request, allows: _Allows) -> Decision:
    if allows.identity is not None:
        return _allowed(allows.identity)
    if allows.direct is not None:
        return _allowed(allows.direct)
    return _no_policy_allows(request, "identity")
