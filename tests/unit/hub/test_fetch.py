"""Snapshots for offline compute nodes: fetch into a hub cache, then prompts and generation with
HF_HUB_OFFLINE=1; gated models without HF_TOKEN and cache misses are one-line errors naming the model.

There is no Hub here, so the cache is laid out as `snapshot_download` leaves it (refs/main -> commit ->
snapshots/<commit>/) with a tiny model, and the real huggingface_hub resolves it in offline mode."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import yaml

from helpers import ROOT
from helpers.scale import DEMONSTRATIONS
from xmrc.config import Registry
from xmrc.exceptions import XmrcError
from xmrc.hub.fetch import read_stamp

COMMIT = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "hf_test_token_do_not_print_4242"
ENTRY = {"family": "test", "mode": "chat", "chat_template": True, "gpus": 1, "backend": "local"}


@pytest.fixture(scope="module")
def hub(tmp_path_factory, tiny_models):
    root = tmp_path_factory.mktemp("hub")
    cache = root / "cache"
    repo = cache / "models--xmrc-test--tiny-llama-chat"
    shutil.copytree(tiny_models["llama-chat"], repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    registry = root / "models.yaml"
    registry.write_text(
        yaml.safe_dump(
            {
                "hub-tiny": {"name": "Hub-Tiny", "hub_id": "xmrc-test/tiny-llama-chat", **ENTRY},
                "gated-tiny": {"name": "Gated-Tiny", "hub_id": "xmrc-test/gated", "gated": True, **ENTRY},
                "absent-tiny": {"name": "Absent-Tiny", "hub_id": "xmrc-test/absent", **ENTRY},
            }
        )
    )
    return root, cache, registry


def xmrc(*argv, **env):
    base = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "HF_HOME": "/nonexistent-hf-home"}
    return subprocess.run(
        [sys.executable, "-m", "xmrc", *map(str, argv)],
        capture_output=True,
        text=True,
        env={**base, **env},
        timeout=300,
    )


def test_fetch_then_prompts_and_generation_offline(hub, tmp_path):
    _root, cache, registry = hub
    stamp = tmp_path / "stamps" / "hub-tiny.json"
    fetched = xmrc(
        "fetch-model",
        "--registry",
        registry,
        "--model",
        "hub-tiny",
        "--cache-dir",
        cache,
        "--out",
        stamp,
        HF_HUB_OFFLINE="1",
        HF_TOKEN=TOKEN,
    )
    assert fetched.returncode == 0, fetched.stderr
    record = json.loads(stamp.read_text())
    assert record["commit"] == COMMIT and record["hub_id"] == "xmrc-test/tiny-llama-chat"
    assert TOKEN not in stamp.read_text() + fetched.stdout + fetched.stderr
    assert read_stamp(stamp)["path"].endswith(COMMIT)

    offline = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    data = tmp_path / "xquad.parquet"
    made = xmrc(
        "data",
        "--source",
        "local",
        "--local-dir",
        ROOT / "data/xquad_subset",
        "--languages",
        "en",
        "de",
        "--out",
        data,
        "--problems",
        tmp_path / "problems.csv",
    )
    assert made.returncode == 0, made.stderr
    prompts = tmp_path / "prompts.parquet"
    built = xmrc(
        "prompts",
        "--data",
        data,
        "--registry",
        registry,
        "--model",
        "hub-tiny",
        "--shots",
        "0",
        "--format",
        "v1",
        "--languages",
        "en",
        "de",
        "--demonstrations",
        *DEMONSTRATIONS,
        "--max-items",
        "2",
        "--out",
        prompts,
        **offline,
    )
    assert built.returncode == 0, built.stderr  # tokenizer and chat template from the cache, offline
    generated = xmrc(
        "generate-job",
        "--prompts",
        prompts,
        "--registry",
        registry,
        "--model",
        "hub-tiny",
        "--snapshot",
        stamp,
        "--shots",
        "0",
        "--format",
        "v1",
        "--backend",
        "hf",
        "--dtype",
        "float32",
        "--max-new-tokens",
        "3",
        "--out",
        tmp_path / "g.parquet",
        **offline,
    )
    assert generated.returncode == 0, generated.stderr
    from xmrc.generation import generation_record

    assert generation_record(tmp_path / "g.parquet")["backend"]["weights"].endswith(COMMIT)


def test_gated_model_without_token_names_the_model(hub, tmp_path):
    _, cache, registry = hub
    result = xmrc(
        "fetch-model",
        "--registry",
        registry,
        "--model",
        "gated-tiny",
        "--cache-dir",
        cache,
        "--out",
        tmp_path / "s.json",
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "model 'gated-tiny' (xmrc-test/gated) is gated" in result.stderr and "HF_TOKEN" in result.stderr


def test_cache_miss_offline_is_one_line(hub, tmp_path):
    _, cache, registry = hub
    result = xmrc(
        "fetch-model",
        "--registry",
        registry,
        "--model",
        "absent-tiny",
        "--cache-dir",
        cache,
        "--out",
        tmp_path / "s.json",
        HF_HUB_OFFLINE="1",
        HF_TOKEN=TOKEN,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "model 'absent-tiny' (xmrc-test/absent): not in the cache" in result.stderr
    assert TOKEN not in result.stderr and not (tmp_path / "s.json").exists()


def test_api_and_tiny_models_have_nothing_to_fetch(tmp_path):
    from xmrc.hub.fetch import fetch_snapshot

    registry = Registry.load(ROOT / "config/models.yaml")
    for key in ("gpt-4o", "tiny-llama-chat"):
        with pytest.raises(XmrcError, match="nothing to fetch"):
            fetch_snapshot(registry.get(key), tmp_path)


def test_stamp_errors(tmp_path):
    with pytest.raises(XmrcError, match="not found"):
        read_stamp(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(XmrcError, match="not a snapshot stamp"):
        read_stamp(bad)
    gone = tmp_path / "gone.json"
    gone.write_text(json.dumps({"path": str(tmp_path / "nowhere")}))
    with pytest.raises(XmrcError, match="is gone"):
        read_stamp(gone)


def test_pin_revisions_writes_the_fetched_commit_and_the_pinned_fetch_still_works(hub, tmp_path):
    _root, cache, _ = hub
    registry = tmp_path / "models.yaml"
    fields = "".join(f"  {k}: {str(v).lower() if isinstance(v, bool) else v}\n" for k, v in ENTRY.items())
    registry.write_text(
        "# the registry's own comments stay\nhub-tiny:\n  name: Hub-Tiny  # as in the paper\n"
        f"  hub_id: xmrc-test/tiny-llama-chat\n{fields}\nother:\n  name: Other\n"
        f"  hub_id: xmrc-test/other\n{fields}"
    )
    stamps = tmp_path / "stamps"
    fetched = xmrc(
        "fetch-model",
        "--registry",
        registry,
        "--model",
        "hub-tiny",
        "--cache-dir",
        cache,
        "--out",
        stamps / "hub-tiny.json",
        HF_HUB_OFFLINE="1",
    )
    assert fetched.returncode == 0, fetched.stderr
    before = registry.read_text()
    dry = xmrc("pin-revisions", "--registry", registry, "--stamps", stamps, "--dry-run")
    assert dry.returncode == 0 and "would pin 1 model(s)" in dry.stdout and registry.read_text() == before

    pinned = xmrc("pin-revisions", "--registry", registry, "--stamps", stamps)
    assert pinned.returncode == 0, pinned.stderr
    text = registry.read_text()
    assert "# the registry's own comments stay" in text and "# as in the paper" in text
    assert Registry.load(registry).get("hub-tiny").revision == COMMIT
    assert Registry.load(registry).get("other").revision is None
    assert text.replace(f"  revision: {COMMIT}\n", "") == before  # one line added, nothing else touched

    again = xmrc(
        "fetch-model",
        "--registry",
        registry,
        "--model",
        "hub-tiny",
        "--cache-dir",
        cache,
        "--out",
        stamps / "hub-tiny.json",
        HF_HUB_OFFLINE="1",
    )
    assert again.returncode == 0, again.stderr  # the pinned revision resolves to the same snapshot
    repeat = xmrc("pin-revisions", "--registry", registry, "--stamps", stamps)
    assert repeat.returncode == 0 and "pinned 0 model(s)" in repeat.stdout and registry.read_text() == text

    registry.write_text(text.replace(COMMIT, "f" * 40))
    conflict = xmrc("pin-revisions", "--registry", registry, "--stamps", stamps)
    assert conflict.returncode == 2 and conflict.stderr.count("\n") == 1
    assert "model 'hub-tiny' is pinned to revision ffff" in conflict.stderr and COMMIT in conflict.stderr


def test_pin_revisions_bad_stamps_are_one_line_errors(tmp_path):
    registry = ROOT / "config/models.yaml"
    empty = xmrc("pin-revisions", "--registry", registry, "--stamps", tmp_path)
    assert empty.returncode == 2 and "no fetch-model stamps" in empty.stderr
    (tmp_path / "llama-3.1-8b.json").write_text(
        json.dumps({"model": "llama-3.1-8b", "hub_id": "someone/else", "commit": COMMIT})
    )
    other = xmrc("pin-revisions", "--registry", registry, "--stamps", tmp_path, "--dry-run")
    assert other.returncode == 2
    assert "fetched from someone/else, the registry names meta-llama/Llama-3.1-8B" in other.stderr
    (tmp_path / "llama-3.1-8b.json").write_text("{not json")
    broken = xmrc("pin-revisions", "--registry", registry, "--stamps", tmp_path, "--dry-run")
    assert broken.returncode == 2 and "llama-3.1-8b.json: not a fetch-model stamp" in broken.stderr
    assert all(r.stderr.count("\n") == 1 for r in (empty, other, broken))
