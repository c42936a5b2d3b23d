"""Shared pieces of the scale-stage tests: a small real prompt table and a fork server for kill tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from helpers import ROOT

DEMONSTRATIONS = ["56dde1d966d3e219004dad8d", "56de49564396321400ee277a"]


def prompt_table(
    weights: str | None,
    languages=("en", "de", "zh"),
    shots: int = 0,
    fmt: str = "v1",
    max_items: int = 6,
    layout=None,
) -> pd.DataFrame:
    """Prompts of the bundled XQuAD subset; chat-templated when `weights` is a chat model's directory. `layout`
    (xmrc.prompts.Layout) defaults to the compact one the real-model measurements were made with."""
    from xmrc import data
    from xmrc.prompts import COMPACT, build_prompt_table, hf_chat_template

    table, _ = data.prepare(data.load_local(ROOT / "data" / "xquad_subset", languages), languages)
    template = None
    if weights is not None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(weights)
        template = hf_chat_template(tokenizer) if tokenizer.chat_template else None
    return build_prompt_table(
        table, languages, shots, fmt, DEMONSTRATIONS, template, max_items, layout=layout or COMPACT
    )


class ForkServer:
    """A child Python that imports torch/transformers/xmrc once and forks one process per `xmrc` command,
    so a test can SIGKILL real generation processes many times without paying the imports each time."""

    SCRIPT = r"""
import json, os, sys
import torch, transformers  # noqa: F401 - imported once, before any fork
import xmrc.backends.hf, xmrc.cli, xmrc.generation  # noqa: F401
for line in sys.stdin:
    request = json.loads(line)
    if request["op"] == "run":
        pid = os.fork()
        if pid == 0:
            fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1); os.dup2(fd, 2)
            os.environ.update(request.get("env", {}))
            code = 1
            try:
                code = xmrc.cli.main(request["argv"])
            finally:
                sys.stdout.flush(); sys.stderr.flush()
                os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)
    elif request["op"] == "wait":
        _, status = os.waitpid(request["pid"], 0)
        print(json.dumps({"status": status}), flush=True)
"""

    def __init__(self):
        env = {"PYTHONPATH": str(ROOT / "src"), "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
        import os

        self.process = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
        )

    def _ask(self, request: dict) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def start(self, argv: list[str], log: Path, env: dict | None = None) -> int:
        return self._ask({"op": "run", "argv": argv, "log": str(log), "env": env or {}})["pid"]

    def wait(self, pid: int) -> int:
        return self._ask({"op": "wait", "pid": pid})["status"]

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=30)
