"""Run a Lambda function's handler in this process, as the Python Lambda runtime would.

The handler named by the function's `Handler` (`module.function`) is imported from the function's
code folder (`lambdas/`, put first on sys.path as the runtime's LAMBDA_TASK_ROOT is) and called
with the function's environment variables set for the duration of the call, a context object and
the event. A raised exception becomes the runtime's error payload (`errorMessage`, `errorType`,
`stackTrace`), so Step Functions' Retry/Catch match the exception's class name exactly as they do
in AWS.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from moto.core.exceptions import JsonRESTError

from cdk_app.assets import lambda_code_dir
from local_mode import process_env


class KMSAccessDeniedException(JsonRESTError):
    """Lambda's answer (HTTP 502) to an invocation whose role cannot decrypt the function's environment."""

    code = 502

    def __init__(self, kms_message: str):
        super().__init__(
            "KMSAccessDeniedException",
            "Lambda was unable to decrypt the environment variables because KMS access was denied. "
            "Please check the function's AWS KMS key settings. "
            f"KMS Exception: AccessDeniedExceptionKMS Message: {kms_message}",
        )


class LambdaContext:
    """The attributes and method of the Python runtime's context object that handlers use."""

    def __init__(self, function: Any, deadline: float):
        self.function_name = function.function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function.function_arn
        self.memory_limit_in_mb = int(function.memory_size)
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.function_name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _ThreadStdout(io.TextIOBase):
    """sys.stdout stand-in: what an invoking thread prints goes to that invocation's log."""

    def __init__(self, real: Any):
        self.real = real
        self.buffers: dict[int, io.StringIO] = {}

    def write(self, text: str) -> int:
        buffer = self.buffers.get(threading.get_ident())
        return (buffer or self.real).write(text)

    def flush(self) -> None:
        self.real.flush()

    def isatty(self) -> bool:
        return False


class LambdaInvoker:
    """Invokes handlers from `lambdas_dir`; one invocation at a time, like the workflow's tasks."""

    def __init__(
        self,
        region: str,
        logs_dir: Path | None = None,
        lambdas_dir: Path | None = None,
        on_invoke: Callable[[str, dict, str, bool], None] | None = None,
        extra_environment: dict[str, str] | None = None,
        identity: Callable[[Any], contextlib.AbstractContextManager] | None = None,
        environment_denial: Callable[[Any], str | None] | None = None,
    ):
        self.region = region
        # Wraps each handler call: local mode's IAM makes the handler's requests as the function's role.
        self.identity = identity or (lambda function: contextlib.nullcontext())
        # Why the function's role cannot decrypt its environment (KMS's message), or None when it can.
        self.environment_denial = environment_denial or (lambda function: None)
        self.logs_dir = logs_dir
        self.lambdas_dir = Path(lambdas_dir or lambda_code_dir())
        self.on_invoke = on_invoke
        # Local settings every function gets (documented in docs/local-mode.md).
        self.extra_environment = {"POWERTOOLS_TRACE_DISABLED": "true", **(extra_environment or {})}
        self.invocations: list[dict] = []
        self._lock = threading.Lock()
        self._stdout: _ThreadStdout | None = None

    def __enter__(self) -> LambdaInvoker:
        self._modules_before = self.fresh_imports()
        # The runtime emulation itself: the Python Lambda runtime puts the function's code folder
        # (LAMBDA_TASK_ROOT) first on sys.path, which is how handlers import `common.*`.
        if str(self.lambdas_dir) not in sys.path:
            sys.path.insert(0, str(self.lambdas_dir))
        self._stdout = _ThreadStdout(sys.stdout)
        sys.stdout = self._stdout
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._stdout is not None and sys.stdout is self._stdout:
            sys.stdout = self._stdout.real
        self._stdout = None
        # Hand the process back the handler modules it had, so code that imported them before
        # this run (a test patching `common.jobs`, say) still sees the objects it holds.
        self.fresh_imports()
        sys.modules.update(getattr(self, "_modules_before", {}))

    def fresh_imports(self) -> dict[str, Any]:
        """Forget handler modules imported earlier, so every run starts cold, with its own clients.

        That includes modules of the same name loaded from another folder (a second copy of the
        code, or the tests' own import of it): in the function's process those names are its code
        folder's. Returns the forgotten modules."""
        root = str(self.lambdas_dir)
        own_names = {path.stem for path in self.lambdas_dir.glob("*.py")} | {
            path.parent.name for path in self.lambdas_dir.glob("*/__init__.py")
        }
        forgotten = {}
        for name, module in list(sys.modules.items()):
            path = getattr(module, "__file__", None) or ""
            if path.startswith(root + os.sep) or name.partition(".")[0] in own_names:
                forgotten[name] = sys.modules.pop(name)
        return forgotten

    def invoke(self, function: Any, event: Any) -> tuple[str, bool, str]:
        with self._lock:
            return self._invoke(function, event)

    def _invoke(self, function: Any, event: Any) -> tuple[str, bool, str]:
        denial = self.environment_denial(function)
        if denial is not None:
            raise KMSAccessDeniedException(denial)
        module_name, _, attribute = (function.handler or "").rpartition(".")
        environment = {
            **{str(k): str(v) for k, v in (function.environment_vars or {}).items()},
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.function_name}",
            "_HANDLER": function.handler or "",
            **self.extra_environment,
        }
        variables = process_env.lambda_variables(environment)
        variables.__enter__()
        buffer = io.StringIO()
        if self._stdout is not None:
            self._stdout.buffers[threading.get_ident()] = buffer
        context = LambdaContext(function, time.monotonic() + float(function.timeout or 3))
        errored = False
        try:
            if not module_name or not attribute:
                raise ImportError(f"Bad handler '{function.handler}': expected module.function")
            handler = getattr(importlib.import_module(module_name), attribute)
            with self.identity(function):
                result = handler(event, context)
            payload = json.dumps(result)
        except Exception as error:  # the runtime reports every exception as the function's error
            errored = True
            payload = json.dumps(
                {
                    "errorMessage": str(error),
                    "errorType": type(error).__name__,
                    "requestId": context.aws_request_id,
                    "stackTrace": traceback.format_tb(error.__traceback__),
                }
            )
            buffer.write(f"[ERROR] {type(error).__name__}: {error}\n")
        finally:
            if self._stdout is not None:
                self._stdout.buffers.pop(threading.get_ident(), None)
            variables.__exit__(None, None, None)
        logs = buffer.getvalue()
        self._record(function, event, payload, errored, logs)
        return payload, errored, logs

    def _record(self, function: Any, event: Any, payload: str, errored: bool, logs: str) -> None:
        step = event.get("step") if isinstance(event, dict) else None
        self.invocations.append({"function": function.function_name, "step": step, "errored": errored})
        if self.logs_dir is not None:
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            with open(self.logs_dir / f"{function.function_name}.log", "a", encoding="utf-8") as log:
                log.write(f"--- invocation step={step} errored={errored}\n{logs}")
                log.write(f"--- result\n{payload}\n")
        with contextlib.suppress(Exception):  # CloudWatch copy is a convenience; never fail the invocation for it
            function.save_logs(logs)
        if self.on_invoke is not None:
            self.on_invoke(function.function_name, event if isinstance(event, dict) else {}, payload, errored)
