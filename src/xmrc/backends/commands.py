"""CLI subcommands of the scale stage: `generate-job`, `fetch-model`, `convert-gguf`, `check-tokenizer`,
`pin-revisions`, `serve`, `prefix-stats`.

Importing this module is cheap: torch, transformers, vllm and huggingface_hub load inside the commands.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from xmrc.config import DIRECTORY_SOURCES
from xmrc.exceptions import XmrcError
from xmrc.io import read_parquet

PROMPT_COLUMNS = ["id", "context_lang", "question_lang", "answer_lang", "gold", "prompt", "templated"]


def _model(args):
    from xmrc.config import Registry

    return Registry.load(args.registry).get(args.model)


def choose_backend(model, requested: str) -> str:
    """`auto`: the API backend for API models, otherwise the config's local backend (hf or vllm)."""
    if model.backend == "api":
        if requested not in ("auto", "api"):
            raise XmrcError(f"model '{model.key}' is an API model; it cannot run on the {requested} backend")
        return "api"
    if requested == "api":
        raise XmrcError(f"model '{model.key}' is a local model; the api backend serves only API models")
    return "hf" if requested == "auto" else requested


def _weights(args, model) -> str:
    from xmrc.config import model_weights

    if args.snapshot:
        from xmrc.hub.fetch import read_stamp

        return read_stamp(args.snapshot)["path"]
    weights = args.weights or model_weights(model)
    if model.source in DIRECTORY_SOURCES and not Path(weights).is_dir():
        raise XmrcError(f"model '{model.key}': weights directory {weights} not found")
    return weights


def backend_options(args, model, kind: str) -> dict:
    if kind == "api":
        return {"model": model.hub_id, "provider": model.api_provider or "openai", "concurrency": args.concurrency,
                "max_retries": args.max_retries, "timeout_s": args.timeout, "backoff_s": args.backoff}
    options = {"weights": _weights(args, model), "revision": None if args.snapshot else model.revision,
               "dtype": args.dtype}
    if kind == "hf":
        options.update(batch_size=args.batch_size, gpus=max(model.gpus, 1))
    else:
        options.update(tensor_parallel_size=args.tensor_parallel_size or max(model.gpus, 1),
                       gpu_memory_utilization=args.gpu_memory_utilization, max_model_len=args.max_model_len,
                       lora=args.lora)
    return options


def cmd_generate_job(args) -> None:
    from xmrc.backends import create_backend
    from xmrc.generation import run_generation

    model = _model(args)
    kind = choose_backend(model, args.backend)
    if args.lora and kind != "vllm":
        raise XmrcError("--lora needs the vllm backend (LoRA adapters are served with LoRARequest)")
    try:
        prompts = read_parquet(args.prompts)
    except FileNotFoundError:
        raise XmrcError(f"{args.prompts}: file not found") from None
    except Exception as error:
        raise XmrcError(f"{args.prompts}: not a readable Parquet table ({type(error).__name__})") from None
    missing = [c for c in PROMPT_COLUMNS if c not in prompts.columns]
    if missing:
        raise XmrcError(f"{args.prompts}: missing column(s) {', '.join(missing)}")
    if os.environ.get("SLURM_JOB_ID"):  # what the scheduler gave this job, for the log
        print(f"SLURM job {os.environ['SLURM_JOB_ID']}: GPUs "
              f"{os.environ.get('SLURM_JOB_GPUS') or os.environ.get('CUDA_VISIBLE_DEVICES') or 'none'}",
              file=sys.stderr)
    elif kind != "api":
        from xmrc.hub.gpus import claim_gpus

        devices = claim_gpus(max(model.gpus, 0))
        if devices is not None:
            print(f"GPUs {','.join(map(str, devices))} locked for this job", file=sys.stderr)
    backend = create_backend(kind, **backend_options(args, model, kind))
    result = run_generation(prompts, backend, Path(args.out), model=model.name, shots=args.shots,
                            prompt_format=args.format, max_new_tokens=args.max_new_tokens,
                            chunk_size=args.chunk_size, order=args.order)
    print(f"{args.out}: {len(result)} generations ({kind}), {int((result['prediction'] == '').sum())} empty answers")


def cmd_fetch_model(args) -> None:
    from xmrc.hub.fetch import fetch_snapshot

    stamp = fetch_snapshot(_model(args), args.cache_dir)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps(stamp, indent=1) + "\n")
    os.replace(partial, out)
    print(f"{out}: {stamp['hub_id']} at commit {stamp['commit']}")


def cmd_convert_gguf(args) -> None:
    from xmrc.hub.packaged import convert_packaged_model

    stamp = convert_packaged_model(_model(args), args.out)
    print(f"{args.out}: {stamp['package']}=={stamp['version']} {stamp['file']} converted "
          f"({stamp['architecture'][0]}, {stamp['layers']} layers; tokenizer round-trips)")


def cmd_check_tokenizer(args) -> None:
    from xmrc.hub.packaged import check_tokenizer

    summary = check_tokenizer(args.weights)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(summary + "\n", encoding="utf-8")
    print(summary)


def cmd_pin_revisions(args) -> None:
    from xmrc.hub.pin import pin_revisions, read_stamps
    from xmrc.config import Registry

    registry = Path(args.registry)
    try:
        text = registry.read_text(encoding="utf-8")
    except OSError:
        raise XmrcError(f"{registry}: file not found") from None
    stamps = read_stamps(args.stamps)
    if not stamps:
        raise XmrcError(f"{args.stamps}: no fetch-model stamps (<model>.json); run the fetch_model rules first")
    pinned, changed = pin_revisions(text, stamps)
    if changed and not args.dry_run:
        partial = registry.with_name(registry.name + ".partial")
        partial.write_text(pinned, encoding="utf-8")
        try:
            Registry.load(partial)  # the edit left a valid registry
        except XmrcError:
            partial.unlink()
            raise
        os.replace(partial, registry)
    verb = "would pin" if args.dry_run else "pinned"
    print(f"{registry}: {verb} {len(changed)} model(s) to their fetched commits"
          + (f": {', '.join(changed)}" if changed else "") + f"; {len(stamps) - len(changed)} already pinned")


def cmd_serve(args) -> None:
    from xmrc.backends.hf import HFBackend
    from xmrc.hub.server import make_server
    from xmrc.prompts import hf_chat_template

    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise XmrcError(f"environment variable {args.api_key_env} (the key clients must send) is not set")
    try:
        faults = [int(code) for code in args.faults.split(",") if code.strip()] if args.faults else []
    except ValueError:
        raise XmrcError(f"--faults: expected HTTP status codes separated by commas, got '{args.faults}'") from None
    backend = HFBackend(args.weights, dtype=args.dtype, batch_size=1, progress=False)
    template = hf_chat_template(backend.tokenizer) if getattr(backend.tokenizer, "chat_template", None) else None
    server = make_server(backend, template, args.host, args.port, api_key, faults, args.fault_every, args.delay)
    host, port = server.server_address[:2]
    print(f"xmrc serve: listening on http://{host}:{port}/v1", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def cmd_prefix_stats(args) -> None:
    import pandas as pd

    from xmrc.backends.prefix import prefix_order, shared_prefix_share

    tokenizer = None
    if args.tokenizer:
        from xmrc.backends.hf import load_tokenizer

        tokenizer = load_tokenizer(args.tokenizer)
    rows = []
    for path in args.prompts:
        try:
            table = read_parquet(path, columns=["prompt", "templated"])
        except FileNotFoundError:
            raise XmrcError(f"{path}: file not found") from None
        except Exception as error:
            raise XmrcError(f"{path}: not a prompt table ({type(error).__name__})") from None
        texts = table["prompt"].tolist()
        ordered = [texts[i] for i in prefix_order(texts)]
        row = {"prompts": path, "n": len(texts), "chars_table_order": shared_prefix_share(texts),
               "chars_prefix_order": shared_prefix_share(ordered)}
        if tokenizer is not None:
            templated = bool(table["templated"].iloc[0]) if len(table) else False
            tokens = tokenizer(ordered, add_special_tokens=not templated)["input_ids"]
            row.update(tokens_prefix_order=shared_prefix_share(tokens),
                       tokens_prefix_order_16_blocks=shared_prefix_share(tokens, 16),
                       prompt_tokens=sum(map(len, tokens)))
        rows.append(row)
    frame = pd.DataFrame(rows)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.out, index=False, float_format="%.4f")
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.4f}"), file=sys.stdout)


def register(command) -> None:
    from xmrc.cli import shots_count
    from xmrc.prompts import FORMATS

    p = command("generate-job", cmd_generate_job,
                "one generation job on any backend (hf, vllm, api): prefix-ordered, sharded, resumable")
    p.add_argument("--prompts", required=True)
    p.add_argument("--registry", required=True)
    p.add_argument("--model", required=True, help="registry key or paper name")
    p.add_argument("--weights", help="weights directory or hub id (default: from the registry)")
    p.add_argument("--snapshot", help="stamp written by fetch-model: load its snapshot directory (offline)")
    p.add_argument("--shots", type=shots_count, required=True, metavar="K", help="k-shot (any k >= 0)")
    p.add_argument("--format", choices=list(FORMATS), required=True)
    p.add_argument("--backend", choices=["auto", "hf", "vllm", "api"], default="auto",
                   help="auto: api for API models, hf otherwise")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--chunk-size", type=int, default=256, help="prompts per checkpoint shard")
    p.add_argument("--order", choices=["prefix", "table"], default="prefix",
                   help="run order: prefix (neighbours share prefixes, for prefix caching) or the table's")
    p.add_argument("--dtype", choices=["auto", "bfloat16", "float16", "float32"], default="bfloat16")
    p.add_argument("--batch-size", type=int, default=16, help="hf backend")
    p.add_argument("--tensor-parallel-size", type=int, help="vllm backend (default: the registry's gpus)")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vllm backend")
    p.add_argument("--max-model-len", type=int, help="vllm backend")
    p.add_argument("--lora", help="LoRA adapter directory (vllm backend)")
    p.add_argument("--concurrency", type=int, default=8, help="api backend: requests in flight")
    p.add_argument("--max-retries", type=int, default=8, help="api backend: retries on 429/5xx/timeouts")
    p.add_argument("--timeout", type=float, default=60.0, help="api backend: seconds per request")
    p.add_argument("--backoff", type=float, default=1.0, help="api backend: first retry delay (doubles)")
    p.add_argument("--out", required=True)

    p = command("fetch-model", cmd_fetch_model,
                "download a registry model's snapshot into a cache (submit host) and write its stamp")
    p.add_argument("--registry", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--cache-dir", required=True)
    p.add_argument("--out", required=True, help="stamp JSON: hub id, revision, commit, snapshot directory")

    p = command("convert-gguf", cmd_convert_gguf,
                "convert a registry model's GGUF weights shipped in a Python package into a snapshot directory")
    p.add_argument("--registry", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True, help="snapshot directory (save_pretrained layout)")

    p = command("check-tokenizer", cmd_check_tokenizer,
                "check that a converted snapshot's tokenizer round-trips its probe texts with the recorded ids "
                "(run it under each environment that loads the model)")
    p.add_argument("weights", help="snapshot directory written by convert-gguf")
    p.add_argument("--out", help="write the one-line result here (a stamp for the workflow)")

    p = command("pin-revisions", cmd_pin_revisions,
                "write the commits of fetched snapshots into the registry as each model's revision")
    p.add_argument("--registry", required=True)
    p.add_argument("--stamps", required=True, help="the stamps folder of fetch-model (<hub_cache>/stamps)")
    p.add_argument("--dry-run", action="store_true", help="only say what would be pinned")

    p = command("serve", cmd_serve, "OpenAI-compatible chat completions server over the HF backend (testing)")
    p.add_argument("--weights", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    p.add_argument("--dtype", choices=["auto", "bfloat16", "float16", "float32"], default="float32")
    p.add_argument("--api-key-env", help="environment variable holding the key clients must send")
    p.add_argument("--faults", help="HTTP statuses for the first requests, e.g. 429,500,429")
    p.add_argument("--fault-every", type=int, default=0, help="then fail every k-th request (429/500)")
    p.add_argument("--delay", type=float, default=0.0, help="seconds added to every request")

    p = command("prefix-stats", cmd_prefix_stats,
                "shared-prefix share of prompt tables in table order and prefix order")
    p.add_argument("--prompts", nargs="+", required=True)
    p.add_argument("--tokenizer", help="tokenizer directory or hub id: also count tokens")
    p.add_argument("--out", help="CSV")
