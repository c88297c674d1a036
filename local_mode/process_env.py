"""This process's environment, shared by the Lambdas it runs and the jobs and servers it starts.

A Lambda runs in this process with its own variables set for the length of the call. Jobs and
endpoint servers start from threads at any time, and must neither read the environment while a
Lambda is changing it (copying `os.environ` while a key is removed raises KeyError) nor inherit a
Lambda's variables: a container gets its request's environment, not its caller's.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LOCK = threading.RLock()
_before_lambda: dict[str, str | None] = {}  # values the running Lambda's variables replaced


@contextmanager
def lambda_variables(environment: dict[str, str]) -> Iterator[None]:
    """`environment` set in os.environ while the block runs, then the previous values back."""
    with _LOCK:
        saved = {key: os.environ.get(key) for key in environment}
        for key, value in saved.items():
            _before_lambda.setdefault(key, value)
        os.environ.update(environment)
    try:
        yield
    finally:
        with _LOCK:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
                if _before_lambda.get(key, value) == value:
                    _before_lambda.pop(key, None)


def snapshot() -> dict[str, str]:
    """The process's environment without any running Lambda's variables, read consistently."""
    with _LOCK:
        env = dict(os.environ)
        for key, value in _before_lambda.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
    return env
