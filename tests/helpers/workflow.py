"""Running the workflow and the CLI the way users and rules do: subprocesses in a copy of the checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_PARTS = ("Snakefile", "workflow", "config", "data", "src", "envs")


def copy_workflow(destination: Path, parts=WORKFLOW_PARTS) -> Path:
    """A copy of the workflow, so runs never touch the developer's results/ or .snakemake/."""
    for part in parts:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, destination / part, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(source, destination / part)
    return destination


def snakemake(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, check=False,
                          env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(cwd)})


def xmrc(*args, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xmrc", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          check=False, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "HOME": "/tmp"})


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit status 2 and exactly one stderr line `xmrc: error: ...` holding every fragment."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xmrc: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
