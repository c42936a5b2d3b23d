"""Running the workflow and the CLI the way users and rules do: subprocesses in a copy of the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import yaml

from helpers import ROOT
from xmrc.io import read_parquet

WORKFLOW_PARTS = ("Snakefile", "workflow", "config", "data", "src", "envs")


def copy_workflow(destination: Path, parts=WORKFLOW_PARTS) -> Path:
    """A copy of the workflow, so runs never touch the developer's results/ or .snakemake/."""
    destination.mkdir(parents=True, exist_ok=True)
    for part in parts:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(
                source, destination / part, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            shutil.copy(source, destination / part)
    return destination


def with_venv_on_path(base: Mapping[str, str] = os.environ) -> dict[str, str]:
    """`base` with this interpreter's bin first on PATH (its snakemake, and the rules' `python`)."""
    return dict(base, PATH=f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}")


def snakemake(
    *args, cwd: Path, env: Mapping[str, str] | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess:
    """The one way tests run Snakemake: under this interpreter, in `cwd`. By default in a bare environment (this
    interpreter's bin, /usr/bin and /bin on PATH; HOME in `cwd`), so a developer's settings cannot change the run;
    `env` where a test needs the caller's (e.g. a SLURM cluster's tools)."""
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(cwd)} if env is None else env
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=timeout,
    )


def xmrc(*args, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xmrc", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit status 2 and exactly one stderr line `xmrc: error: ...` holding every fragment."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xmrc: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def assert_smoke_outputs(checkout: Path, config: str = "config/smoke.yaml") -> None:
    """Every stage of the study left its outputs after a run of the smoke config in `checkout`."""
    smoke = yaml.safe_load((checkout / config).read_text())
    results = checkout / "results" / smoke["run"]
    tables = results / "tables"
    scores = pd.read_csv(tables / "direction_scores.csv")
    assert list(scores.columns) == ["model", "shots", "prompt_format", "context_lang", "question_lang", "n", "em", "f1"]
    skipped = {shots: set() for shots in smoke["shots"]}
    for skip in smoke.get("skip_models", []):
        skipped.setdefault(skip["shots"], set()).update(skip["models"])
    rows = {shots: [key for key in smoke["models"] if key not in skipped[shots]] for shots in smoke["shots"]}
    assert len(scores) == sum(len(keys) for keys in rows.values()) * len(smoke["prompt_formats"]) * 23
    assert (scores["n"] == smoke["data"]["max_items"]).all()
    assert scores["f1"].between(0, 100).all()
    registry = yaml.safe_load((checkout / "config/models.yaml").read_text())
    for shots in smoke["shots"]:
        summary = pd.read_csv(tables / f"summary_{shots}shot.csv")
        assert sorted(summary["model"]) == sorted(registry[key]["name"] for key in rows[shots])
        assert set(summary["prompt_format"]) <= set(smoke["prompt_formats"])
        for scenario in ("en-x", "x-x"):
            assert (tables / f"f1_{shots}shot_{scenario}.md").read_text().startswith("| model |")
            png = results / f"figures/heatmap_f1_{shots}shot_{scenario}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for key in smoke["models"]:
        kind = registry[key].get("source", "hub")
        weights = checkout / ("resources/tiny_models" if kind == "tiny" else "resources/finetuned") / key
        assert (weights / "config.json").exists() and (weights / "tokenizer.json").exists()
    # every stage of the study ran: error types, oracle (Table 3), layer-wise analysis, finetune comparison
    assert len(pd.read_csv(tables / "error_summary_2shot_en-x.csv")) == len(smoke["models"])
    assert set(pd.read_csv(tables / "oracle_summary.csv")["model"]) == {
        registry[key]["name"] for key in smoke["oracle"]["models"]
    }
    for name in ("mrd.csv", "similarity.csv"):
        assert len(pd.read_csv(results / "layers" / name)) > 0
    assert list((results / "figures/layers").rglob("*.png"))
    for model in smoke["layers"]["models"]:  # every explained token is the first of an extracted answer
        stem = f"{model}/{smoke['layers']['shots']}shot-{smoke['layers']['prompt_formats'][0]}"
        relevance = read_parquet(results / f"layers/relevance/{stem}.parquet")
        explained = relevance[relevance["target_status"] == "answer"]
        assert set(relevance["target_status"]) <= {"answer", "empty_answer", "unaligned"} and len(explained)
        assert (explained["target_id"] >= 0).all()
        # per-token relevance of the first item only (example_items: 1), wherever its answer was explained
        tokens = read_parquet(results / f"layers/relevance/{stem}.tokens.parquet")
        assert set(tokens["id"]) == set(explained["id"]) & {relevance["id"].iloc[0]}
        png = results / f"figures/layers/{stem}/attribution_example.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (results / "figures/finetune_comparison_2shot.png").exists()
    # the paper comparison: no model of the paper in the smoke run, so zero cells, and the summary says why
    assert pd.read_csv(tables / "paper_comparison.csv").empty
    notes = pd.read_csv(tables / "paper_comparison_summary.csv")["note"]
    assert (notes == "no model of this run is the paper's").sum() >= 10 and notes.notna().all()
    assert "No published cell compared" in (tables / "paper_comparison.md").read_text()
    assert (results / "figures/paper_comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the main tables as HTML pages for the report
    for stem in (
        "summary_2shot",
        "paper_comparison_summary",
        "error_summary_2shot_en-x",
        "oracle_summary",
        "finetune/comparison_2shot",
    ):
        assert "<table" in (results / "report" / f"{stem}.html").read_text()
