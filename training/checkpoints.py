"""Which checkpoint a restarted job resumes from: the Trainer writes checkpoint-N/ under the
checkpoint channel, which SageMaker keeps across a spot interruption or a retried job."""

from __future__ import annotations

import re
from pathlib import Path

_CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")


def newest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The highest-numbered complete checkpoint (trainer_state.json is written last)."""
    if not checkpoint_dir.is_dir():
        return None
    found = []
    for child in checkpoint_dir.iterdir():
        match = _CHECKPOINT_NAME.match(child.name)
        if match and (child / "trainer_state.json").is_file():
            found.append((int(match.group(1)), child))
    return max(found)[1] if found else None
