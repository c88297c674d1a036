"""Powertools Logger and Tracer shared by the handlers (tracing is off outside AWS Lambda)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Tracer

logger = Logger()
tracer = Tracer()
