"""The wheels the GPU check carries to the lent machine, in .whl/ (git-ignored), and what the call carries in all.

    python bench/gpu/prepare.py                      # captum and lxt (--no-deps); needs the package index
    python bench/gpu/prepare.py --transformers-4     # also the workflow's transformers 4.57.6 stack (fallback)
    python bench/gpu/prepare.py --size-only          # print the carried size of what .whl/ holds now

The lent machine's image has torch, transformers 5, peft, accelerate and the rest, but no Captum and no LXT, and
reaches no index: these travel as wheels (pure Python), installed there with --no-deps into /tmp/site by
bench/gpu/device.sh. Captum is downloaded as the wheel PyPI has; LXT 2.1 exists only as a source archive, so its
wheel is built here. The pins are envs/requirements-cpu.txt's. xmrc itself travels as the working tree and runs
from its src/ (bench/gpu puts it first on the path): its modules find config/ and data/ beside the checkout's
src/, so an installed copy of the package fails there (`/tmp/config/datasets.yaml: file not found`).

The device tool carries the working tree (tracked files and untracked ones git does not ignore) and the paths
named in `carry`, 64 MiB in all: printed, and the exit status is 1 above it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WHEELS = ROOT / ".whl"
LIMIT = 64 * 2**20
# pip download's platform tags of the device tool's README: the lent machine's python3 is CPython 3.12, x86-64.
PLATFORM = ["--python-version", "3.12", "--implementation", "cp"] + [
    arg
    for tag in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
    for arg in ("--platform", tag)
]


def pins() -> dict[str, str]:
    """name -> version of the pinned lines of envs/requirements-cpu.txt."""
    found = {}
    for line in (ROOT / "envs" / "requirements-cpu.txt").read_text(encoding="utf-8").splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, _, pinned = line.partition("==")
            found[name.strip().lower()] = pinned.strip()
    return found


def pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", *args]
    print("$ " + " ".join(["python", "-m", "pip", *args]), flush=True)
    subprocess.run(command, check=True, cwd=ROOT)


def ensure_ignored() -> None:
    """.whl/ must not travel as part of the tree (it travels through `carry`) nor be committed."""
    probe = subprocess.run(["git", "check-ignore", "-q", ".whl/x.whl"], cwd=ROOT)
    if probe.returncode == 0:
        return
    exclude = subprocess.run(
        ["git", "rev-parse", "--git-path", "info/exclude"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    path = ROOT / exclude
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("/.whl/\n")
    print(f"added /.whl/ to {exclude}")


def build(transformers_4: bool) -> None:
    pinned = pins()
    ensure_ignored()
    if WHEELS.exists():
        shutil.rmtree(WHEELS)
    WHEELS.mkdir()
    pip("download", "--no-deps", "--only-binary=:all:", *PLATFORM, "-d", ".whl", f"captum=={pinned['captum']}")
    with tempfile.TemporaryDirectory() as scratch:  # LXT: a source archive only; its wheel is pure Python
        pip("wheel", "--no-deps", "-w", scratch, f"lxt=={pinned['lxt']}")
        for wheel in Path(scratch).glob("*.whl"):
            shutil.move(str(wheel), WHEELS / wheel.name)
    if transformers_4:  # the workflow's own stack for transformers, should transformers 5 break a stage
        stack = [f"transformers=={pinned['transformers']}"]
        for name in ("tokenizers", "huggingface_hub"):
            try:
                stack.append(f"{name}=={version(name)}")
            except PackageNotFoundError:
                sys.exit(f"prepare: --transformers-4 takes {name}'s version from this environment; it has none")
        pip("download", "--no-deps", "--only-binary=:all:", *PLATFORM, "-d", ".whl", *stack)
    described = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    (WHEELS / "commit.txt").write_text((described or "unknown") + "\n", encoding="utf-8")


def tree_size() -> tuple[int, int]:
    """(bytes, files) of what travels as the working tree: tracked files and untracked ones not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    sizes = [(ROOT / name.decode()).stat().st_size for name in listed if name and (ROOT / name.decode()).is_file()]
    return sum(sizes), len(sizes)


def report() -> int:
    wheels = sorted(WHEELS.glob("*.whl")) if WHEELS.is_dir() else []
    tree, files = tree_size()
    carried = sum(w.stat().st_size for w in wheels)
    print("\ncarried to the lent machine (the device tool's limit: 64 MiB a call)")
    for wheel in wheels:
        print(f"  {wheel.name:60s} {wheel.stat().st_size / 2**20:7.2f} MiB")
    label = 'wheels (.whl/: carry [".whl"])'
    print(f"  {label:60s} {carried / 2**20:7.2f} MiB")
    print(f"  {f'working tree ({files} files)':60s} {tree / 2**20:7.2f} MiB")
    total = carried + tree
    print(f"  {'total':60s} {total / 2**20:7.2f} MiB of 64 MiB ({100 * total / LIMIT:.0f}%)")
    if not wheels:
        print("  (no wheels yet: python bench/gpu/prepare.py)")
    if total > LIMIT:
        print("prepare: over the 64 MiB a call may carry", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transformers-4", action="store_true", help="also carry transformers 4.57.6's stack")
    parser.add_argument("--size-only", action="store_true", help="only print the carried size")
    args = parser.parse_args()
    if not args.size_only:
        build(args.transformers_4)
    return report()


if __name__ == "__main__":
    sys.exit(main())
