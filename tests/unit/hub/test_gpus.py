"""GPU claims on a machine without SLURM: one process's devices are not another's."""

from __future__ import annotations

import multiprocessing

from xmrc.hub.gpus import claim_gpus


def test_gpu_claims_do_not_overlap_and_respect_an_existing_allocation(tmp_path):
    first: dict = {}
    assert claim_gpus(2, total=3, lock_dir=tmp_path, environ=first) == [0, 1]
    assert first["CUDA_VISIBLE_DEVICES"] == "0,1"
    # another process sees devices 0 and 1 taken; flock is per open file, so test from a child process
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        assert pool.apply(claim_gpus, (1,), {"total": 3, "lock_dir": tmp_path, "environ": {}}) == [2]
        assert pool.apply(claim_gpus, (2,), {"total": 3, "lock_dir": tmp_path, "environ": {}, "wait_s": 0}) is None
    assert claim_gpus(1, total=3, lock_dir=tmp_path, environ={"SLURM_JOB_ID": "7"}) is None
    assert claim_gpus(1, total=3, lock_dir=tmp_path, environ={"CUDA_VISIBLE_DEVICES": "1"}) is None
    assert claim_gpus(0, total=3, lock_dir=tmp_path, environ={}) is None
