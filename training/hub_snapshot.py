"""A Hub model's files at one commit, downloaded once, for jobs that start from a Hub id.

Preflight resolves the asked revision (a branch such as main) to a commit, and every job downloads
that commit: the model that is trained, evaluated as the base and registered is the one that was
checked, even when the branch moves during the run. Only what transformers loads is fetched
(config, tokenizer, chat template, safetensors weights; .bin weights only when a repository has no
safetensors), not the `original/` checkpoints some repositories add beside them.
"""

from __future__ import annotations

import fnmatch

MODEL_FILES = ("*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken", "tokenizer*", "*.py")
LEGACY_WEIGHTS = ("*.bin",)
SKIPPED = ("original/*",)


def patterns_for(files: list[str]) -> list[str]:
    """The download patterns for a repository holding `files`."""
    has_safetensors = any(fnmatch.fnmatch(name, "*.safetensors") for name in files)
    return list(MODEL_FILES) + ([] if has_safetensors else list(LEGACY_WEIGHTS))


def pinned_snapshot(repo_id: str, revision: str | None, token: str | None) -> str:
    """The local folder holding `repo_id` at `revision` (a commit sha, a branch or None for main)."""
    from huggingface_hub import HfApi, snapshot_download

    files = HfApi().list_repo_files(repo_id, revision=revision or None, token=token)
    return snapshot_download(
        repo_id,
        revision=revision or None,
        token=token,
        allow_patterns=patterns_for(files),
        ignore_patterns=list(SKIPPED),
    )
