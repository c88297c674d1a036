"""boto3 clients for the handlers: adaptive retries, cached per session and service."""

from __future__ import annotations

import boto3
from botocore.config import Config

RETRY_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 8}, connect_timeout=10, read_timeout=70)

_clients: dict[str, tuple[boto3.session.Session, object]] = {}


def session() -> boto3.session.Session:
    """boto3's default session: local mode and tests install request validation on it."""
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    return boto3.DEFAULT_SESSION


def client(service: str):
    """A client for `service`, reused across invocations while the default session stays."""
    current = session()
    cached = _clients.get(service)
    if cached is None or cached[0] is not current:
        cached = (current, current.client(service, config=RETRY_CONFIG))
        _clients[service] = cached
    return cached[1]


def region() -> str:
    return session().region_name or "us-east-1"
