"""The file `llm-finetune local up` writes into its workdir, so that other `--local` commands find it.

It names the emulated account's HTTP endpoint, its region and stack, the serving process, and
where the base model and the data set were uploaded. It is removed when the server stops; one left
behind by a killed server is recognised as stale by its process id.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from llm_finetune_cli.errors import CliError, ExitCode

FILE_NAME = "cli-connection.json"
DEFAULT_WORKDIR = Path(".cache") / "local-mode"


@dataclass
class LocalConnection:
    endpoint_url: str
    region: str
    stack_name: str
    pid: int
    workdir: str
    # What an execution input's base_model and dataset become in local mode (as `python -m local_mode run`
    # does): {"base_model": {"s3_uri": ...}, "dataset": {"s3_uri": ..., "format": ...}}.
    sources: dict = field(default_factory=dict)
    model: str = ""

    def write(self) -> Path:
        path = connection_path(Path(self.workdir))
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=2))
        temporary.replace(path)
        return path


def connection_path(workdir: Path) -> Path:
    return Path(workdir) / FILE_NAME


def read_connection(workdir: Path) -> LocalConnection | None:
    """The running local account's connection, or None when none runs in `workdir`."""
    path = connection_path(workdir)
    try:
        connection = LocalConnection(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, TypeError) as error:
        raise CliError(
            f"{path}: not a connection file of llm-finetune local up ({error}); remove it", ExitCode.USAGE
        ) from None
    return connection if process_alive(connection.pid) else None


def require_connection(workdir: Path) -> LocalConnection:
    connection = read_connection(workdir)
    if connection is None:
        raise CliError(
            f"no local account is running in {workdir}: start one with "
            f"`llm-finetune --local --workdir {workdir} local up` (it serves until Ctrl-C), or run "
            "`llm-finetune --local start --input FILE --watch`, which runs the account in its own "
            "process",
            ExitCode.NOT_FOUND,
        )
    return connection


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
