"""Damaged files, for real: a checkpoint shard of a killed generation job cut short or overwritten, a Parquet
table between two steps cut short, a model directory or hub snapshot missing a file or holding one cut short.
Each is detected, never read as valid: a shard is recomputed with one warning line naming it, and the resumed
job writes the table an uninterrupted run writes; a table or a model is refused in one error line naming the
file (exit status 2), never a traceback, within seconds. Real `xmrc` commands, forked from one process that
imported torch once (helpers.scale.ForkServer); the tiny Llama chat model on the HF backend.

Bytes changed inside a file without changing its size are caught too: every Parquet file is written with page
checksums and read verifying them (xmrc.io), and an .npy shard's stamp holds the digest of its bytes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from helpers import ROOT
from helpers.inotify import MovedInto
from helpers.scale import ForkServer, prompt_table
from xmrc.io import read_parquet

pytestmark = pytest.mark.slow

CHUNKS = 30  # prompts, one per checkpoint shard
DETECT_S = 15  # a refused run must end within this many seconds of its start (no hang, no model loaded)
MODEL = "tiny-llama-chat"


@pytest.fixture(scope="module")
def server():
    forks = ForkServer()
    yield forks
    forks.close()


def run(server: ForkServer, argv: list[str], log: Path) -> tuple[int, str, float]:
    """`xmrc argv` in a fork: (exit status, its stdout and stderr, seconds from start to exit)."""
    started = time.monotonic()
    status = server.wait(server.start([str(arg) for arg in argv], log))
    seconds = time.monotonic() - started
    assert os.WIFEXITED(status), f"killed by signal {os.WTERMSIG(status)}"
    return os.WEXITSTATUS(status), log.read_text(), seconds


def xmrc_lines(text: str) -> list[str]:
    """xmrc's own messages (warnings, errors), one a line, without the progress bar a warning may follow on its
    line (xmrc.jobs prints it while the job's bar is drawn)."""
    return [line[line.index("xmrc: ") :] for line in text.splitlines() if "xmrc: " in line]


def assert_refused(result: tuple[int, str, float], line: str) -> None:
    """Exit status 2, the single line `line` as all the output, no traceback, within DETECT_S seconds."""
    status, text, seconds = result
    assert "Traceback" not in text, text[-3000:]
    assert status == 2 and text.splitlines() == [line], text[-3000:]
    assert seconds < DETECT_S, f"refused after {seconds:.1f} s"


@pytest.fixture(scope="module")
def job(server, tiny_models, tmp_path_factory):
    """`argv(out, weights)` of a real generation job (CHUNKS shards of one prompt) and an uninterrupted run of it:
    its table and that table's scores."""
    root = tmp_path_factory.mktemp("damaged_files")
    weights = str(tiny_models["llama-chat"])
    prompts = root / "prompts.parquet"
    prompt_table(weights).to_parquet(prompts)

    def argv(out: Path, model_weights: str | Path = weights, *extra: str) -> list[str]:
        return [
            *("generate-job", "--prompts", prompts, "--registry", "config/models.yaml", "--model", MODEL),
            *("--weights", model_weights, *extra, "--shots", "0", "--format", "v1", "--backend", "hf"),
            *("--dtype", "float32", "--max-new-tokens", "4", "--batch-size", "1", "--chunk-size", "1"),
            *("--out", out),
        ]

    out = root / "baseline.parquet"
    status, text, seconds = run(server, argv(out), root / "baseline.log")
    assert status == 0 and "Traceback" not in text, text[-3000:]
    scores = root / "baseline_scores.parquet"
    status, text, _ = run(server, score_argv(out, scores), root / "baseline_scores.log")
    assert status == 0, text[-3000:]
    table = read_parquet(out)
    assert len(table) == CHUNKS
    print(f"uninterrupted generation job: {seconds:.1f} s")
    return SimpleNamespace(argv=argv, weights=Path(weights), table=table, scores=read_parquet(scores), root=root)


def score_argv(generations: Path, out: Path) -> list:
    """The score rule's command (workflow/rules/score.smk)."""
    return ["score", "--generations", generations, "--normalization", "mlqa", "--out", out]


# ---------------------------------------------------------------- checkpoint shards of a killed job


def killed_after_shards(server, argv: list, shards: Path, log: Path, count: int = 3) -> list[str]:
    """Start the job, SIGKILL it once `count` shards are written: the names of the shards it left."""
    pid = server.start([str(arg) for arg in argv], log)
    deadline = time.monotonic() + 60
    while len(list(shards.glob("shard-*.parquet"))) < count:
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.002)
    os.kill(pid, signal.SIGKILL)
    server.wait(pid)
    return sorted(path.name for path in shards.glob("shard-*.parquet"))


def change_a_value(path: Path) -> None:
    """One character of a gold answer changed inside a Parquet file (same size): its first string value."""
    gold = pq.read_table(path, columns=["gold"]).column("gold")[0].as_py().encode()
    data = bytearray(path.read_bytes())
    at = data.find(gold)
    assert at >= 0, "the answer is not stored verbatim"
    data[at] = ord("X") if data[at] != ord("X") else ord("Y")
    path.write_bytes(bytes(data))
    assert pq.read_table(path).column("gold")[0].as_py().encode() != gold  # read back as valid, changed


DAMAGES = {
    "truncated": lambda data: data[: len(data) // 2],
    "garbage_same_size": lambda data: np.random.default_rng(0).bytes(len(data)),
}


@pytest.mark.parametrize(
    "damage",
    ["truncated", "garbage_same_size", "value_changed_same_size"],
)
def test_a_damaged_shard_of_a_killed_job_is_recomputed_with_one_warning(damage, server, job, tmp_path):
    out = tmp_path / "results/generations" / MODEL / "0shot-v1.parquet"
    shards = out.with_name(out.name + ".shards")
    kept = killed_after_shards(server, job.argv(out), shards, tmp_path / "killed.log")
    assert 3 <= len(kept) < CHUNKS and not out.exists(), kept
    victim = shards / "shard-00001.parquet"
    if damage == "value_changed_same_size":
        change_a_value(victim)
    else:
        size = victim.stat().st_size
        victim.write_bytes(DAMAGES[damage](victim.read_bytes()))
        assert (victim.stat().st_size == size) == (damage == "garbage_same_size")

    moved = MovedInto(shards)
    status, text, seconds = run(server, job.argv(out), tmp_path / "resumed.log")
    recomputed = set(moved.names())
    print(f"{damage}: {len(kept)} shards kept, resumed in {seconds:.1f} s")
    assert status == 0 and "Traceback" not in text, text[-3000:]
    pd.testing.assert_frame_equal(read_parquet(out), job.table)  # nothing lost, nothing damaged kept
    assert recomputed == {victim.name} | {f"shard-{n:05d}.parquet" for n in range(CHUNKS)} - set(kept)
    reason = "unreadable (OSError)" if damage == "value_changed_same_size" else "unreadable (ArrowInvalid)"
    reused = len(kept) - 1
    assert xmrc_lines(text) == [
        f"xmrc: warning: {victim}: {reason}; recomputing the chunk",
        f"xmrc: resumed {shards}: {reused} of {CHUNKS} chunks from their shards, {CHUNKS - reused} computed",
    ]
    assert not shards.exists()


def test_an_array_shard_with_bytes_changed_is_recomputed(tmp_path, capsys):
    """The array jobs (layer-relevance, layer-hidden) checkpoint through ArrayStore: a shard cut short is
    recomputed (tests/unit/test_jobs.py), one with a value changed inside (same size) is reused today."""
    from xmrc.jobs import ArrayStore, Checkpoint, run_sharded, shard_dir

    items, computed = [f"item{n}" for n in range(4)], []

    def compute(chunk):
        computed.append(list(chunk))
        return np.array([[int(item.removeprefix("item")), 0.5] for item in chunk], dtype=np.float16)

    def job(output):
        checkpoint = Checkpoint(output, {"job": "arrays"}, 2, "arrays", progress=False)
        write = lambda arrays: np.concatenate([np.array(array) for array in arrays])  # noqa: E731
        return run_sharded(items, items, compute, ArrayStore((2,), "float16"), write, checkpoint)

    output = tmp_path / "h.npy"
    reference = job(tmp_path / "reference.npy")
    computed.clear()
    with pytest.MonkeyPatch.context() as patch:  # a job killed after its shards were written
        patch.setattr("xmrc.jobs.close_shard_dir", lambda output: None)
        job(output)
    victim = shard_dir(output) / "shard-00001.npy"
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0x80  # the last value's sign bit (float16, little-endian): same size and header, -0.5
    victim.write_bytes(bytes(data))
    computed.clear()
    capsys.readouterr()
    result = job(output)
    assert computed == [["item2", "item3"]] and f"{victim}: " in capsys.readouterr().err
    np.testing.assert_array_equal(result, reference)


# ---------------------------------------------------------------- a table between steps cut short


def test_a_generations_table_cut_short_is_refused_by_scoring_and_regenerated_identically(server, job, tmp_path):
    """Snakemake cannot tell: the file exists and is newer than its inputs. The score job fails with the line
    in its log; the user deletes the file (or reruns with `--forcerun generate`) and the rerun regenerates it."""
    generations = tmp_path / "results/generations" / MODEL / "0shot-v1.parquet"
    scores = tmp_path / "results/scores" / MODEL / "0shot-v1.parquet"
    generations.parent.mkdir(parents=True)
    data = (job.root / "baseline.parquet").read_bytes()
    generations.write_bytes(data[: len(data) // 2])
    result = run(server, score_argv(generations, scores), tmp_path / "score.log")
    print(f"scoring refused the table cut short in {result[2]:.1f} s")
    assert_refused(result, f"xmrc: error: {generations}: not a readable Parquet table (ArrowInvalid)")
    assert not scores.parent.exists() or not any(scores.parent.iterdir())  # no output, no partial file

    generations.unlink()  # what the user does; then the workflow runs the generation job again
    status, text, _ = run(server, job.argv(generations), tmp_path / "regenerated.log")
    assert status == 0 and "Traceback" not in text, text[-3000:]
    pd.testing.assert_frame_equal(read_parquet(generations), job.table)
    status, text, _ = run(server, score_argv(generations, scores), tmp_path / "rescored.log")
    assert status == 0, text[-3000:]
    pd.testing.assert_frame_equal(read_parquet(scores), job.scores)


def test_a_generations_table_with_a_value_changed_is_refused_by_scoring(server, job, tmp_path):
    generations = tmp_path / "generations.parquet"
    shutil.copy(job.root / "baseline.parquet", generations)
    change_a_value(generations)
    result = run(server, score_argv(generations, tmp_path / "scores.parquet"), tmp_path / "score.log")
    assert result[0] == 2 and "Traceback" not in result[1], "scored as valid"
    assert result[1].splitlines()[0].startswith(f"xmrc: error: {generations}: not a readable Parquet table (")


# ---------------------------------------------------------------- a model directory or snapshot damaged


def _cut_short(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


SNAPSHOT_DAMAGES = {  # file, damage -> what the line says the directory ...
    ("model.safetensors", "deleted"): "lacks model.safetensors",
    ("config.json", "deleted"): "lacks config.json",
    ("tokenizer.json", "deleted"): "lacks tokenizer.json",
    ("tokenizer_config.json", "deleted"): "lacks tokenizer_config.json",
    ("model.safetensors", "cut_short"): "has a truncated model.safetensors ({size} of {whole} bytes)",
    ("config.json", "cut_short"): "has an unreadable config.json (not whole JSON: JSONDecodeError)",
}


def damage_file(path: Path, damage: str) -> dict:
    """`path` deleted or cut to half its size: its sizes, whole and now, for the message."""
    whole = path.stat().st_size
    if damage == "deleted":
        path.unlink()
    else:
        _cut_short(path)
    return {"whole": whole, "size": whole // 2}


@pytest.mark.parametrize("name, damage", list(SNAPSHOT_DAMAGES), ids=lambda value: value)
def test_a_damaged_model_directory_is_refused_in_one_line(name, damage, server, job, tmp_path):
    weights = tmp_path / "tiny_models" / MODEL
    shutil.copytree(job.weights, weights)
    sizes = damage_file(weights / name, damage)
    out = tmp_path / "generations.parquet"
    result = run(server, job.argv(out, weights), tmp_path / "refused.log")
    problem = SNAPSHOT_DAMAGES[name, damage].format(**sizes)
    print(f"{name} {damage}: refused in {result[2]:.2f} s")
    assert_refused(
        result,
        f"xmrc: error: model '{MODEL}': weights directory {weights} {problem}; damaged or incomplete: delete it "
        "and rerun: the workflow builds it again",
    )
    assert not out.exists() and not out.with_name(out.name + ".shards").exists()


def hub_cache_snapshot(weights: Path, cache: Path, commit: str = "0" * 40) -> Path:
    """`weights` laid out as `huggingface_hub.snapshot_download` leaves a snapshot: files in blobs/, linked from
    snapshots/<commit>/. Returns the snapshot directory."""
    repo = cache / "models--xmrc--tiny-llama-chat"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for path in sorted(weights.iterdir()):
        blob = repo / "blobs" / f"blob-of-{path.name}"
        shutil.copy(path, blob)
        (snapshot / path.name).symlink_to(os.path.relpath(blob, snapshot))
    return snapshot


@pytest.mark.parametrize(
    "damage, problem",
    [
        ("blob_gone", "has a broken link tokenizer.json (its file in the cache is gone)"),
        ("blob_cut_short", "has a truncated model.safetensors ({size} of {whole} bytes)"),
    ],
)
def test_a_damaged_hub_snapshot_is_refused_in_one_line(damage, problem, server, job, tmp_path):
    """The workflow's generation jobs load hub models from the snapshot a stamp of `xmrc fetch-model` names."""
    snapshot = hub_cache_snapshot(job.weights, tmp_path / "hub")
    stamp = tmp_path / "stamps" / f"{MODEL}.json"
    stamp.parent.mkdir()
    stamp.write_text(json.dumps({"model": MODEL, "hub_id": "xmrc/tiny", "revision": None, "path": str(snapshot)}))
    name = "tokenizer.json" if damage == "blob_gone" else "model.safetensors"
    blob = (snapshot / name).resolve()
    sizes = damage_file(blob, "deleted" if damage == "blob_gone" else "cut_short")
    out = tmp_path / "generations.parquet"
    result = run(server, job.argv(out, job.weights, "--snapshot", str(stamp)), tmp_path / "refused.log")
    print(f"hub snapshot, {damage}: refused in {result[2]:.2f} s")
    assert_refused(
        result,
        f"xmrc: error: model '{MODEL}': snapshot {snapshot} {problem.format(**sizes)}; damaged or incomplete: "
        f"delete {tmp_path / 'hub' / 'models--xmrc--tiny-llama-chat'} and {stamp}, then fetch it again",
    )
    assert not out.exists()


def test_the_prompts_step_refuses_a_model_directory_without_its_tokenizer(server, job, tmp_path):
    """The first step that opens a model directory (for its chat template) refuses it before any output."""
    from xmrc import data

    languages = ("en", "de")
    table, _ = data.prepare(data.load_local(ROOT / "data" / "xquad_subset", languages), languages)
    table.to_parquet(tmp_path / "data.parquet")
    weights = tmp_path / "tiny_models" / MODEL
    shutil.copytree(job.weights, weights)
    (weights / "tokenizer.json").unlink()
    out = tmp_path / "prompts.parquet"
    argv = [
        *("prompts", "--data", tmp_path / "data.parquet", "--registry", "config/models.yaml", "--model", MODEL),
        *("--weights", weights, "--shots", "0", "--format", "v1", "--languages", *languages),
        *("--demonstrations", "a", "b", "--out", out),
    ]
    assert_refused(
        run(server, argv, tmp_path / "prompts.log"),
        f"xmrc: error: model '{MODEL}': weights directory {weights} lacks tokenizer.json; damaged or incomplete",
    )
    assert not out.exists()
