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
        identity = self.identity_policies.get(role, []) if role else []
        owner = self.policy_owner(request.resource)
        resource_statements = self.resource_policies.get(owner, []) if owner else []
        identity_hits = [(s, applies(s, request, identity=True)) for s in identity]
        resource_hits = [(s, applies(s, request, identity=False)) for s in resource_statements]
        identity_hits = [(s, kind) for s, kind in identity_hits if kind]
        resource_hits = [(s, kind) for s, kind in resource_hits if kind]

        for statement, _ in identity_hits:
            if statement.effect == "Deny":
                return Decision(
                    False,
                    statement.label,
                    _denied(request, f"with an explicit deny in an identity-based policy: {statement.label}"),
                )
        for statement, _ in resource_hits:
            if statement.effect == "Deny":
                return Decision(
                    False,
                    statement.label,
                    _denied(request, f"with an explicit deny in a resource-based policy: {statement.label}"),
                )

        identity_allow = next((s for s, _ in identity_hits if s.effect == "Allow"), None)
        direct_allow = next((s for s, kind in resource_hits if s.effect == "Allow" and kind == "direct"), None)
        account_allow = next((s for s, kind in resource_hits if s.effect == "Allow" and kind == "account"), None)

        if request.action.lower().startswith("kms:") and owner is not None:
            if direct_allow is not None:
                return Decision(True, direct_allow.label, "allowed")
            if account_allow is not None and identity_allow is not None:
                return Decision(True, identity_allow.label, "allowed")
            if account_allow is None:
                return Decision(
                    False,
                    None,
                    _denied(request, f"because no resource-based policy allows the {request.action} action"),
                )
            return Decision(
                False, None, _denied(request, f"because no identity-based policy allows the {request.action} action")
            )
        if identity_allow is not None:
            return Decision(True, identity_allow.label, "allowed")
        if direct_allow is not None:
            return Decision(True, direct_allow.label, "allowed")
        return Decision(
            False, None, _denied(request, f"because no identity-based policy allows the {request.action} action")
        )
