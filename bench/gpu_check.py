"""GPU check: the two real packaged models on HF and vLLM on one CUDA device, against a CPU reference.

What it runs (one CUDA device; under 10 minutes on one H200, most of it vLLM's two engine starts):
1. converts, if missing, the registry's real packaged models (config/models.yaml: `smollm2-135m-instruct`,
   chat; `gemma3-270m`, base, its GGUF in four chunk packages) into resources/packaged/<key>, as the
   workflow's `xmrc convert-gguf` does;
2. builds real XQuAD prompts from data/xquad_subset with the package's own functions (2-shot v1, the runs'
   demonstrations; default 9 directions x 8 items: en-en, en-de, en-zh, en-ar, en-th, de-de, zh-zh, ar-ar,
   th-th);
3. generates them as the workflow's generation job does (`xmrc.generation.run_generation`: prefix order,
   the answer stop rule, answer extraction; greedy, 24 new tokens, float32) with the HF backend on CUDA and
   the vLLM backend on CUDA (`xmrc.backends.vllm.VLLMBackend`, whose GPU settings come from
   `platform_settings`), in a child process under the vLLM environment (.venv-gpu), one engine per model;
   it times both (prompts/s; model load and engine start apart) and compares them (identical predictions,
   F1 with `xmrc.scoring`); the vLLM child also checks the tokenizer under vLLM's transformers;
4. with `--cpu-reference FILE`, compares both backends' predictions (and the MRD values) with those made on
   CPU for the same prompts (rows whose prompt text differs are left out);
5. runs the layer analysis on the first `--layer-items` items' en-x prompts on the GPU (AttnLRP relevance
   and pooled hidden states, `xmrc.analysis.layers`, as `xmrc layer-relevance` / `layer-hidden` call them,
   explaining the HF outputs) and prints its time and the MRD of every part.

It prints one line per measurement and writes them as JSON to `--out` (default gpu-check.json), rewritten
after every measurement, so a run cut short still leaves what it measured. A stage that fails is reported
as a FAILED line (the traceback goes into the JSON) and the rest still runs; the exit code is then 1.
Without a CUDA device it stops at once: `gpu-check: no CUDA device (...)`, exit code 2.

    make gpu-check                   # builds .venv and .venv-gpu (vllm==0.32.0) if missing, then runs this;
                                     # passes --cpu-reference bench/gpu_check_reference.json when it exists
    .venv/bin/python bench/gpu_check.py [--cpu-reference FILE] [--out gpu-check.json] [--items 8]

The CPU reference, written on a CPU machine (HF backend only, float32, same prompts; plus the layer
analysis' MRD on CPU; a few hundred short strings), to be committed as bench/gpu_check_reference.json:

    .venv/bin/python bench/gpu_check.py --write-reference bench/gpu_check_reference.json

`--cpu-reference` also takes a Parquet table of predictions (columns model, context_lang, question_lang, id,
prediction; e.g. a workflow generation table), compared on the keys it shares with this run.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import io
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
MODELS = ["smollm2-135m-instruct", "gemma3-270m"]
DIRECTIONS = ["en-en", "en-de", "en-zh", "en-ar", "en-th", "de-de", "zh-zh", "ar-ar", "th-th"]
SHOTS, FORMAT = 2, "v1"
KEY = ["context_lang", "question_lang", "id"]
REFERENCE_KIND = "xmrc gpu-check CPU reference"
SHUTDOWN_GRACE_S = 30  # seconds a worker may take to shut its engine down once its result is written


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:300]}" if text else type(error).__name__


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


# --- the report ---------------------------------------------------------------------------------------------


class Report:
    """Measurements, one printed line each, kept as JSON in `path` (rewritten after each one)."""

    def __init__(self, path: Path | None, header: dict):
        self.path, self.header = path, header
        self.measurements: list[dict] = []
        self.failures: list[dict] = []

    def add(self, name: str, line: str, **values) -> None:
        print(f"{name}: {line}", flush=True)
        self.measurements.append({"name": name, "line": line, **values})
        self.save()

    def fail(self, name: str, error: BaseException) -> None:
        self.add(name, f"FAILED ({_first_line(error)})", failed=True)
        trace = traceback.format_exc() if sys.exc_info()[0] else ""
        self.failures.append({"name": name, "error": _first_line(error), "traceback": trace})
        self.save()

    @contextlib.contextmanager
    def stage(self, name: str):
        """Run a block; a failure becomes a FAILED line and the report goes on."""
        try:
            yield
        except Exception as error:
            self.fail(name, error)

    def save(self) -> None:
        if self.path is None:
            return
        from xmrc.io import write_text

        value = {**self.header, "ok": not self.failures, "measurements": self.measurements}
        value["failures"] = self.failures
        write_text(json.dumps(value, indent=1, ensure_ascii=False, default=str) + "\n", self.path)


# --- the vLLM side (a child process under the vLLM environment) ---------------------------------------------


def _worker(spec_file: str) -> None:
    """Under the vLLM python: check the tokenizer, start one engine, run the generation job; results as JSON
    in the spec's "result" (vLLM logs to stdout too)."""
    import torch
    import transformers
    import vllm

    from xmrc.backends.vllm import VLLMBackend
    from xmrc.generation import run_generation
    from xmrc.hub.packaged import check_tokenizer
    from xmrc.io import read_table

    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    result = {
        "versions": {"vllm": vllm.__version__, "torch": torch.__version__, "transformers": transformers.__version__}
    }
    try:
        result["tokenizer"] = check_tokenizer(spec["weights"])
    except Exception as error:  # XmrcError names the text that fails; anything else is reported the same way
        result["tokenizer_error"] = _first_line(error)
    started = time.perf_counter()
    backend = VLLMBackend(
        spec["weights"], dtype=spec["dtype"], gpu_memory_utilization=spec["gpu_memory_utilization"], progress=False
    )
    result["start_s"] = time.perf_counter() - started
    result["engine"] = backend.describe()["engine"]
    prompts = read_table(spec["prompts"])
    begin = time.perf_counter()
    run_generation(
        prompts,
        backend,
        spec["out"],
        model=spec["model"],
        shots=SHOTS,
        prompt_format=FORMAT,
        max_new_tokens=spec["max_new_tokens"],
        progress=False,
    )
    result["generate_s"] = time.perf_counter() - begin
    Path(spec["result"]).write_text(json.dumps(result, default=str), encoding="utf-8")


def run_vllm(python: str, spec: dict, work: Path, timeout: float) -> tuple[dict, object]:
    """(the worker's result, its generation table); the worker's log tail in the error if it fails."""
    from xmrc.io import read_table

    name = Path(spec["out"]).stem
    spec_file, result_file, log_file = (work / f"{name}.{suffix}" for suffix in ("spec.json", "result.json", "log"))
    spec = spec | {"result": str(result_file)}
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    begin, code = time.monotonic(), None
    with log_file.open("wb") as log:
        child = subprocess.Popen(
            [python, __file__, "--worker", str(spec_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            start_new_session=True,  # the engine core is a child of the worker: they end together
        )
        written = None
        while (code := child.poll()) is None:
            if written is None and result_file.is_file():
                written = time.monotonic()
            if time.monotonic() - begin > timeout or (written and time.monotonic() - written > SHUTDOWN_GRACE_S):
                code = f"killed after {time.monotonic() - begin:.0f} s"
                break
            time.sleep(0.5)
        with contextlib.suppress(ProcessLookupError):  # what is left of the worker's process group
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    if not result_file.is_file() or not Path(spec["out"]).is_file():
        tail = log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-25:] or [""]
        raise RuntimeError(f"vLLM worker failed (exit {code}): {tail[-1][:200]}\n" + "\n".join(tail))
    return json.loads(result_file.read_text(encoding="utf-8")), read_table(spec["out"])


# --- the steps ----------------------------------------------------------------------------------------------


def cuda_or_exit():
    """torch, with a CUDA device, or the one-line message and exit code 2."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import torch

            available = torch.cuda.is_available()
    except Exception as error:  # torch missing or broken
        print(f"gpu-check: no CUDA device (torch cannot be imported: {_first_line(error)})", file=sys.stderr)
        sys.exit(2)
    if not available:
        build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
        print(
            f"gpu-check: no CUDA device (torch {torch.__version__}, {build}: torch.cuda.is_available() is False; "
            "on CPU only --write-reference runs)",
            file=sys.stderr,
        )
        sys.exit(2)
    return torch


def ensure_weights(model, packaged_dir: Path, report: Report) -> Path:
    """The converted snapshot of a packaged model, converted first when missing."""
    from xmrc.config import model_weights
    from xmrc.hub.packaged import convert_packaged_model

    weights = Path(model_weights(model, packaged_dir=packaged_dir))
    if (weights / "config.json").is_file():
        report.add(f"convert {model.key}", f"present ({weights})", model=model.key, seconds=0.0)
        return weights
    begin = time.perf_counter()
    stamp = convert_packaged_model(model, weights)
    seconds = time.perf_counter() - begin
    report.add(
        f"convert {model.key}",
        f"{stamp['package']}=={stamp['version']} -> {weights} in {seconds:.1f} s ({stamp['layers']} layers)",
        model=model.key,
        seconds=seconds,
    )
    return weights


def build_prompts(model, weights: Path, table, languages: list[str], directions: list[str], items: int):
    """The run's prompt table of one model, as `xmrc prompts` builds it, for the chosen directions."""
    from xmrc.hub.models import chat_template
    from xmrc.io import read_yaml
    from xmrc.prompts import SCENARIOS, build_prompt_table

    demonstrations = read_yaml(ROOT / "config" / "config.yaml")["demonstrations"]
    template = chat_template(model, str(weights))
    prompts = build_prompt_table(table, languages, SHOTS, FORMAT, demonstrations, template, items, None, SCENARIOS)
    label = prompts["context_lang"] + "-" + prompts["question_lang"]
    return prompts[label.isin(directions)].reset_index(drop=True)


def mean_f1(frame, prediction: str = "prediction") -> float:
    from xmrc.scoring import f1

    scores = [
        f1(p if isinstance(p, str) else "", g, lang)
        for p, g, lang in zip(frame[prediction], frame["gold"], frame["answer_lang"])
    ]
    return 100 * sum(scores) / len(scores) if scores else float("nan")


def hf_generate(model, weights: Path, prompts, args, device: str, work: Path, report: Report, label: str):
    """The generation job on the HF backend; its table."""
    import torch

    from xmrc.backends.hf import HFBackend
    from xmrc.generation import run_generation

    begin = time.perf_counter()
    backend = HFBackend(str(weights), dtype=args.dtype, batch_size=args.batch_size, device=device, progress=False)
    load_s = time.perf_counter() - begin
    templated = bool(prompts["templated"].iloc[0])
    if device == "cuda":  # CUDA context, kernels and cuBLAS handles, outside the timing
        backend.generate(prompts["prompt"].tolist()[:1], 1, templated)
        torch.cuda.synchronize()
    begin = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # run_generation's prefix-share line
        table = run_generation(
            prompts,
            backend,
            work / f"{label}-{model.key}.parquet",
            model=model.name,
            shots=SHOTS,
            prompt_format=FORMAT,
            max_new_tokens=args.max_new_tokens,
            progress=False,
        )
    seconds = time.perf_counter() - begin
    n, f1_value = len(table), mean_f1(table)
    empty = int((table["prediction"] == "").sum())
    report.add(
        f"{label} {model.key}",
        f"load {load_s:.1f} s; {n} prompts in {seconds:.1f} s = {n / seconds:.2f} prompts/s "
        f"(batch {args.batch_size}, {backend.dtype}); F1 {f1_value:.2f}, {empty} empty answers",
        model=model.key,
        backend="hf",
        device=device,
        load_s=load_s,
        seconds=seconds,
        prompts=n,
        prompts_per_s=n / seconds,
        f1=f1_value,
        empty=empty,
    )
    del backend
    _free(device)
    return table


def _free(device: str) -> None:
    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


def layer_analysis(model, weights: Path, prompts, generations, args, device: str, work: Path, report: Report):
    """AttnLRP relevance (MRD per part) and pooled hidden states of the first items' en-x prompts, explaining
    `generations`' outputs, as the layer-relevance and layer-hidden commands run them; the relevance rows."""
    from xmrc.analysis.layers.hidden_states import run_hidden_states
    from xmrc.analysis.layers.inputs import ExtractionJob, load_model, prompt_rows
    from xmrc.analysis.layers.relevance import check_lxt_support, lxt_rules, run_relevance
    from xmrc.prompts import PARTS

    english = prompts[prompts["context_lang"] == "en"]
    languages = list(dict.fromkeys(english["question_lang"]))
    ids = list(dict.fromkeys(english["id"]))[: args.layer_items]
    if not ids:
        report.add(f"layers {model.key}", "skipped (no en-x direction or --layer-items 0)", model=model.key)
        return None
    rows = prompt_rows(prompts, ids, languages, "prompts", generations, "generations")
    check_lxt_support(str(weights))
    begin = time.perf_counter()
    network, tokenizer = load_model(str(weights), None, args.dtype, 1, device)
    lxt_rules(network)
    load_s = time.perf_counter() - begin
    result = None
    with report.stage(f"layers {model.key} relevance"):
        job = ExtractionJob(model.key, SHOTS, FORMAT, 1, progress=False)
        begin = time.perf_counter()
        result = run_relevance(rows, network, tokenizer, work / f"relevance-{device}-{model.key}.parquet", job)
        seconds = time.perf_counter() - begin
        first = result.drop_duplicates(KEY)
        statuses = first["target_status"].value_counts().to_dict()
        explained = first[first["target_status"] == "answer"]
        greedy = int(explained["target_greedy"].sum())
        layers = int(result["layers"].max())
        report.add(
            f"layers {model.key} relevance",
            f"{len(rows)} prompts ({len(ids)} items x {len(languages)} en-x directions) in {seconds:.1f} s "
            f"(load {load_s:.1f} s), N = {layers} layers; explained: "
            + ", ".join(f"{status} {count}" for status, count in statuses.items())
            + f"; explained token is the greedy choice in {greedy}/{len(explained)}",
            model=model.key,
            device=device,
            seconds=seconds,
            load_s=load_s,
            prompts=len(rows),
            layers=layers,
            statuses=statuses,
            greedy=greedy,
        )
        for part in PARTS:
            cells = result[result["part"] == part]
            by_direction: dict[str, list[str]] = {}
            for row in cells.itertuples():
                value = "-" if row.mrd != row.mrd else str(int(row.mrd))  # NaN: absent or not explained
                by_direction.setdefault(f"{row.context_lang}-{row.question_lang}", []).append(value)
            report.add(
                f"layers {model.key} MRD {part}",
                " ".join(f"{direction} {','.join(values)}" for direction, values in by_direction.items()),
                model=model.key,
                part=part,
                mrd={f"{r.context_lang}-{r.question_lang}/{r.id}": _number(r.mrd) for r in cells.itertuples()},
            )
    with report.stage(f"layers {model.key} hidden states"):
        job = ExtractionJob(model.key, SHOTS, FORMAT, 8, progress=False)
        begin = time.perf_counter()
        count, shape = run_hidden_states(
            rows,
            network,
            tokenizer,
            work / f"hidden-{device}-{model.key}.npy",
            work / f"hidden-{model.key}.parquet",
            job,
        )
        seconds = time.perf_counter() - begin
        report.add(
            f"layers {model.key} hidden states",
            f"{count} prompts in {seconds:.1f} s, pooled {tuple(shape)} float16",
            model=model.key,
            device=device,
            seconds=seconds,
            shape=list(shape),
        )
    del network
    _free(device)
    return result


def _number(value) -> float | None:
    return None if value != value else float(value)


def agreement(a, b) -> dict:
    """Identical predictions and raw outputs of two generation tables on their shared keys, and the F1 of each
    there (gold and answer language from `a`)."""
    columns = [*KEY, "prediction"] + (["raw_output"] if "raw_output" in b.columns else [])
    merged = a[[*KEY, "gold", "answer_lang", "prediction", "raw_output"]].merge(
        b[columns], on=KEY, suffixes=("_a", "_b")
    )
    n = len(merged)
    same = int((merged["prediction_a"].fillna("") == merged["prediction_b"].fillna("")).sum())
    raw = int((merged["raw_output_a"] == merged["raw_output_b"]).sum()) if "raw_output_b" in merged else None
    f1_a, f1_b = mean_f1(merged, "prediction_a"), mean_f1(merged, "prediction_b")
    return {"n": n, "identical": same, "identical_raw": raw, "f1_a": f1_a, "f1_b": f1_b, "f1_diff": f1_a - f1_b}


def agreement_line(found: dict, a: str, b: str) -> str:
    n = found["n"]
    if not n:
        return "no shared prompts"
    raw = "" if found["identical_raw"] is None else f", raw outputs {found['identical_raw']}/{n}"
    return (
        f"{found['identical']}/{n} identical predictions ({100 * found['identical'] / n:.1f}%){raw}; "
        f"F1 {a} {found['f1_a']:.2f} vs {b} {found['f1_b']:.2f} (difference {found['f1_diff']:+.2f})"
    )


def vllm_generate(model, weights: Path, prompts, args, python: str, work: Path, report: Report):
    """The generation job on the vLLM backend (a worker under the vLLM environment); its table."""
    from xmrc.io import write_parquet

    prompts_file = work / f"prompts-{model.key}.parquet"
    write_parquet(prompts, prompts_file)
    spec = {
        "weights": str(weights),
        "prompts": str(prompts_file),
        "out": str(work / f"vllm-cuda-{model.key}.parquet"),
        "model": model.name,
        "max_new_tokens": args.max_new_tokens,
        "dtype": args.dtype,
        "gpu_memory_utilization": args.gpu_memory_utilization,
    }
    result, table = run_vllm(python, spec, work, args.vllm_timeout)
    n, seconds, f1_value = len(table), result["generate_s"], mean_f1(table)
    versions = result["versions"]
    report.add(
        f"vllm-cuda {model.key}",
        f"engine start {result['start_s']:.1f} s; {n} prompts in {seconds:.2f} s = {n / seconds:.2f} prompts/s; "
        f"F1 {f1_value:.2f}, {int((table['prediction'] == '').sum())} empty answers (vLLM {versions['vllm']}, "
        f"torch {versions['torch']}, transformers {versions['transformers']})",
        model=model.key,
        backend="vllm",
        start_s=result["start_s"],
        seconds=seconds,
        prompts=n,
        prompts_per_s=n / seconds,
        f1=f1_value,
        versions=versions,
        engine=result["engine"],
    )
    name = f"vllm-cuda {model.key} tokenizer"
    if "tokenizer" in result:
        report.add(name, result["tokenizer"], model=model.key)
    else:  # the generation stands; the tokenizer check under vLLM's transformers failed
        report.fail(name, RuntimeError(result.get("tokenizer_error", "no result")))
    return table


# --- the CPU reference --------------------------------------------------------------------------------------


def read_reference(path: Path) -> dict:
    """{"generations": DataFrame, "mrd": DataFrame or None, "settings": dict}; a one-line exit if unreadable."""
    import pandas as pd

    from xmrc.exceptions import XmrcError
    from xmrc.io import read_table

    try:
        if path.suffix == ".parquet":
            generations = read_table(path, required=["model", *KEY, "prediction"])
            return {"generations": generations, "mrd": None, "settings": {"format": "parquet"}}
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("kind") != REFERENCE_KIND:
            raise XmrcError(f"{path}: not a gpu-check reference (no kind {REFERENCE_KIND!r})")
        return {
            "generations": pd.DataFrame(document["generations"]),
            "mrd": pd.DataFrame(document.get("mrd", [])),
            "settings": document.get("settings", {}) | {"environment": document.get("environment", {})},
        }
    except (OSError, ValueError, KeyError, XmrcError) as error:
        sys.exit(f"gpu-check: --cpu-reference {path}: {_first_line(error)}")


def reference_rows(reference: dict, model, prompts):
    """The reference's generations of `model` whose prompts are this run's (by text digest where it has one)."""
    rows = reference["generations"]
    rows = rows[rows["model"].isin([model.key, model.name])]
    if "prompt_sha" in rows.columns:
        ours = prompts[KEY].assign(prompt_sha=[_sha(p) for p in prompts["prompt"]])
        rows = rows.merge(ours, on=[*KEY, "prompt_sha"])
    return rows


def compare_reference(reference: dict, model, prompts, tables: dict, relevance, report: Report) -> None:
    """Each backend's predictions (and the MRD) against the CPU reference."""
    rows = reference_rows(reference, model, prompts)
    mine = reference["generations"]["model"].isin([model.key, model.name]).sum()
    other = f"; {mine - len(rows)} reference rows of other prompt text left out" if mine > len(rows) else ""
    for backend, table in tables.items():
        found = agreement(table, rows)
        report.add(
            f"cpu-ref {model.key} {backend}",
            agreement_line(found, backend, "cpu") + other,
            model=model.key,
            backend=backend,
            left_out=int(mine - len(rows)),
            **found,
        )
    mrd = reference["mrd"]
    if relevance is None or mrd is None or mrd.empty:
        return
    mrd = mrd[mrd["model"] == model.key]
    merged = relevance[[*KEY, "part", "mrd", "target_id"]].merge(
        mrd[[*KEY, "part", "mrd", "target_id"]], on=[*KEY, "part"], suffixes=("", "_cpu")
    )
    comparable = merged[(merged["target_id"] == merged["target_id_cpu"]) & merged["mrd"].notna()]
    comparable = comparable[comparable["mrd_cpu"].notna()]
    equal = int((comparable["mrd"] == comparable["mrd_cpu"]).sum())
    largest = float((comparable["mrd"] - comparable["mrd_cpu"]).abs().max()) if len(comparable) else 0.0
    report.add(
        f"cpu-ref {model.key} MRD",
        f"{equal}/{len(comparable)} part MRDs equal to the CPU's, largest difference {largest:.0f} layers "
        f"(compared: {len(comparable)} of {len(merged)} shared part rows, those explaining the same token with an "
        "MRD in both)",
        model=model.key,
        equal=equal,
        compared=len(comparable),
        shared=len(merged),
        largest_difference=largest,
    )


def write_reference(path: Path, settings: dict, environment: dict, generations: list, relevance: list) -> None:
    from xmrc.io import write_text

    keep = [*KEY, "model", "prompt_sha", "raw_output", "prediction"]
    document = {
        "kind": REFERENCE_KIND,
        "written": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "settings": settings,
        "environment": environment,
        "generations": [row for frame in generations for row in frame[keep].to_dict("records")],
        "mrd": [
            {k: (_number(v) if k == "mrd" else v) for k, v in row.items()}
            for frame in relevance
            for row in frame[["model", *KEY, "part", "mrd", "target_id", "target_token"]].to_dict("records")
        ],
    }
    write_text(json.dumps(document, indent=1, ensure_ascii=False, default=str) + "\n", path)


# --- main ---------------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="the report as JSON (default: gpu-check.json; none with --write-reference)")
    parser.add_argument(
        "--cpu-reference", type=Path, help="predictions made on CPU (JSON of --write-reference, or Parquet)"
    )
    parser.add_argument(
        "--write-reference", type=Path, metavar="FILE", help="run on CPU (HF backend, float32) and write the reference"
    )
    parser.add_argument("--models", nargs="+", default=MODELS, help="registry keys (default: %(default)s)")
    parser.add_argument("--directions", nargs="+", default=DIRECTIONS, help="context-question language pairs")
    parser.add_argument("--items", type=int, default=8, help="items per direction (default: %(default)s)")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--batch-size", type=int, default=16, help="HF backend (default: %(default)s)")
    parser.add_argument("--layer-items", type=int, default=2, help="items of the layer analysis (0: none)")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vLLM (default: %(default)s)")
    parser.add_argument(
        "--vllm-python", help="python of the vLLM GPU environment (default: $XMRC_VLLM_PYTHON, else .venv-gpu)"
    )
    parser.add_argument("--vllm-timeout", type=float, default=240, help="seconds per vLLM engine and job")
    parser.add_argument("--skip-vllm", action="store_true", help="HF and the layer analysis only")
    parser.add_argument("--packaged-dir", type=Path, default=ROOT / "resources" / "packaged")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from xmrc import LANGUAGES

    for direction in args.directions:
        pair = direction.split("-")
        if len(pair) != 2 or not all(lang in LANGUAGES for lang in pair):
            parser.error(f"--directions: {direction!r} is not <context>-<question> of {', '.join(LANGUAGES)}")
    if args.items < 1 or args.layer_items < 0:
        parser.error("--items must be 1 or more, --layer-items 0 or more")
    return args


def main() -> int:
    args = parse_args()
    if args.worker:
        _worker(args.worker)
        return 0
    started = time.perf_counter()
    reference_mode = args.write_reference is not None
    if reference_mode:
        device, skip_vllm = "cpu", True
        import torch
    else:
        torch = cuda_or_exit()
        device, skip_vllm = "cuda", args.skip_vllm
    python = args.vllm_python or os.environ.get("XMRC_VLLM_PYTHON") or str(ROOT / ".venv-gpu" / "bin" / "python")
    if not skip_vllm and not Path(python).is_file():
        sys.exit(f"gpu-check: no vLLM environment at {python} (`make gpu-check` builds .venv-gpu; or --skip-vllm)")
    reference = read_reference(args.cpu_reference) if args.cpu_reference and not reference_mode else None

    import transformers

    import xmrc
    from xmrc import data
    from xmrc.config import Registry

    languages = list(dict.fromkeys(["en", *(lang for d in args.directions for lang in d.split("-"))]))
    settings = {
        "models": args.models,
        "directions": args.directions,
        "items": args.items,
        "shots": SHOTS,
        "prompt_format": FORMAT,
        "max_new_tokens": args.max_new_tokens,
        "dtype": args.dtype,
        "batch_size": args.batch_size,
        "layer_items": args.layer_items,
    }
    environment = {
        "xmrc": xmrc.__version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "device": torch.cuda.get_device_name(0) if device == "cuda" else f"CPU, {torch.get_num_threads()} threads",
    }
    out = None if reference_mode and not args.out else Path(args.out or "gpu-check.json")
    report = Report(out, {"settings": settings, "environment": environment, "cpu_reference": args.cpu_reference})
    report.add(
        "gpu-check" if not reference_mode else "cpu-reference",
        f"{environment['device']}; torch {torch.__version__} (CUDA {torch.version.cuda}), transformers "
        f"{transformers.__version__}; {args.dtype}, {SHOTS}-shot {FORMAT}, {len(args.directions)} directions x "
        f"{args.items} items, {args.max_new_tokens} new tokens",
    )
    if reference is not None:
        ref = reference["settings"]
        report.add(
            "cpu-ref",
            f"{args.cpu_reference}: {len(reference['generations'])} predictions"
            + (f", {ref.get('dtype')}, {ref.get('max_new_tokens')} new tokens" if "dtype" in ref else "")
            + (f", torch {ref['environment'].get('torch')}" if ref.get("environment") else ""),
        )

    registry = Registry.load(ROOT / "config" / "models.yaml")
    table, _ = data.prepare(data.load_local(ROOT / "data" / "xquad_subset", languages), languages)
    label = "hf-cuda" if device == "cuda" else "hf-cpu"
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        work = Path(scratch)
        runs: dict[str, dict] = {}  # model key -> model, weights, prompts, hf (table), relevance
        for key in args.models:
            with report.stage(f"model {key}"):
                model = registry.get(key)
                weights = ensure_weights(model, args.packaged_dir, report)
                prompts = build_prompts(model, weights, table, languages, args.directions, args.items)
                report.add(
                    f"prompts {key}",
                    f"{len(prompts)} ({'chat template' if prompts['templated'].iloc[0] else 'base, no template'}), "
                    f"mean {prompts['prompt'].str.len().mean():.0f} characters",
                    model=key,
                    prompts=len(prompts),
                )
                runs[key] = {"model": model, "weights": weights, "prompts": prompts, "hf": None, "relevance": None}
            if key not in runs:
                continue
            run = runs[key]
            with report.stage(f"{label} {key}"):
                run["hf"] = hf_generate(model, weights, prompts, args, device, work, report, label)
            if run["hf"] is not None:
                with report.stage(f"layers {key}"):
                    run["relevance"] = layer_analysis(model, weights, prompts, run["hf"], args, device, work, report)

        if reference_mode:
            generations = [
                run["hf"].assign(model=key, prompt_sha=[_sha(p) for p in run["prompts"]["prompt"]])
                for key, run in runs.items()
                if run["hf"] is not None
            ]
            relevance = [run["relevance"] for run in runs.values() if run["relevance"] is not None]
            with report.stage("cpu-reference written"):
                write_reference(args.write_reference, settings, environment, generations, relevance)
                report.add(
                    "cpu-reference written",
                    f"{args.write_reference}: {sum(len(g) for g in generations)} predictions of {len(generations)} "
                    f"models, {args.write_reference.stat().st_size / 1e3:.0f} kB",
                )

        for key, run in ({} if reference_mode else runs).items():
            model, weights, prompts = run["model"], run["weights"], run["prompts"]
            tables = {label: run["hf"]} if run["hf"] is not None else {}
            if not skip_vllm:
                with report.stage(f"vllm-cuda {key}"):
                    tables["vllm-cuda"] = vllm_generate(model, weights, prompts, args, python, work, report)
                    if run["hf"] is not None:
                        found = agreement(run["hf"], tables["vllm-cuda"])
                        report.add(f"hf-vs-vllm {key}", agreement_line(found, "hf", "vllm"), model=key, **found)
            if reference is not None:
                with report.stage(f"cpu-ref {key}"):
                    compare_reference(reference, model, prompts, tables, run["relevance"], report)
    report.add("total", f"{time.perf_counter() - started:.0f} s; {len(report.failures)} failed stages")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
