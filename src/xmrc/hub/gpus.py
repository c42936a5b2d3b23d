"""GPU pick for jobs on one workstation (profiles/local): each job locks the devices it uses.

Snakemake's `resources: gpu=N` bounds how many GPUs jobs ask for together, but not which ones they use: two
1-GPU jobs would both see every GPU and both start on device 0. A job that has no scheduler allocation
(no SLURM job, no CUDA_VISIBLE_DEVICES) takes free devices under exclusive `flock`s and sets
CUDA_VISIBLE_DEVICES before CUDA initialises. The kernel drops the locks when the process ends, even by
SIGKILL, so a killed job never leaves a device blocked.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

_held: list = []  # open lock files, kept for the life of the process


def visible_gpu_count() -> int:
    if shutil.which("nvidia-smi") is None:
        return 0
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return sum(line.startswith("GPU ") for line in listing.stdout.splitlines())


def claim_gpus(
    count: int,
    total: int | None = None,
    lock_dir: str | Path | None = None,
    environ: dict | None = None,
    wait_s: float = 3600.0,
) -> list[int] | None:
    """Lock `count` free devices and export them in CUDA_VISIBLE_DEVICES; None where a scheduler (or the
    user) already chose the devices, or there is nothing to choose from."""
    environ = os.environ if environ is None else environ
    if count <= 0 or environ.get("CUDA_VISIBLE_DEVICES") is not None or environ.get("SLURM_JOB_ID"):
        return None
    total = visible_gpu_count() if total is None else total
    if total < count:
        return None
    lock_dir = Path(lock_dir or Path(tempfile.gettempdir()) / "xmrc-gpu-locks")
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    while True:
        taken = []
        for device in range(total):
            handle = open(lock_dir / f"gpu{device}.lock", "a")  # noqa: SIM115 (held open: the lock lives as long as the claim)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            taken.append((device, handle))
            if len(taken) == count:
                _held.extend(handle for _, handle in taken)
                devices = [device for device, _ in taken]
                environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, devices))
                return devices
        for _, handle in taken:
            handle.close()  # releases the lock
        if time.monotonic() > deadline:
            return None
        time.sleep(2)
