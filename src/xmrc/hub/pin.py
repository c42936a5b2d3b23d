"""Pinning the registry's hub models to the commits their snapshots were fetched at.

`fetch-model` records the resolved commit in its stamp; `pin-revisions` writes it into the registry as the
entry's `revision:`, so every later fetch (another cluster, a re-run a year on) gets the same files. The
registry is edited line by line, keeping its comments and layout; an entry that already names a revision
keeps it unless the stamp was fetched at another one, which is an error naming the model.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from xmrc.config import Registry
from xmrc.exceptions import XmrcError
from xmrc.io import parse_yaml, write_text

COMMIT = re.compile(r"[0-9a-f]{40}")


def read_stamps(stamp_dir: str | Path) -> dict[str, dict]:
    """model key -> stamp, from `<stamp_dir>/<model>.json`."""
    stamps = {}
    for path in sorted(Path(stamp_dir).glob("*.json")):
        try:
            stamp = json.loads(path.read_text(encoding="utf-8"))
            key, hub_id, commit = stamp["model"], stamp["hub_id"], stamp["commit"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise XmrcError(f"{path}: not a fetch-model stamp ({type(error).__name__})") from None
        if not COMMIT.fullmatch(str(commit)):
            raise XmrcError(f"{path}: commit '{commit}' is not a 40-character hub commit")
        stamps[key] = {"hub_id": hub_id, "commit": commit, "path": str(path)}
    return stamps


def _entry_span(lines: list[str], key: str) -> tuple[int, int] | None:
    """Line range [start, end) of a top-level registry entry."""
    start = next((i for i, line in enumerate(lines) if line.rstrip() == f"{key}:"), None)
    if start is None:
        return None
    end = start + 1
    while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end].strip()):
        end += 1
    return start, end


def _field(lines: list[str], start: int, end: int, name: str) -> tuple[int, str] | None:
    for i in range(start + 1, end):
        match = re.match(rf"^(\s+){re.escape(name)}:\s*(.*?)\s*(#.*)?$", lines[i])
        if match:
            return i, match.group(2)
    return None


def pin_revisions(registry_text: str, stamps: dict[str, dict]) -> tuple[str, list[str]]:
    """The registry text with each stamped model's `revision:` set to its commit, and the keys it changed."""
    lines = registry_text.split("\n")
    changed = []
    for key, stamp in sorted(stamps.items()):
        span = _entry_span(lines, key)
        if span is None:
            raise XmrcError(f"{stamp['path']}: model '{key}' is not in the registry")
        start, end = span
        hub = _field(lines, start, end, "hub_id")
        if hub is None or hub[1].strip("'\"") != stamp["hub_id"]:
            raise XmrcError(
                f"{stamp['path']}: model '{key}' was fetched from {stamp['hub_id']}, the registry "
                f"names {hub[1] if hub else 'no hub_id'}"
            )
        indent = re.match(r"^(\s+)", lines[hub[0]]).group(1)
        current = _field(lines, start, end, "revision")
        value = current[1].strip("'\"") if current else ""
        if value in ("", "null", "~"):
            pinned = f"{indent}revision: {stamp['commit']}"
            if current:
                lines[current[0]] = pinned
            else:
                lines.insert(hub[0] + 1, pinned)
            changed.append(key)
        elif value != stamp["commit"]:
            raise XmrcError(
                f"{stamp['path']}: model '{key}' is pinned to revision {value} in the registry, but "
                f"its snapshot is commit {stamp['commit']}; fetch it again or edit the registry"
            )
    return "\n".join(lines), changed


def pin_registry(registry: str | Path, stamp_dir: str | Path, dry_run: bool = False) -> tuple[list[str], int]:
    """Pin the registry file to the stamps in `stamp_dir` (unless `dry_run`); returns the keys it changed and
    the number of stamps. The edit replaces the registry (atomically) only once it parses as a valid registry."""
    registry = Path(registry)
    try:
        text = registry.read_text(encoding="utf-8")
    except OSError:
        raise XmrcError(f"{registry}: file not found") from None
    stamps = read_stamps(stamp_dir)
    if not stamps:
        raise XmrcError(f"{stamp_dir}: no fetch-model stamps (<model>.json); run the fetch_model rules first")
    pinned, changed = pin_revisions(text, stamps)
    if changed and not dry_run:
        Registry.from_entries(parse_yaml(pinned, registry), str(registry))
        write_text(pinned, registry)
    return changed, len(stamps)
