"""Run `llamafactory-cli train` so that an interrupted training resumes instead of starting over, then turn its
output into the model directory the evaluation loads (full SFT: the final weights; LoRA: merged by
`llamafactory-cli export`, the adapter kept in `adapter/` for serving it as a LoRA, e.g. vLLM's LoRARequest).

The training's output_dir is a work directory that no Snakemake rule declares as output, so it survives a
failed or killed job; the model directory is assembled beside it (`<out>.partial`) and renamed at the end.
A checkpoint counts as complete once the Trainer has written its trainer_state.json (the last file it saves);
a half-written later checkpoint is removed before resuming from the last complete one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml

from xmrc.exceptions import XmrcError
from xmrc.finetune.lfconfig import export_config
from xmrc.io import read_yaml, write_directory_atomic

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
FINISHED = "train_results.json"  # written by LLaMA-Factory after the last step and the final save
PROVENANCE = "xmrc_finetune.json"
_TRAINING_LOGS = {
    "trainer_log.jsonl",
    "all_results.json",
    "train_results.json",
    "eval_results.json",
    "trainer_state.json",
    "training_args.bin",
    "README.md",
}


def checkpoints(output_dir: str | Path) -> list[tuple[int, Path, bool]]:
    """(step, path, complete) of every checkpoint-N directory, by step."""
    root = Path(output_dir)
    found = []
    if root.is_dir():
        for child in root.iterdir():
            match = _CHECKPOINT.match(child.name)
            if match and child.is_dir():
                found.append((int(match.group(1)), child, (child / "trainer_state.json").is_file()))
    return sorted(found)


def prepare_resume(output_dir: str | Path) -> Path | None:
    """Drop incomplete checkpoints; the last complete one (None: start from scratch)."""
    last = None
    for _, path, complete in checkpoints(output_dir):
        if complete:
            last = path
        else:
            shutil.rmtree(path)
            print(f"removed incomplete checkpoint {path}", file=sys.stderr)
    return last


def llamafactory_cli() -> str:
    """The llamafactory-cli of the running interpreter's environment, else the one on PATH."""
    sibling = Path(sys.executable).with_name("llamafactory-cli")
    return str(sibling) if sibling.is_file() else (shutil.which("llamafactory-cli") or "llamafactory-cli")


def _launcher_env(gpus: int, deepspeed: bool) -> dict:
    env = dict(os.environ)
    if gpus > 1 or deepspeed:
        # LLaMA-Factory starts torchrun itself with one process per GPU (DeepSpeed needs it even on one).
        env.update(FORCE_TORCHRUN="1", NPROC_PER_NODE=str(max(gpus, 1)))
    return env


def _run(command: list[str], env: dict, what: str) -> None:
    try:
        status = subprocess.run(command, env=env).returncode
    except FileNotFoundError:
        raise XmrcError(f"{command[0]}: not found (install llamafactory==0.9.5, see envs/train.yaml)") from None
    if status != 0:
        raise XmrcError(f"{what} failed with exit status {status} (its output is in this job's log)")


def _read_yaml(path: str | Path) -> dict:
    data = read_yaml(path)
    if not isinstance(data, dict) or "output_dir" not in data:
        raise XmrcError(f"{path}: not a LLaMA-Factory train config (no output_dir)")
    return data


def train(train_config: str | Path, gpus: int = 0, cli: str | None = None) -> dict:
    """Train, resuming from the last complete checkpoint; a finished training is not run again."""
    config = _read_yaml(train_config)
    output_dir = Path(config["output_dir"])
    if (output_dir / FINISHED).is_file():
        print(f"{output_dir}: training already finished, not run again", file=sys.stderr)
        return {"resumed_from": None, "skipped": True}
    resume = prepare_resume(output_dir)
    run_config = dict(config)
    if resume is not None:
        run_config["resume_from_checkpoint"] = str(resume)
        print(f"resuming from {resume}", file=sys.stderr)
    output_dir.mkdir(parents=True, exist_ok=True)
    run_path = output_dir / "xmrc_run.yaml"
    run_path.write_text(yaml.safe_dump(run_config, sort_keys=False), encoding="utf-8")
    _run(
        [cli or llamafactory_cli(), "train", str(run_path)],
        _launcher_env(gpus, bool(config.get("deepspeed"))),
        "llamafactory-cli train",
    )
    if not (output_dir / FINISHED).is_file():
        raise XmrcError(f"{output_dir}: llamafactory-cli train ended without {FINISHED}")
    return {"resumed_from": str(resume) if resume else None, "skipped": False}


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)  # full 8B weights: no second copy on disk
    except OSError:
        shutil.copy2(source, target)


def _model_files(output_dir: Path) -> list[Path]:
    return [
        p
        for p in sorted(output_dir.iterdir())
        if p.is_file() and p.name not in _TRAINING_LOGS and not p.name.startswith("xmrc_")
    ]


def finalize(train_config: str | Path, out: str | Path, cli: str | None = None, info: dict | None = None) -> Path:
    """Assemble the evaluated model directory `out` from a finished training (atomically)."""
    config = _read_yaml(train_config)
    output_dir, out = Path(config["output_dir"]), Path(out)
    with write_directory_atomic(out) as partial:
        if config["finetuning_type"] == "lora":
            export = export_config(config, config["model_name_or_path"], output_dir, partial)
            run_path = output_dir / "xmrc_export.yaml"
            run_path.write_text(yaml.safe_dump(export, sort_keys=False), encoding="utf-8")
            _run([cli or llamafactory_cli(), "export", str(run_path)], dict(os.environ), "llamafactory-cli export")
            (partial / "adapter").mkdir(parents=True, exist_ok=True)
            for path in _model_files(output_dir):
                _link_or_copy(path, partial / "adapter" / path.name)
        else:
            partial.mkdir(parents=True)
            for path in _model_files(output_dir):
                _link_or_copy(path, partial / path.name)
        if not (partial / "config.json").is_file():
            raise XmrcError(f"{output_dir}: no model was saved (config.json missing)")
        state = (
            json.loads((output_dir / "trainer_state.json").read_text(encoding="utf-8"))
            if (output_dir / "trainer_state.json").is_file()
            else {}
        )
        provenance = dict(
            info or {},
            method=config["finetuning_type"],
            base=config["model_name_or_path"],
            template=config.get("template"),
            global_step=state.get("global_step"),
            train_loss=next(
                (e.get("train_loss") for e in reversed(state.get("log_history", [])) if "train_loss" in e), None
            ),
            llamafactory_version=_version("llamafactory"),
        )
        (partial / PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return out


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None
