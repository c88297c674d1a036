"""A short description of the machine a benchmark ran on, stored with its results."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The processor's model name from /proc/cpuinfo (Linux), else what the platform module knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_description() -> dict[str, Any]:
    """CPU model and usable cores, memory, GPU (when torch sees one) and library versions."""
    import importlib.metadata as metadata

    info: dict[str, Any] = {"cpu": cpu_model(), "cores": usable_cores(), "python": platform.python_version()}
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 2**20, 1)
    versions = {}
    for package in ("torch", "transformers", "trl", "peft"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    info["versions"] = versions
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def machine_label(machine: dict[str, Any]) -> str:
    """One line for a results table: the GPU when there is one, else CPU model and cores."""
    if machine.get("gpu"):
        return str(machine["gpu"])
    return f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores"


def default_threads() -> int:
    """Threads for torch: the cores not already busy (1-minute load average), at least 1.

    On a machine shared with other work, more threads than idle cores make OpenMP's worker threads
    wait on each other and can slow a run down many times over, far more than the lost parallelism.
    """
    cores = usable_cores()
    try:
        busy = round(os.getloadavg()[0])
    except OSError:
        busy = 0
    return max(1, min(cores, cores - busy))
