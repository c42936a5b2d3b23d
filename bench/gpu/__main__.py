"""The GPU check, one command: LLaMA-3.1-8B's shape with random bf16 weights on one CUDA GPU, and the paper run's
PyTorch stages measured on it, written under --out as it goes (gpu-check.json, gpu-check.md).

    python3 -m bench.gpu --out DIR           # CUDA; on the lent machine: bash bench/gpu/device.sh
    python3 -m bench.gpu --dry --out DIR     # tiny shapes on the CPU, the same code path, a few seconds

Stages (each under its own time budget, stopping early and recording what it reached; a failure is one line
and the next stage runs): 1 oracle (Captum vs batched ablation), 2 layers (AttnLRP relevance, hidden states),
3 generation (HF backend vs the prefill limit), 4 LoRA step (peft), 5 projection (GPU-hours of the paper
config). Exit status: 0 when every stage ran, 1 when one failed, 2 without a CUDA device (and no --dry).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

from bench.gpu import ROOT

STAGES = ("oracle", "layers", "generation", "lora", "projection")
# Seconds per stage: on the GPU the whole call stays under --deadline-s (330 s; the device call's timeout_s 360),
# so two calls and a machine start fit the 15 minutes a session has.
BUDGETS = {"oracle": 80, "layers": 55, "generation": 45, "lora": 30}
DRY_NOTE = [
    "--dry: tiny shapes on the CPU; the numbers check the code path and the arithmetic, not a GPU "
    "(its 'GPU-h' are hours of this CPU on the tiny model)"
]
DRY_BUDGETS = {"oracle": 2.5, "layers": 1.5, "generation": 1.5, "lora": 1.5}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 -m bench.gpu", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "gpu-check", help="output folder")
    parser.add_argument("--dry", action="store_true", help="tiny shapes on the CPU (float32), the same code path")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--dtype", choices=["bfloat16", "float32", "float16"], help="default: bf16 (dry: float32)")
    parser.add_argument("--deadline-s", type=float, default=330, help="the whole run's seconds (default: 330)")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiplies every stage's budget")
    parser.add_argument("--paper-config", type=Path, default=ROOT / "config" / "config.yaml")
    parser.add_argument("--format", default="v2", choices=["v1", "v2"], help="prompt format (default: v2)")
    parser.add_argument("--chat", action="store_true", help="chat-templated prompts (default: base, as LLaMA-3.1-8B)")
    parser.add_argument("--items", type=int, default=8, help="items per direction in the prompt pool")
    parser.add_argument("--oracle-items", type=int, default=12)
    parser.add_argument("--target-tokens", type=int, default=12, help="oracle target: the model's first N tokens")
    parser.add_argument("--layer-prompts", type=int, default=16, help="relevance prompts at most (hidden: 2x)")
    parser.add_argument("--relevance-share", type=float, default=0.65, help="of the layer budget, for relevance")
    parser.add_argument("--lora-steps", type=int, default=5, help="timed LoRA steps at most")
    parser.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false")
    parser.add_argument("--commit", help="the checkout's commit (default: git, else .whl/commit.txt)")
    args = parser.parse_args(argv)
    if args.dry:  # a few seconds on two CPU cores: few items, short answers, small batches
        args.items, args.oracle_items, args.target_tokens, args.layer_prompts = 1, 2, 3, 1
        args.lora_steps = 1
    return args


def commit(args) -> str:
    if args.commit:
        return args.commit
    try:
        found = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10
        )
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    recorded = ROOT / ".whl" / "commit.txt"
    return recorded.read_text(encoding="utf-8").strip() if recorded.is_file() else "unknown"


def main(argv=None) -> int:
    args = parse_args(argv)  # first: --help needs no torch
    import torch

    threads = torch.get_num_threads()
    try:
        return _run(args, argv)
    finally:
        torch.set_num_threads(threads)


def _run(args, argv) -> int:
    started = time.monotonic()
    deadline = started + args.deadline_s
    warnings.filterwarnings("ignore")  # library notices; what matters is on the report's lines
    import torch
    import transformers
    from bench.gpu import model as shapes
    from bench.gpu.report import Budget, Memory, Report, StageStopped, billions

    if not args.dry and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
        print(f"gpu-check: no CUDA device (torch {torch.__version__}, {build}); --dry runs on the CPU", file=sys.stderr)
        return 2
    device = "cpu" if args.dry else "cuda"
    if args.dry:
        torch.set_num_threads(1)  # tiny matrices: a second thread only contends on a shared machine
    args.dtype = args.dtype or ("float32" if args.dry else "bfloat16")
    shape = "tiny" if args.dry else "llama-3.1-8b"
    shims = shapes.install_shims()
    name = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    rate = shapes.card_rate(name) if device == "cuda" else None
    matmul = shapes.measured_matmul_tflops(device, getattr(torch, args.dtype), 8192 if device == "cuda" else 128)
    args.rate_flops = (rate or matmul) * 1e12
    args.rate_text = f"{rate:.0f} TFLOP/s (data sheet)" if rate else f"{matmul:.3g} TFLOP/s (measured matmul)"
    versions = _versions(torch, transformers)
    report = Report(
        args.out,
        {
            "command": " ".join(["python3 -m bench.gpu", *(argv if argv is not None else sys.argv[1:])]),
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": commit(args),
            "device": name,
            "card_rate_tflops": rate,
            "matmul_tflops": matmul,
            "card_rate_text": f"rate used {args.rate_text}; measured {args.dtype} matmul {matmul:.3g} TFLOP/s",
            "shape_name": shape,
            "shape": shapes.SHAPES[shape],
            "dtype": args.dtype,
            "versions": versions,
            "software": ", ".join(f"{k} {v}" for k, v in versions.items()),
            "shims": shims,
            "notes": [f"shim: {s}" for s in shims] + (DRY_NOTE if args.dry else []),
            "settings": {k: str(v) for k, v in vars(args).items()},
        },
    )
    from bench.gpu import inputs as data

    config = data.paper_config(args.paper_config)
    registry = data.paper_config(ROOT / "config" / "models.yaml")
    args.demonstrations = list(config.get("demonstrations") or data.DEMONSTRATIONS)
    args.batch_size = int(config.get("generation", {}).get("batch_size", 16))
    args.max_new_tokens = int(config.get("generation", {}).get("max_new_tokens", 64))
    args.oracle_batch_size = int(config.get("oracle", {}).get("batch_size", 16))
    args.hidden_batch_size = int(config.get("layers", {}).get("hidden_states", {}).get("batch_size", 8))
    args.lora_batch_size = None  # the paper config's
    if args.dry:
        args.batch_size, args.max_new_tokens, args.hidden_batch_size, args.lora_batch_size = 4, 3, 2, 4
    args.parameters = None
    budgets = DRY_BUDGETS if args.dry else BUDGETS
    memory = Memory(device)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        built = prompts = table = None
        with report.stage("0 model"):
            table = data.load_table()
            built = shapes.build_model(shape, device, args.dtype, data.corpus(table), Path(scratch))
            args.parameters = built.parameters
            report.header["model_text"] = (
                f"random {shape} ({billions(built.parameters)} parameters, {built.model.config.num_hidden_layers} "
                f"layers, d {built.model.config.hidden_size}, vocabulary {built.model.config.vocab_size}; tokenizer "
                f"{len(built.tokenizer)} entries), {args.dtype} on {device}, built in {built.seconds:.1f} s"
            )
            report.add("0 model", "built", report.header["model_text"], parameters=built.parameters)
            prompts = data.prompt_table(table, built.tokenizer, args.items, args.format, args.chat, args.demonstrations)
            report.header["prompts_text"] = (
                f"{len(prompts)} real XQuAD 2-shot {args.format} prompts ({'chat' if args.chat else 'base'}; "
                f"{prompts['context_lang'].str.cat(prompts['question_lang'], '-').nunique()} directions of "
                f"{', '.join(data.LANGUAGES)}; {args.items} items each), mean {prompts['prompt'].str.len().mean():.0f} "
                "characters"
            )
            report.save()
        if built is None:
            return 1
        for key in sorted(set(args.stages), key=STAGES.index):  # the LoRA stage adapts the model: it runs last
            _free(device)
            if key == "projection":
                with report.stage("5 projection"):
                    from bench.gpu import projection

                    projection.run(report, config, registry, args)
                continue
            label = {"oracle": "1 oracle", "layers": "2 layers", "generation": "3 generation", "lora": "4 LoRA step"}
            with report.stage(label[key]):
                seconds = budgets[key] * args.budget_scale
                if deadline - time.monotonic() < 0.5 * seconds:
                    left = deadline - time.monotonic()
                    raise StageStopped(f"{left:.0f} s left of --deadline-s, it needs {seconds:.0f}")
                budget = Budget(seconds, deadline - 15 * (not args.dry))
                _stage(key, report, built, prompts, table, config, args, budget, memory)
    print(f"gpu-check: {time.monotonic() - started:.0f} s; report in {args.out}", flush=True)
    return 1 if report.failures else 0


def _free(device: str) -> None:
    """What the last stage left (caches, a failed stage's tensors) back to the allocator."""
    import gc

    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


def _stage(key, report, built, prompts, table, config, args, budget, memory) -> None:
    from bench.gpu import generation, layers, lora, oracle
    from bench.gpu.inputs import interleaved, oracle_inputs

    if key == "oracle":
        chosen = oracle_inputs(
            prompts, table, built.model, built.tokenizer, args.oracle_items, args.target_tokens, args.batch_size
        )
        oracle.run(report, built, chosen, args, budget, memory)
    elif key == "layers":
        layers.run(report, built, interleaved(prompts, "en-x"), args, budget, memory)
    elif key == "generation":
        generation.run(report, built, interleaved(prompts, "all"), args, budget, memory)
    elif key == "lora":
        lora.run(report, built, table, config, args, budget, memory)


def _versions(torch, transformers) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda}
    found["transformers"] = transformers.__version__
    import xmrc

    found["xmrc_from"] = os.path.relpath(Path(xmrc.__file__).resolve().parent, ROOT)
    for package in ("peft", "captum", "lxt", "accelerate", "xmrc"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "absent"
    return found


if __name__ == "__main__":
    sys.exit(main())
