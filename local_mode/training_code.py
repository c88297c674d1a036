"""training/'s modules by their bare names, as a job imports them (training/ is the job's import root).

A job runs `python train.py` in its code folder, first on its path, so `from chat_format import ...`
finds the sibling file before any installed package. Local mode and the benchmarks call the same
modules in process; this finder answers first, as the job's path does, but only for the files in
training/ (the code folder cdk_app ships), and sys.path stays as it was.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

from cdk_app.assets import training_code_dir


class TrainingModules(importlib.abc.MetaPathFinder):
    """Finds `<name>` as `<folder>/<name>.py` for top-level names only."""

    def __init__(self, folder: Path):
        self.folder = folder

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if "." in fullname:
            return None
        file = self.folder / f"{fullname}.py"
        return importlib.util.spec_from_file_location(fullname, file) if file.is_file() else None


def enable(folder: Path | None = None) -> None:
    """Make training/'s modules importable by bare name in this process (once)."""
    if not any(isinstance(finder, TrainingModules) for finder in sys.meta_path):
        sys.meta_path.insert(0, TrainingModules(folder or training_code_dir()))


def training_module(name: str) -> ModuleType:
    """training/<name>.py, imported the way the job imports it."""
    enable()
    return importlib.import_module(name)
