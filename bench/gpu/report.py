"""What the GPU check measured, kept as it goes: `gpu-check.json` and `gpu-check.md` under the output folder are
rewritten after every measurement, so a run cut short (a time limit, a lost machine) keeps what it reached.

A stage runs under a `Budget` (its own seconds, and the run's deadline): its loop asks `budget.spent()` after
each unit of work and stops there, and the stage records how far it got. A stage that raises becomes one
FAILED line (first line of the error; the traceback goes to the JSON) and the next stage still runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import time
import traceback
from pathlib import Path

JSON_NAME, MARKDOWN_NAME = "gpu-check.json", "gpu-check.md"


def first_line(error: BaseException, limit: int = 300) -> str:
    text = (str(error).strip().splitlines() or [""])[0][:limit]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class StageStopped(Exception):
    """A stage found nothing left to do in its budget (recorded as skipped, not failed)."""


class Budget:
    """A stage's time: `seconds` of its own, never past the run's `deadline` (a time.monotonic() value)."""

    def __init__(self, seconds: float, deadline: float):
        self.started = time.monotonic()
        self.end = min(self.started + seconds, deadline)
        self.seconds = seconds

    def spent(self) -> bool:
        return time.monotonic() >= self.end

    def left(self) -> float:
        return max(self.end - time.monotonic(), 0.0)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class Memory:
    """Peak memory of a stage: torch's peak allocation on a GPU, the process's peak resident set on a CPU (which
    cannot be reset: it is the largest so far)."""

    def __init__(self, device: str):
        self.device = device

    def reset(self) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() / 2**30
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20

    @property
    def label(self) -> str:
        return "GiB allocated (torch peak)" if self.device == "cuda" else "GiB resident (process peak so far)"

    def sync(self) -> None:
        if self.device == "cuda":
            import torch

            torch.cuda.synchronize()


class Report:
    """Measurements of a run, one printed line each; JSON and a Markdown table rewritten after each."""

    def __init__(self, out_dir: Path, header: dict):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.header = header
        self.rows: list[dict] = []  # stage, what, value (text)
        self.results: dict[str, dict] = {}  # stage -> its numbers
        self.status: dict[str, str] = {}  # stage -> ok | stopped by its budget at ... | FAILED ... | skipped ...
        self.failures: list[dict] = []
        self.started = time.monotonic()
        self.save()

    def add(self, stage: str, what: str, value: str, **numbers) -> None:
        print(f"{stage} | {what}: {value}", flush=True)
        self.rows.append({"stage": stage, "what": what, "value": value})
        self.results.setdefault(stage, {}).update(numbers)
        self.save()

    def set_status(self, stage: str, status: str) -> None:
        self.status[stage] = status
        print(f"{stage} | status: {status}", flush=True)
        self.save()

    def fail(self, stage: str, error: BaseException) -> None:
        line = first_line(error)
        self.failures.append({"stage": stage, "error": line, "traceback": traceback.format_exc()})
        self.set_status(stage, f"FAILED ({line})")

    @contextlib.contextmanager
    def stage(self, name: str):
        """Run a stage's block: its status becomes ok (unless it set one), skipped or FAILED."""
        print(f"--- {name} (t = {time.monotonic() - self.started:.0f} s)", flush=True)
        try:
            yield
        except StageStopped as stop:
            self.set_status(name, f"skipped ({stop})")
        except Exception as error:
            self.fail(name, error)
        else:
            self.status.setdefault(name, "ok")
            self.save()

    def save(self) -> None:
        elapsed = round(time.monotonic() - self.started, 1)
        document = {
            **self.header,
            "elapsed_s": elapsed,
            "ok": not self.failures,
            "status": self.status,
            "results": self.results,
            "rows": self.rows,
            "failures": self.failures,
        }
        _write(self.out_dir / JSON_NAME, json.dumps(document, indent=1, ensure_ascii=False, default=_plain) + "\n")
        _write(self.out_dir / MARKDOWN_NAME, self.markdown(elapsed))

    def markdown(self, elapsed: float) -> str:
        header = self.header
        lines = [
            f"# GPU check: {header.get('shape_name', '?')} shape, {header.get('dtype', '?')}, {header.get('device')}",
            "",
            f"- card: {header.get('device')} ({header.get('card_rate_text', 'bf16 rate unknown')})",
            f"- software: {header.get('software', '')}",
            f"- commit: {header.get('commit', '?')}; date: {header.get('date', '?')}; elapsed: {elapsed:.0f} s",
            f"- model: {header.get('model_text', '(not built yet)')}",
            f"- prompts: {header.get('prompts_text', '(not built yet)')}",
            "",
            "| stage | measurement | value |",
            "|---|---|---|",
        ]
        lines += [f"| {r['stage']} | {_cell(r['what'])} | {_cell(r['value'])} |" for r in self.rows]
        lines += ["", "| stage | status |", "|---|---|"]
        lines += [f"| {stage} | {_cell(status)} |" for stage, status in self.status.items()]
        if header.get("notes"):
            lines += ["", *[f"- {note}" for note in header["notes"]]]
        return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def billions(count: float) -> str:
    """A parameter count: 8.030B, or 0.53M for the dry run's tiny model."""
    return f"{count / 1e9:.3f}B" if count >= 1e8 else f"{count / 1e6:.2f}M"


def _plain(value):
    """JSON for numpy scalars and arrays, paths and the rest."""
    for method in ("tolist", "item"):
        if hasattr(value, method):
            return getattr(value, method)()
    return str(value)


def _write(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".part")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
