"""Checkpoint shards of long jobs (generation, judge, oracle, relevance, hidden states).

A job writes `<output>.shards/` as it goes: one file per chunk of its items, each written to a partial file
and renamed into place, and `manifest.json` with the job's fingerprint: a digest of its settings (model,
weights, dtype, batch and chunk sizes, ... as the command was given them) and of its items' keys in order.
A killed job started again resumes from the folder only when the fingerprint is the same; a folder left by
a job with another fingerprint (another model or setting, other items) is discarded with a warning, so
shards of different jobs are never mixed. Each job also checks that a shard is whole before using it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Iterable

MANIFEST = "manifest.json"


def digest(*parts: str) -> str:
    value = hashlib.sha256()
    for part in parts:
        value.update(part.encode("utf-8", "surrogatepass"))
        value.update(b"\x00")
    return value.hexdigest()


def fingerprint(settings: dict, keys: Iterable[str]) -> str:
    return digest(json.dumps(settings, sort_keys=True, default=str), *keys)


def job_settings(args) -> dict:
    """A command's arguments as fingerprint settings (argparse's handler function left out)."""
    return {name: value for name, value in sorted(vars(args).items()) if not callable(value)}


def shard_dir(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".shards")


def open_shard_dir(output: str | Path, job_fingerprint: str, manifest: dict | None = None) -> Path:
    """The job's shard folder: kept when it belongs to this fingerprint, else emptied; partial writes removed."""
    directory = shard_dir(output)
    manifest_path = directory / MANIFEST
    if directory.exists():
        try:
            previous = json.loads(manifest_path.read_text()).get("fingerprint")
        except (OSError, ValueError, AttributeError):
            previous = None
        if previous != job_fingerprint:
            if any(directory.glob("shard-*")):
                print(f"xmrc: warning: {directory}: shards of another job (other settings or items), discarded",
                      file=sys.stderr)
            shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for partial in [*directory.glob("*.partial"), *directory.glob("*.partial.*")]:
        partial.unlink()  # a write the kill interrupted
    if not manifest_path.exists():
        partial = manifest_path.with_name(MANIFEST + ".partial")
        partial.write_text(json.dumps({**(manifest or {}), "fingerprint": job_fingerprint}, indent=1,
                                      sort_keys=True, default=str))
        os.replace(partial, manifest_path)
    return directory


def close_shard_dir(output: str | Path) -> None:
    """Remove the shard folder once the job's output is written."""
    shutil.rmtree(shard_dir(output), ignore_errors=True)
