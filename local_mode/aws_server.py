"""The emulated account over HTTP, for what runs outside this process: job containers and the CLI.

moto's own server runs on a free port of 127.0.0.1 and shares the state of the in-process
emulation. A job gets credentials of its own (as SageMaker hands a container its execution role's),
and every request signed with them is evaluated by IAM as that role before moto sees it; a request
IAM denies is answered with the service's AccessDenied error. Requests signed with any other key are
the operator's (the CLI, a test) and are not evaluated, as in-process.

Job requests are understood for the JSON (`X-Amz-Target`) and query (`Action=`) protocols, which the
jobs' own calls use (Secrets Manager, STS); any other request of a job is refused with a message
saying so, never let through unchecked.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from werkzeug.serving import make_server

from local_mode.iam.enforcer import DEFAULT_ERROR, ERROR_CODES, AccessDenied

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/[^/]+/([^/]+)/aws4_request")
# SigV4 signing names whose boto3 client name differs.
SERVICE_NAMES = {
    "monitoring": "cloudwatch",
    "states": "stepfunctions",
    "servicequotas": "service-quotas",
    "application-autoscaling": "application-autoscaling",
}


class IamMiddleware:
    """WSGI: decide a job's request with IAM before moto handles it."""

    def __init__(self, app: Callable, authorize: Callable[[Any, str, str, dict], None], principals: dict[str, Any]):
        self.app = app
        self.authorize = authorize
        self.principals = principals

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
        principal = self.principals.get(match.group(1)) if match else None
        if principal is None:
            return self.app(environ, start_response)
        service = SERVICE_NAMES.get(match.group(2), match.group(2))
        body = _read_body(environ)
        operation, params = _operation(environ, body)
        if operation is None:
            return _deny(
                start_response,
                service,
                f"local mode evaluates a job's requests to {service} only for "
                "the JSON and query protocols; this request has neither",
            )
        try:
            self.authorize(principal, service, operation, params)
        except AccessDenied as denied:
            return _deny(start_response, service, str(denied))
        return self.app(environ, start_response)


def _read_body(environ: dict) -> bytes:
    """Read the body and put it back, so moto reads it too."""
    import io

    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _operation(environ: dict, body: bytes) -> tuple[str | None, dict]:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        try:
            params = json.loads(body or b"{}")
        except json.JSONDecodeError:
            params = {}
        return target.rsplit(".", 1)[-1], params if isinstance(params, dict) else {}
    form = parse_qs(body.decode("utf-8", "replace")) if body else parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in form:
        return form["Action"][0], {key: values[0] for key, values in form.items() if key not in ("Action", "Version")}
    return None, {}


def _deny(start_response: Callable, service: str, message: str) -> list[bytes]:
    code, status = ERROR_CODES.get(service, DEFAULT_ERROR)
    payload = json.dumps({"__type": code, "message": message, "Message": message}).encode()
    start_response(
        f"{status} Forbidden" if status == 403 else f"{status} Bad Request",
        [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("x-amzn-ErrorType", code),
            ("Content-Length", str(len(payload))),
        ],
    )
    return [payload]


class LocalAwsServer:
    """moto's server for the emulated account, with IAM for the credentials it hands out."""

    def __init__(self, authorize: Callable[[Any, str, str, dict], None] | None = None, host: str = "127.0.0.1"):
        self.host = host
        self.principals: dict[str, Any] = {}
        self._authorize = authorize or (lambda principal, service, operation, params: None)
        self._server = None
        self._thread: threading.Thread | None = None

    def start(self) -> LocalAwsServer:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

        app = IamMiddleware(DomainDispatcherApplication(create_backend_app), self._authorize, self.principals)
        self._server = make_server(self.host, 0, app, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-aws-server", daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def credentials_for(self, principal: Any) -> dict[str, str]:
        """Credentials whose requests are `principal`'s (a job's execution role session)."""
        access_key = "ASIA" + secrets.token_hex(8).upper()
        self.principals[access_key] = principal
        return {
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secrets.token_hex(20),
            "AWS_SESSION_TOKEN": secrets.token_hex(32),
        }

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(10)
