"""IAM for the emulated account: the synthesized policies, evaluated on every request local mode sees.

`AccountIam` is what the rest of local mode uses: it is built from the template once the stack is
deployed, installs its hook on boto3's default session, and gives the identities the requests are
made as (a Lambda's role session, the state machine's role, the SageMaker execution role).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from local_mode.iam import service_checks
from local_mode.iam.enforcer import AccessDenied, CheckRecord, IamEnforcer
from local_mode.iam.hooks import IamHook, acting_as, current_principal
from local_mode.iam.moto_view import MotoAccountView
from local_mode.iam.policy import Principal
from local_mode.iam.store import PolicyStore, build_store

__all__ = ["AccessDenied", "AccountIam", "CheckRecord", "Principal", "acting_as", "current_principal"]


class AccountIam:
    def __init__(self, template: dict[str, Any], stack: Any):
        self.stack = stack
        self.store: PolicyStore = build_store(template, stack.resolver, stack.physical)
        self.view = MotoAccountView(stack.account, stack.region)
        self.enforcer = IamEnforcer(self.store, self.view)
        self.state_machine = (
            Principal.role_session(stack.state_machine_role_arn, "StepFunctions")
            if stack.state_machine_role_arn
            else None
        )
        self.hook = IamHook(self.enforcer, self.state_machine)
        self._keys_checked: set[str] = set()
        self._log_groups = self._encrypted_log_groups(template)
        self._functions = {info.name: info for info in stack.functions.values()}

    def install(self, session: Any) -> None:
        self.hook.install(session)

    # ---- identities -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def lambda_identity(self, function: Any) -> Iterator[None]:
        """Run a handler as its function's role; afterwards, the runtime's own logs and traces."""
        principal = Principal.role_session(function.role, function.function_name)
        try:
            with acting_as(principal):
                yield
        finally:
            info = self._functions.get(function.function_name)
            log_group = info.log_group if info else None
            self.record(
                principal,
                service_checks.lambda_runtime(
                    self.view, function.function_name, log_group, bool(info and info.tracing)
                ),
                "lambda runtime",
            )
            if log_group in self._log_groups:
                self.logs_encryption(log_group)

    def environment_denial(self, function: Any) -> str | None:
        """Why the function's role may not decrypt its environment, or None when it may.

        Lambda decrypts an environment under a customer key as the function's role, through Lambda,
        with the function's ARN as encryption context; an invocation it cannot decrypt for fails.
        """
        info = self._functions.get(function.function_name)
        if info is None or not info.kms_key_arn:
            return None  # Lambda's own key (aws/lambda), which Lambda grants the role itself
        principal = Principal.role_session(function.role, function.function_name)
        check = service_checks.lambda_environment(self.view, info.kms_key_arn, function.function_arn)
        decision = self.enforcer.decide(principal, check, "lambda environment")
        return None if decision.allowed else decision.message

    def dead_letter_denial(self, function_name: str, queue_arn: str) -> str | None:
        """Why Lambda may not send the function's failed event to its dead-letter queue, or None.

        Recorded, not raised: in AWS the event is then dropped (the DeadLetterErrors metric counts it).
        """
        info = self._functions[function_name]
        principal = Principal.role_session(info.role_arn, function_name)
        checks = service_checks.dead_letter_delivery(self.view, queue_arn, self.view.queue_kms_key(queue_arn))
        for check in checks:
            decision = self.enforcer.decide(principal, check, "lambda dead-letter queue")
            if not decision.allowed:
                return decision.message
        return None

    def sagemaker(self, role_arn: str, session: str = "SageMaker") -> Principal:
        return Principal.role_session(role_arn, session)

    def logs_service(self) -> Principal:
        return Principal.service_principal(f"logs.{self.view.region}.amazonaws.com", self.view.account)

    # ---- checks services make ------------------------------------------------------------------
    def record(self, principal: Principal, checks: list, operation: str) -> None:
        """Decide and record, without raising: AWS drops what these checks would deny."""
        for check in checks:
            self.enforcer.decide(principal, check, operation)

    def authorize(self, principal: Principal, checks: list, operation: str, service: str = "sagemaker") -> None:
        self.enforcer.authorize(principal, checks, operation, service)

    def logs_encryption(self, log_group: str) -> None:
        key = self._log_groups.get(log_group)
        if key and log_group not in self._keys_checked:
            self._keys_checked.add(log_group)
            self.record(
                self.logs_service(),
                service_checks.log_group_encryption(self.view, log_group, key),
                "cloudwatch logs encryption",
            )

    def execution_started(self) -> None:
        if self.state_machine is not None and self.stack.state_machine_tracing:
            self.record(self.state_machine, service_checks.execution_tracing(), "step functions tracing")

    # ---- IAM's own API ---------------------------------------------------------------------------
    def simulate(self, role_arn: str, actions: list[str], resources: list[str], context: dict) -> list[dict]:
        """SimulatePrincipalPolicy: the role's identity policies only, as IAM simulates without ResourcePolicy."""
        from local_mode.iam.evaluator import PolicyEvaluator
        from local_mode.iam.policy import Request

        evaluator = PolicyEvaluator(self.store.identity, {}, lambda resource: None)
        principal = Principal.role_session(role_arn, "simulation")
        results = []
        for action in actions:
            for resource in resources:
                decision = evaluator.decide(
                    Request(
                        principal,
                        action,
                        resource,
                        {
                            "aws:PrincipalArn": role_arn,
                            "aws:PrincipalAccount": principal.account,
                            "aws:SecureTransport": True,
                            **context,
                        },
                    )
                )
                verdict = (
                    "allowed" if decision.allowed else ("explicitDeny" if decision.explicit_deny else "implicitDeny")
                )
                results.append(
                    {
                        "EvalActionName": action,
                        "EvalResourceName": resource,
                        "EvalDecision": verdict,
                        "MatchedStatements": [{"SourcePolicyId": decision.statement}] if decision.statement else [],
                        "MissingContextValues": [],
                    }
                )
        return results

    # ---- reporting ------------------------------------------------------------------------------
    @property
    def checks_so_far(self) -> int:
        return len(self.enforcer.records)

    def summary(self, since: int = 0) -> dict[str, Any]:
        return self.enforcer.summary(since)

    def table(self, since: int = 0) -> str:
        return self.enforcer.table(since)

    def _encrypted_log_groups(self, template: dict[str, Any]) -> dict[str, str]:
        groups = {}
        for logical_id, resource in (template.get("Resources") or {}).items():
            if resource["Type"] != "AWS::Logs::LogGroup":
                continue
            properties = self.stack.resolver.resolve(resource.get("Properties") or {}, f"Resources.{logical_id}")
            if properties.get("KmsKeyId"):
                groups[self.stack.physical[logical_id].name] = properties["KmsKeyId"]
        return groups
