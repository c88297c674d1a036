"""The few Hugging Face Hub calls the preflight makes, with the standard library only (Lambda has no hub client).

`HF_ENDPOINT` (default https://huggingface.co) is where the Hub is, as for huggingface_hub; the token,
when the stack has one, comes from Secrets Manager.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_ENDPOINT = "https://huggingface.co"
TIMEOUT_SECONDS = 15


class HubError(Exception):
    """The Hub refused or failed a request; `code` is its X-Error-Code (GatedRepo, RepoNotFound, ...)."""

    def __init__(self, message: str, code: str = "", status: int = 0):
        super().__init__(message)
        self.code, self.status = code, status


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _get(url: str, token: str | None) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # nosec B310 # an https URL of the Hub endpoint (HF_ENDPOINT or huggingface.co)
            return response.read()
    except urllib.error.HTTPError as error:
        code = error.headers.get("X-Error-Code", "") if error.headers else ""
        raise HubError(f"{error.code} {error.reason}", code, error.code) from None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise HubError(f"the Hub at {endpoint()} cannot be reached: {error}") from None


def repo_info(repo_id: str, revision: str, token: str | None, kind: str = "model") -> dict:
    """The repository at `revision` (a branch, tag or commit): its `sha` and `siblings`."""
    quoted = urllib.parse.quote(revision, safe="")
    return json.loads(_get(f"{endpoint()}/api/{kind}s/{repo_id}/revision/{quoted}", token))


def read_json_file(repo_id: str, sha: str, name: str, token: str | None) -> dict | None:
    """A small JSON file of a model repository at commit `sha` (None when it is not there)."""
    try:
        data = _get(f"{endpoint()}/{repo_id}/resolve/{sha}/{name}", token)
    except HubError as error:
        if error.status == 404:
            return None
        raise
    try:
        value = json.loads(data)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
