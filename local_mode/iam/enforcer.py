"""One emulated account's IAM: every check is decided, recorded and, when denied, raised as AWS does.

`authorize_request` maps an API request to its authorizations (`requests`) and decides each one
(`evaluator`); `authorize` decides checks that a service makes on a principal's behalf (SageMaker
reading a job's channels as the execution role, CloudWatch Logs using the key of a log group).
Every decision lands in `records`, for the run's table and the summary's counts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from local_mode.iam.evaluator import Decision, PolicyEvaluator
from local_mode.iam.policy import Principal, Request
from local_mode.iam.requests import AccountView, Authorization, authorizations
from local_mode.iam.store import PolicyStore, policy_owner

# The error each service answers a denial with: (code, HTTP status).
ERROR_CODES = {
    "s3": ("AccessDenied", 403),
    "sns": ("AuthorizationError", 403),
    "cloudwatch": ("AccessDenied", 403),
    "iam": ("AccessDenied", 403),
    "sts": ("AccessDenied", 403),
}
DEFAULT_ERROR = ("AccessDeniedException", 400)


class AccessDenied(Exception):
    """A request AWS would refuse; `code` and `status` are the service's own."""

    def __init__(self, service: str, message: str):
        self.service = service
        self.code, self.status = ERROR_CODES.get(service, DEFAULT_ERROR)
        super().__init__(message)


@dataclass(frozen=True)
class CheckRecord:
    principal: str
    action: str
    resource: str
    allowed: bool
    statement: str | None
    operation: str  # the API call (or the service activity) that needed the check
    why: str


class IamEnforcer:
    def __init__(self, store: PolicyStore, view: AccountView):
        self.store = store
        self.view = view
        self.evaluator = PolicyEvaluator(store.identity, store.resources, policy_owner)
        self.records: list[CheckRecord] = []
        self._lock = threading.Lock()

    def decide(self, principal: Principal, check: Authorization, operation: str) -> Decision:
        if principal.role_arn:
            self.store.check_modeled(principal.role_arn)
        context = {"aws:PrincipalAccount": principal.account, **check.context}
        if principal.role_arn:
            context.setdefault("aws:PrincipalArn", principal.role_arn)
            context.setdefault("aws:PrincipalType", "AssumedRole")
        decision = self.evaluator.decide(Request(principal, check.action, check.resource, context))
        with self._lock:
            self.records.append(
                CheckRecord(
                    principal.label,
                    check.action,
                    check.resource,
                    decision.allowed,
                    decision.statement,
                    operation,
                    check.why,
                )
            )
        return decision

    def authorize(
        self, principal: Principal, checks: Iterable[Authorization], operation: str, service: str = "sagemaker"
    ) -> None:
        """Decide every check; raise AccessDenied for the first denial (all are recorded up to it)."""
        for check in checks:
            decision = self.decide(principal, check, operation)
            if not decision.allowed:
                raise AccessDenied(service, decision.message)

    def authorize_request(
        self, principal: Principal, service: str, operation: str, params: dict[str, Any], secure_transport: bool = True
    ) -> None:
        checks = authorizations(service, operation, params, self.view, secure_transport)
        self.authorize(principal, checks, f"{service}:{operation}", service)

    # ---- reporting ------------------------------------------------------------------------------
    def summary(self, since: int = 0) -> dict[str, Any]:
        """Counts of the checks from record `since` on (a run's own, when the account ran several)."""
        with self._lock:
            records = list(self.records[since:])
        by_principal: dict[str, dict[str, int]] = {}
        for record in records:
            counts = by_principal.setdefault(record.principal, {"allowed": 0, "denied": 0})
            counts["allowed" if record.allowed else "denied"] += 1
        return {
            "checks": len(records),
            "allowed": sum(r.allowed for r in records),
            "denied": sum(not r.allowed for r in records),
            "by_principal": dict(sorted(by_principal.items())),
            "denials": [asdict(r) for r in records if not r.allowed],
        }

    def table(self, since: int = 0) -> str:
        """Every check as a fixed-width table: principal, action, resource, decision, statement."""
        with self._lock:
            records = list(self.records[since:])
        rows = [("PRINCIPAL", "ACTION", "RESOURCE", "DECISION", "STATEMENT")]
        rows += [
            (r.principal, r.action, r.resource, "allow" if r.allowed else "DENY", r.statement or "-") for r in records
        ]
        widths = [min(max(len(row[i]) for row in rows), limit) for i, limit in enumerate((48, 50, 90, 8, 70))]
        lines = []
        for row in rows:
            cells = [
                (cell if len(cell) <= width else cell[: width - 1] + "…").ljust(width)
                for cell, width in zip(row, widths, strict=True)
            ]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)
