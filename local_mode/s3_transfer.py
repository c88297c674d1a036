"""Copies between the emulated S3 and local folders, with SageMaker's S3Prefix semantics."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def split_s3_uri(uri: str) -> tuple[str, str]:
    """'s3://bucket/some/key' -> ('bucket', 'some/key'); rejects anything that is not an S3 URI."""
    if not uri.startswith("s3://") or len(uri) <= 5:
        raise ValueError(f"not an S3 URI: {uri!r} (expected s3://bucket/key)")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def download_prefix(s3: Any, uri: str, destination: Path, store: Any = None) -> list[Path]:
    """Download every object whose key starts with the URI's key, as SageMaker's S3Prefix does.

    Paths below the destination are the keys relative to the prefix; an exact key lands under its
    file name. Returns the files written; an empty prefix is an error (SageMaker fails the job too).
    `store` (an object with read/write, such as moto_patches.S3Store) copies the bytes directly.
    """
    bucket, prefix = split_s3_uri(uri)
    destination.mkdir(parents=True, exist_ok=True)
    written = []
    for key in list_keys(s3, bucket, prefix):
        if key.endswith("/"):
            continue
        relative = key[len(prefix) :].lstrip("/") or os.path.basename(key)
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if store is not None:
            target.write_bytes(store.read(bucket, key))
        else:
            s3.download_file(bucket, key, str(target))
        written.append(target)
    if not written:
        raise FileNotFoundError(f"no S3 objects under {uri}")
    return written


def upload_folder(s3: Any, source: Path, uri: str, only: list[Path] | None = None, store: Any = None) -> list[str]:
    """Upload every file below `source` (or just `only`) under the URI's prefix; returns the keys.

    `store` (an object with read/write, such as moto_patches.S3Store) copies the bytes directly.
    """
    bucket, prefix = split_s3_uri(uri)
    prefix = prefix.rstrip("/")
    keys = []
    files = only if only is not None else sorted(p for p in source.rglob("*") if p.is_file())
    for path in files:
        relative = path.relative_to(source).as_posix()
        key = f"{prefix}/{relative}" if prefix else relative
        if store is not None:
            store.write(bucket, key, path.read_bytes())
        else:
            s3.upload_file(str(path), bucket, key)
        keys.append(key)
    return keys
