"""A local model hub that speaks the Hugging Face Hub's HTTP API, for gated models and data sets offline.

Jobs that download from the Hub (a base model by `hf_model_id`, a data set by `hf_dataset_id`) reach
it through their gateway as `HF_ENDPOINT`, so huggingface_hub, transformers and datasets make the
requests they make against the real Hub: repository info (`/api/models/<id>/revision/<rev>`), file
listings (`tree`, `paths-info`) and downloads (`/<id>/resolve/<rev>/<path>`, with the commit and
ETag headers the client caches by). A gated repository answers 401 (no token) or 403 (a token that
was not granted) with the Hub's `X-Error-Code: GatedRepo`, so a job that does not get its token fails
as it would in the cloud.

Repositories are local folders; each has one commit, whose sha is derived from its files.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

KINDS = {"models": "model", "datasets": "dataset"}


@dataclass
class HubRepo:
    repo_id: str
    folder: Path
    kind: str = "model"  # "model" or "dataset"
    gated: bool = False
    tokens: set[str] = field(default_factory=set)  # tokens granted access (gated repositories)

    def files(self) -> dict[str, Path]:
        return {
            path.relative_to(self.folder).as_posix(): path for path in sorted(self.folder.rglob("*")) if path.is_file()
        }

    @property
    def sha(self) -> str:
        digest = hashlib.sha1(usedforsecurity=False)
        for name, path in self.files().items():
            digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()


class LocalHub:
    """A ThreadingHTTPServer on 127.0.0.1 holding `repos`; `requests` records what clients asked for."""

    def __init__(self, repos: list[HubRepo] | None = None, host: str = "127.0.0.1"):
        self.repos: dict[tuple[str, str], HubRepo] = {}
        for repo in repos or []:
            self.add(repo)
        self.requests: list[dict] = []
        self._server = ThreadingHTTPServer((host, 0), _handler(self))
        self._thread: threading.Thread | None = None

    def add(self, repo: HubRepo) -> HubRepo:
        self.repos[(repo.kind, repo.repo_id)] = repo
        return repo

    def start(self) -> LocalHub:
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-hub", daemon=True)
        self._thread.start()
        return self

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code = status, code


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _handler(hub: LocalHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        # ---- routing --------------------------------------------------------------------------
        def do_HEAD(self) -> None:
            self._route("HEAD")

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def _route(self, method: str) -> None:
            parsed = urlparse(self.path)
            parts = [unquote(part) for part in parsed.path.strip("/").split("/")]
            hub.requests.append(
                {
                    "method": method,
                    "path": parsed.path,
                    "token": self.headers.get("Authorization", "").removeprefix("Bearer ") or None,
                }
            )
            try:
                if parts[:1] == ["api"] and len(parts) >= 4 and parts[1] in KINDS:
                    self._api(method, KINDS[parts[1]], parts[2:], parse_qs(parsed.query))
                elif "resolve" in parts:
                    kind = "dataset" if parts[0] == "datasets" else "model"
                    rest = parts[1:] if parts[0] in ("datasets", "models") else parts
                    at = rest.index("resolve")
                    self._file(method, kind, "/".join(rest[:at]), rest[at + 1], "/".join(rest[at + 2 :]))
                else:
                    raise _Refusal(404, "RepoNotFound", f"no route {parsed.path}")
            except _Refusal as refusal:
                self._error(method, refusal)

        # ---- API -------------------------------------------------------------------------------
        def _api(self, method: str, kind: str, rest: list[str], query: dict) -> None:
            repo_id = "/".join(rest[:2])
            repo = self._repo(kind, repo_id)
            action = rest[2] if len(rest) > 2 else "revision"
            revision = rest[3] if len(rest) > 3 else "main"
            self._check_revision(repo, revision)
            if action == "revision" or len(rest) == 2:
                self._json(method, self._info(repo))
            elif action == "tree":
                prefix = "/".join(rest[4:]).strip("/")
                recursive = (query.get("recursive") or ["false"])[0].lower() == "true"
                self._json(method, self._entries(repo, prefix, recursive))
            elif action == "paths-info":
                wanted = self._posted_paths()
                self._json(
                    method,
                    [entry for entry in self._entries(repo, "", True, directories=True) if entry["path"] in wanted],
                )
            else:
                raise _Refusal(404, "EntryNotFound", f"the local hub does not serve /api/.../{action}")

        def _posted_paths(self) -> set[str]:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            if self.headers.get("Content-Type", "").startswith("application/json"):
                paths = json.loads(body or "{}").get("paths", [])
            else:
                paths = parse_qs(body).get("paths", [])
            return {path.strip("/") for path in (paths if isinstance(paths, list) else [paths])}

        def _info(self, repo: HubRepo) -> dict:
            files = repo.files()
            modified = max((path.stat().st_mtime for path in files.values()), default=0)
            info = {
                "_id": repo.sha[:24],
                "id": repo.repo_id,
                "sha": repo.sha,
                "private": False,
                "gated": "manual" if repo.gated else False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": [{"rfilename": name} for name in files],
                "lastModified": _iso(modified),
                "createdAt": _iso(modified),
                "cardData": {},
                "usedStorage": sum(path.stat().st_size for path in files.values()),
            }
            if repo.kind == "model":
                info.update(modelId=repo.repo_id, pipeline_tag="text-generation", library_name="transformers")
            return info

        def _entries(self, repo: HubRepo, prefix: str, recursive: bool, directories: bool = True) -> list[dict]:
            entries, seen = [], set()
            for name, path in repo.files().items():
                if prefix and not (name == prefix or name.startswith(prefix + "/")):
                    continue
                relative = name[len(prefix) :].lstrip("/") if prefix else name
                parts = relative.split("/")
                if not recursive and len(parts) > 1:
                    folder = (prefix + "/" if prefix else "") + parts[0]
                    if directories and folder not in seen:
                        seen.add(folder)
                        entries.append(
                            {
                                "type": "directory",
                                "oid": hashlib.sha1(folder.encode(), usedforsecurity=False).hexdigest(),
                                "size": 0,
                                "path": folder,
                            }
                        )
                    continue
                if recursive and directories:
                    for depth in range(1, len(name.split("/"))):
                        folder = "/".join(name.split("/")[:depth])
                        if folder not in seen and (not prefix or folder.startswith(prefix + "/")):
                            seen.add(folder)
                            entries.append(
                                {
                                    "type": "directory",
                                    "oid": hashlib.sha1(folder.encode(), usedforsecurity=False).hexdigest(),
                                    "size": 0,
                                    "path": folder,
                                }
                            )
                data = path.read_bytes()
                entries.append(
                    {
                        "type": "file",
                        "oid": hashlib.sha1(data, usedforsecurity=False).hexdigest(),
                        "size": len(data),
                        "path": name,
                    }
                )
            return entries

        # ---- files -----------------------------------------------------------------------------
        def _file(self, method: str, kind: str, repo_id: str, revision: str, name: str) -> None:
            repo = self._repo(kind, repo_id)
            self._check_revision(repo, revision)
            path = repo.files().get(name)
            if path is None:
                raise _Refusal(404, "EntryNotFound", f"{name} does not exist in {repo_id} at {revision}")
            data = path.read_bytes()
            status, start, end = 200, 0, len(data)
            wanted = self.headers.get("Range", "")
            if wanted.startswith("bytes="):
                first, _, last = wanted[6:].partition("-")
                start = int(first or 0)
                end = min(len(data), int(last) + 1) if last else len(data)
                status = 206
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(end - start))
            self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
            self.send_header("X-Repo-Commit", repo.sha)
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data[start:end])

        # ---- access ------------------------------------------------------------------------------
        def _repo(self, kind: str, repo_id: str) -> HubRepo:
            repo = hub.repos.get((kind, repo_id))
            if repo is None:
                raise _Refusal(
                    401,
                    "RepoNotFound",
                    f"Repository Not Found for url: {self.path}. Please make sure "
                    "you specified the correct repo_id and repo_type.",
                )
            if repo.gated:
                token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
                if not token:
                    raise _Refusal(
                        401,
                        "GatedRepo",
                        f"Access to {kind} {repo_id} is restricted. You must have "
                        "access to it and be authenticated to access it. Please log in.",
                    )
                if token not in repo.tokens:
                    raise _Refusal(
                        403,
                        "GatedRepo",
                        f"Access to {kind} {repo_id} is restricted and you are not in the authorized list.",
                    )
            return repo

        @staticmethod
        def _check_revision(repo: HubRepo, revision: str) -> None:
            if unquote(revision) not in ("main", repo.sha):
                raise _Refusal(404, "RevisionNotFound", f"Invalid rev id: {revision}")

        # ---- answers ---------------------------------------------------------------------------
        def _json(self, method: str, value: Any) -> None:
            data = json.dumps(value).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data)

        def _error(self, method: str, refusal: _Refusal) -> None:
            data = json.dumps({"error": str(refusal)}).encode()
            self.send_response(refusal.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Error-Code", refusal.code)
            self.send_header("X-Error-Message", str(refusal))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data)

    return Handler
