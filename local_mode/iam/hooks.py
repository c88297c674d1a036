"""Who makes each request in local mode, and the botocore hook that has IAM decide it.

AWS knows the caller from the request's signature. In local mode the Lambdas run in this process
on boto3's default session, so the caller is tracked instead: `acting_as(principal)` marks the
thread that runs a handler (the Lambda's role session), and requests signed with the Step Functions
interpreter's credentials are the state machine's role. Requests made by anyone else (the local
runner itself, a test setting up data) are the operator's and are not evaluated.

A denied request never reaches moto: the hook answers it with the service's own error, so the
caller sees the `ClientError` AWS would raise.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from botocore.awsrequest import AWSResponse

from local_mode.iam.enforcer import AccessDenied, IamEnforcer
from local_mode.iam.policy import Principal

# moto's Step Functions interpreter signs its service integrations with this access key.
STATE_MACHINE_ACCESS_KEY = "ak"
_PARAMS_KEY = "local_mode_iam_params"
_local = threading.local()


@contextlib.contextmanager
def acting_as(principal: Principal | None) -> Iterator[None]:
    """Requests made by this thread inside the block are `principal`'s."""
    previous = getattr(_local, "principal", None)
    _local.principal = principal
    try:
        yield
    finally:
        _local.principal = previous


def current_principal() -> Principal | None:
    return getattr(_local, "principal", None)


class IamHook:
    """Registered on a boto3 session: records parameters, then decides each request before it is sent."""

    def __init__(self, enforcer: IamEnforcer, state_machine_principal: Principal | None = None):
        self.enforcer = enforcer
        self.state_machine_principal = state_machine_principal

    def install(self, session: Any) -> None:
        events = session.events
        events.register("before-parameter-build", self._remember_params, unique_id="local-mode-iam-params")
        events.register("before-call", self._before_call, unique_id="local-mode-iam-check")

    @staticmethod
    def _remember_params(params: dict, context: dict, **_: Any) -> None:
        context[_PARAMS_KEY] = dict(params)  # shallow: bodies may be open files

    def _principal(self, request_signer: Any) -> Principal | None:
        principal = current_principal()
        if principal is not None:
            return principal
        credentials = getattr(request_signer, "_credentials", None)
        if credentials is not None and getattr(credentials, "access_key", None) == STATE_MACHINE_ACCESS_KEY:
            return self.state_machine_principal
        return None

    def _before_call(
        self, model: Any, params: dict, request_signer: Any = None, context: dict | None = None, **_: Any
    ) -> tuple[AWSResponse, dict] | None:
        principal = self._principal(request_signer)
        if principal is None:
            return None
        service = model.service_model.service_name
        api_params = (context or {}).get(_PARAMS_KEY, {})
        secure = str(params.get("url", "https://")).startswith("https://")
        try:
            self.enforcer.authorize_request(principal, service, model.name, api_params, secure)
        except AccessDenied as denied:
            response = AWSResponse(params.get("url", ""), denied.status, {}, None)
            parsed = {
                "Error": {"Code": denied.code, "Message": str(denied)},
                "ResponseMetadata": {"HTTPStatusCode": denied.status},
            }
            return response, parsed
        return None
