"""The API backend against a real OpenAI-compatible server on localhost (`xmrc serve`, a tiny model through
the HF backend), with injected 429/5xx responses, a missing or wrong key, and a kill -9 mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from helpers import ROOT
from helpers.scale import ForkServer, prompt_table
from xmrc.backends.api import APIBackend, served_model_matches
from xmrc.backends.base import Generation
from xmrc.exceptions import XmrcError
from xmrc.generation import generation_record, run_generation
from xmrc.hub.server import make_server
from xmrc.io import read_parquet

SECRET = "sk-test-9f8e7d6c5b4a-never-print-me"
CONCURRENCY = 3


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCALTEST_")}
    env.update(PYTHONPATH=str(ROOT / "src"), **extra)
    return env


@pytest.fixture(scope="module")
def served(tiny_models):
    """`xmrc serve` on a free port: the first five requests fail (429, 500, 503, 429, 502), then every 7th."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xmrc",
            "serve",
            "--weights",
            tiny_models["llama-chat"],
            "--api-key-env",
            "SERVER_KEY",
            "--faults",
            "429,500,503,429,502",
            "--fault-every",
            "7",
            "--delay",
            "0.02",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(SERVER_KEY=SECRET),
    )
    line = process.stdout.readline()
    assert "listening on" in line, process.stderr.read()
    yield line.split()[-1]
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def api_setup(tmp_path_factory, served):
    root = tmp_path_factory.mktemp("api")
    registry = root / "models.yaml"
    registry.write_text(
        yaml.safe_dump(
            {
                "served-model": {
                    "name": "Served-Model",
                    "hub_id": "tiny-served",
                    "family": "test",
                    "mode": "chat",
                    "chat_template": True,
                    "gpus": 0,
                    "backend": "api",
                    "api_provider": "localtest",
                }
            }
        )
    )
    prompts = root / "prompts.parquet"
    prompt_table(None).to_parquet(prompts)  # API models get the untemplated prompt, as the prompts rule writes
    return root, registry, prompts


def _argv(registry, prompts, out, *extra):
    return [
        "generate-job",
        "--prompts",
        str(prompts),
        "--registry",
        str(registry),
        "--model",
        "served-model",
        "--shots",
        "0",
        "--format",
        "v1",
        "--max-new-tokens",
        "6",
        "--chunk-size",
        "4",
        "--concurrency",
        str(CONCURRENCY),
        "--backoff",
        "0.01",
        *extra,
        "--out",
        str(out),
    ]


def _cli(argv, env):
    return subprocess.run([sys.executable, "-m", "xmrc", *argv], capture_output=True, text=True, env=env, timeout=300)


def _stats(base_url):
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats") as response:
        import json

        return json.loads(response.read())


@pytest.fixture(scope="module")
def api_run(api_setup, served):
    root, registry, prompts = api_setup
    out = root / "generations.parquet"
    result = _cli(_argv(registry, prompts, out), _env(LOCALTEST_API_KEY=SECRET, LOCALTEST_BASE_URL=served))
    return result, out


def test_survives_injected_faults_and_matches_the_hf_backend(api_run, api_setup, served, tiny_models):
    result, out = api_run
    assert result.returncode == 0, result.stderr[-3000:]
    generations = read_parquet(out)
    prompts = read_parquet(api_setup[2])
    assert len(generations) == len(prompts) == 30

    from xmrc.backends.hf import HFBackend
    from xmrc.prompts import hf_chat_template

    local = HFBackend(tiny_models["llama-chat"], dtype="float32", batch_size=1, progress=False)
    template = hf_chat_template(local.tokenizer)
    expected = local.generate([template(p) for p in prompts["prompt"]], 6, True)
    assert generations["raw_output"].tolist() == [g.text for g in expected]
    assert generations["prompt_tokens"].tolist() == [g.prompt_tokens for g in expected]

    stats = _stats(served)
    assert stats["failed"] >= 5 and stats["requests"] >= 30 + stats["failed"]
    assert 1 < stats["max_in_flight"] <= CONCURRENCY


def _served_warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("xmrc: warning:") and "served" in line]


def test_the_served_model_is_recorded_and_matches_without_a_warning(api_run):
    result, out = api_run
    assert generation_record(out)["served_models"] == {"tiny-served": 30}  # `xmrc serve` echoes the request's
    assert "served_models_unrecorded" not in generation_record(out)
    assert _served_warnings(result.stderr) == []


def test_the_key_is_never_printed_or_stored(api_run):
    result, out = api_run
    assert SECRET not in result.stdout + result.stderr
    assert SECRET.encode() not in out.read_bytes()


def test_missing_key_is_one_line_naming_the_variable(api_setup, tmp_path):
    _, registry, prompts = api_setup
    result = _cli(_argv(registry, prompts, tmp_path / "g.parquet"), _env())
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "LOCALTEST_API_KEY is not set" in result.stderr


def test_rejected_key_is_one_line_without_the_key(api_setup, served, tmp_path):
    _, registry, prompts = api_setup
    wrong = "sk-wrong-key-0123456789"
    result = _cli(
        _argv(registry, prompts, tmp_path / "g.parquet"), _env(LOCALTEST_API_KEY=wrong, LOCALTEST_BASE_URL=served)
    )
    assert result.returncode == 2 and "was rejected (HTTP 401" in result.stderr
    assert wrong not in result.stdout + result.stderr and "Traceback" not in result.stderr


def test_gives_up_after_max_retries_and_honours_concurrency():
    server = make_server(None, None, fault_every=1)  # every request fails before reaching a model
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        backend = APIBackend(
            "m",
            "localtest",
            concurrency=2,
            max_retries=2,
            backoff_s=0.0,
            progress=False,
            environ={"LOCALTEST_API_KEY": "key-xyz-123", "LOCALTEST_BASE_URL": f"http://{host}:{port}/v1"},
        )
        with pytest.raises(XmrcError, match=r"gave up after 3 attempts, last: HTTP (429|500)") as error:
            backend.generate(["a", "b"], 4, False)
        assert "key-xyz-123" not in repr(backend) and "\n" not in str(error.value)
        assert server.state.max_in_flight <= 2
    finally:
        server.shutdown()
        server.server_close()


def test_api_model_needs_the_api_backend(api_setup, tmp_path):
    _, registry, prompts = api_setup
    result = _cli(_argv(registry, prompts, tmp_path / "g.parquet", "--backend", "hf"), _env())
    assert result.returncode == 2 and "API model" in result.stderr


def test_killed_api_run_resumes_to_the_same_table(api_run, api_setup, served, tmp_path):
    _, registry, prompts = api_setup
    reference = read_parquet(api_run[1])
    out = tmp_path / "g.parquet"
    env = {"LOCALTEST_API_KEY": SECRET, "LOCALTEST_BASE_URL": served}
    forks = ForkServer()
    try:
        pid = forks.start(_argv(registry, prompts, out), tmp_path / "killed.log", env)
        shard_dir = out.with_name(out.name + ".shards")
        deadline = time.monotonic() + 120
        while len(list(shard_dir.glob("shard-*.parquet"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        forks.wait(pid)
        done = len(list(shard_dir.glob("shard-*.parquet")))
        assert 2 <= done < 8 and not out.exists()
        status = forks.wait(forks.start(_argv(registry, prompts, out), tmp_path / "resumed.log", env))
        assert status == 0, Path(tmp_path / "resumed.log").read_text()[-2000:]
    finally:
        forks.close()
    pd.testing.assert_frame_equal(read_parquet(out), reference)
    assert generation_record(out)["served_models"] == {"tiny-served": 30}  # the killed run's shards' too
    assert SECRET not in (tmp_path / "resumed.log").read_text()


class _Canned:
    """The model behind a test server: every prompt gets the same short answer (no weights needed)."""

    name = "canned"

    def generate(self, prompts, max_new_tokens, templated, stop_when=None):
        return [Generation("Answer: Paris", 7, 3) for _ in prompts]


@contextmanager
def _answering_as(served_model: str | None):
    """The test server (`xmrc.hub.server`) on localhost, its responses naming `served_model` as the model that
    answered (as a provider names the snapshot behind an alias); None: responses without a `model` field."""
    server = make_server(_Canned(), None, api_key=SECRET)

    class Renamed(server.RequestHandlerClass):
        def _send(self, status, payload, headers=None):
            if "choices" in payload:
                payload = {key: value for key, value in payload.items() if key != "model"}
                if served_model is not None:
                    payload["model"] = served_model
            super()._send(status, payload, headers)

    server.RequestHandlerClass = Renamed
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host}:{port}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def plain_prompts():
    return prompt_table(None)  # 30 untemplated prompts


def _api_generation(prompts, requested, base_url, out, backend_wrapper=None):
    backend = APIBackend(
        requested,
        "localtest",
        concurrency=2,
        progress=False,
        environ={"LOCALTEST_API_KEY": SECRET, "LOCALTEST_BASE_URL": base_url},
    )
    return run_generation(
        prompts,
        backend_wrapper(backend) if backend_wrapper else backend,
        out,
        model="Served-Model",
        shots=0,
        prompt_format="v1",
        max_new_tokens=6,
        chunk_size=8,
        progress=False,
    )


@pytest.mark.parametrize(
    "requested, served, differs",
    [
        ("gpt-4o", "gpt-4o-2024-08-06", False),  # a dated snapshot of the requested model
        ("gpt-3.5-turbo", "gpt-3.5-turbo-0125", False),
        ("deepseek-chat", "deepseek-chat", False),  # a match by name (the alias's model: see the registry)
        ("gpt-4o", "gpt-4o-mini-2024-07-18", True),
        ("deepseek-chat", "deepseek-reasoner", True),
    ],
)
def test_served_model_in_the_metadata_and_a_warning_when_it_differs(
    requested, served, differs, plain_prompts, tmp_path, capsys
):
    out = tmp_path / "g.parquet"
    with _answering_as(served) as base_url:
        capsys.readouterr()
        _api_generation(plain_prompts, requested, base_url, out)
    record = generation_record(out)
    assert record["served_models"] == {served: 30} and "served_models_unrecorded" not in record
    assert record["backend"]["model"] == requested
    warnings = _served_warnings(capsys.readouterr().err)
    if differs:
        assert warnings == [
            f"xmrc: warning: {out}: requested model '{requested}' but the provider served '{served}' (30 of 30 prompts)"
        ]
    else:
        assert warnings == []
    assert "served_model" not in read_parquet(out).columns  # the metadata holds it, not the table


def test_a_different_served_model_is_one_warning_line_from_the_command(api_setup, tmp_path):
    _, registry, prompts = api_setup  # requests the registry's hub_id, tiny-served
    out = tmp_path / "g.parquet"
    with _answering_as("tiny-served-v2") as base_url:
        result = _cli(_argv(registry, prompts, out), _env(LOCALTEST_API_KEY=SECRET, LOCALTEST_BASE_URL=base_url))
    assert result.returncode == 0, result.stderr[-3000:]
    assert _served_warnings(result.stderr) == [
        f"xmrc: warning: {out}: requested model 'tiny-served' but the provider served 'tiny-served-v2' "
        f"(30 of 30 prompts)"
    ]
    assert generation_record(out)["served_models"] == {"tiny-served-v2": 30}


def test_prompts_without_a_recorded_served_model_are_counted(plain_prompts, tmp_path, capsys):
    """A shard written before the served model was kept (no column), and responses without `model`."""

    class Stop(Exception):
        pass

    class DiesAfterTwoChunks:
        def __init__(self, backend):
            self.backend, self.name, self.calls = backend, backend.name, 0

        def describe(self):
            return self.backend.describe()

        def generate(self, *args, **kwargs):
            self.calls += 1
            if self.calls == 3:
                raise Stop
            return self.backend.generate(*args, **kwargs)

    out = tmp_path / "g.parquet"
    with _answering_as("gpt-4o-2024-08-06") as base_url:
        with pytest.raises(Stop):
            _api_generation(plain_prompts, "gpt-4o", base_url, out, DiesAfterTwoChunks)
        first = out.with_name(out.name + ".shards") / "shard-00000.parquet"
        table = pq.read_table(first)
        assert "served_model" in table.column_names
        pq.write_table(table.drop_columns(["served_model"]), first)  # as an older xmrc wrote it (same stamp)
    with _answering_as(None) as base_url:  # the rest: responses that name no model
        _api_generation(plain_prompts, "gpt-4o", base_url, out)
    record = generation_record(out)
    assert record["served_models"] == {"gpt-4o-2024-08-06": 8} and record["served_models_unrecorded"] == 22
    assert _served_warnings(capsys.readouterr().err) == []


@pytest.mark.parametrize(
    "requested, served, same",
    [
        ("gpt-4o", "gpt-4o", True),
        ("gpt-4o", "GPT-4o-2024-08-06", True),
        ("gpt-3.5-turbo", "gpt-3.5-turbo-0125", True),
        ("claude-3-5-sonnet", "claude-3-5-sonnet-20241022", True),
        ("gpt-4o", "gpt-4o-mini", False),
        ("gpt-4o", "gpt-4o-mini-2024-07-18", False),
        ("gpt-4", "gpt-4o", False),
        ("gpt-4", "gpt-4-1106-preview", False),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo-0613", False),
        ("gpt-4o", "gpt-4o-2024", False),
        ("deepseek-chat", "deepseek-reasoner", False),
    ],
)
def test_served_model_matches_the_requested_one_or_a_dated_snapshot_of_it(requested, served, same):
    assert served_model_matches(requested, served) is same
