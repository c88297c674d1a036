"""The Hugging Face token, read at run time from Secrets Manager (never from the job's environment).

Every job that downloads from the Hub (prepare with a Hub data set, train from a Hub model, the
evaluation of a Hub base model) gets only the secret's ARN, as an argument or hyperparameter, and
reads the token itself with the job's execution role. The secret holds the token as plain text, or
JSON with an `HF_TOKEN` (or `hf_token`, `token`) key.
"""

from __future__ import annotations

import json
import re

SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$")
JSON_KEYS = ("HF_TOKEN", "hf_token", "token")


class TokenError(ValueError):
    """The secret cannot be read, or holds no token."""


def read_hf_token(secret_arn: str | None) -> str | None:
    """The token stored under `secret_arn`, or None when no secret is configured."""
    if not secret_arn:
        return None
    if not SECRET_ARN.match(secret_arn):
        raise TokenError(
            f"hf_token_secret_arn {secret_arn!r} is not a Secrets Manager secret ARN "
            "(arn:aws:secretsmanager:<region>:<account>:secret:<name>)"
        )
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    region = secret_arn.split(":")[3]
    try:
        secret = boto3.client("secretsmanager", region_name=region).get_secret_value(SecretId=secret_arn)
    except (ClientError, BotoCoreError) as error:
        raise TokenError(f"the Hugging Face token secret {secret_arn} cannot be read: {error}") from error
    value = (secret.get("SecretString") or "").strip()
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    if isinstance(parsed, dict):
        for key in JSON_KEYS:
            if parsed.get(key):
                return str(parsed[key])
        raise TokenError(f"the secret {secret_arn} is JSON without a {', '.join(JSON_KEYS)} key")
    if not parsed:
        raise TokenError(f"the secret {secret_arn} is empty")
    return str(parsed)
