"""The JSON file each CPU benchmark writes: the same provenance fields first, in one place.

docs/benchmarks.md is generated from these files (benchmarks/report.py), so every result must say
what ran, with which command, when, on which machine and under what load.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.machine import machine_description


def load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def header(
    name: str, what: str, argv: list[str] | None, started: float, load_before: list[float] | None
) -> dict[str, Any]:
    """Provenance of a result; `argv` None means the process's own command line."""
    arguments = sys.argv[1:] if argv is None else argv
    return {
        "benchmark": name,
        "what": what,
        "command": " ".join([f"python -m benchmarks.{name}", *arguments]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": machine_description(),
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }


def write(out: str | Path, name: str, payload: dict[str, Any]) -> Path:
    """`<out>/<name>.json`, the folder created when needed."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
