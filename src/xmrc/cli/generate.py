"""Commands of the generation stage and of the models around it: generate-job, fetch-model, convert-gguf,
check-tokenizer, pin-revisions, serve, prefix-stats."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import fields

import pandas as pd

from xmrc.backends.prefix import prefix_stats
from xmrc.backends.vllm import ATTEMPT_ENV
from xmrc.cli import args as shared
from xmrc.config import Registry
from xmrc.exceptions import XmrcError
from xmrc.generation import run_generation
from xmrc.hub.fetch import fetch_snapshot
from xmrc.hub.models import BackendSettings, choose_backend, open_backend
from xmrc.hub.packaged import check_tokenizer, convert_packaged_model
from xmrc.hub.pin import pin_registry
from xmrc.hub.server import make_server
from xmrc.io import read_table, write_csv, write_text
from xmrc.prompts import hf_chat_template

# generate-job's backend options are named as BackendSettings' fields, but for these two
OPTION_OF_FIELD = {"timeout_s": "timeout", "backoff_s": "backoff"}
PROMPT_COLUMNS = ["id", "context_lang", "question_lang", "answer_lang", "gold", "prompt", "templated"]


def attempt_number(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an attempt number (an integer >= 1)")
    return int(text)


def cmd_generate_job(args) -> None:
    """one generation job on any backend (hf, vllm, api): prefix-ordered, sharded, resumable"""
    model = Registry.load(args.registry).get(args.model)
    kind = choose_backend(model, args.backend)
    settings = BackendSettings(
        **{field.name: getattr(args, OPTION_OF_FIELD.get(field.name, field.name)) for field in fields(BackendSettings)}
    )
    prompts = read_table(args.prompts, required=PROMPT_COLUMNS)
    # the vLLM backend reads the attempt from the environment (xmrc.backends.vllm: retry_settings)
    os.environ[ATTEMPT_ENV] = str(args.attempt)
    backend = open_backend(model, kind, settings, args.weights, args.snapshot)
    result = run_generation(
        prompts,
        backend,
        args.out,
        model=model.name,
        shots=args.shots,
        prompt_format=args.format,
        max_new_tokens=args.max_new_tokens,
        chunk_size=args.chunk_size,
        order=args.order,
        extraction=args.extraction,
    )
    print(f"{args.out}: {len(result)} generations ({kind}), {int((result['prediction'] == '').sum())} empty answers")


def cmd_fetch_model(args) -> None:
    """download a registry model's snapshot into a cache (submit host) and write its stamp"""
    stamp = fetch_snapshot(Registry.load(args.registry).get(args.model), args.cache_dir)
    write_text(json.dumps(stamp, indent=1) + "\n", args.out)
    print(f"{args.out}: {stamp['hub_id']} at commit {stamp['commit']}")


def cmd_convert_gguf(args) -> None:
    """convert a registry model's GGUF weights shipped in a Python package into a snapshot directory"""
    stamp = convert_packaged_model(Registry.load(args.registry).get(args.model), args.out)
    print(
        f"{args.out}: {stamp['package']}=={stamp['version']} {stamp['file']} converted "
        f"({stamp['architecture'][0]}, {stamp['layers']} layers; tokenizer round-trips)"
    )


def cmd_check_tokenizer(args) -> None:
    """check that a converted snapshot's tokenizer round-trips its probe texts with the recorded ids and gives the ids
    of its independent reference (sentencepiece or the GGUF vocabulary) on them and on a run's texts (run it under
    each environment that loads the model)"""
    texts = []
    if args.texts:
        table = read_table(args.texts, required=["context", "question"])
        texts = [*table["context"].drop_duplicates(), *table["question"].drop_duplicates()]
    summary = check_tokenizer(args.weights, texts=texts)
    if args.out:
        write_text(summary + "\n", args.out)
    print(summary)


def cmd_pin_revisions(args) -> None:
    """write the commits of fetched snapshots into the registry as each model's revision"""
    changed, stamps = pin_registry(args.registry, args.stamps, args.dry_run)
    verb = "would pin" if args.dry_run else "pinned"
    print(
        f"{args.registry}: {verb} {len(changed)} model(s) to their fetched commits"
        + (f": {', '.join(changed)}" if changed else "")
        + f"; {stamps - len(changed)} already pinned"
    )


def cmd_serve(args) -> None:
    """OpenAI-compatible chat completions server over the HF backend (testing)"""
    from xmrc.backends.hf import HFBackend  # torch and transformers

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
    """shared-prefix share of prompt tables in table order and prefix order"""
    tokenizer = None
    if args.tokenizer:
        from xmrc.backends.hf import load_tokenizer  # torch and transformers

        tokenizer = load_tokenizer(args.tokenizer)
    rows = []
    for path in args.prompts:
        table = read_table(path, required=["prompt", "templated"], columns=["prompt", "templated"])
        templated = bool(table["templated"].iloc[0]) if len(table) else False
        rows.append({"prompts": path} | prefix_stats(table["prompt"].tolist(), templated, tokenizer))
    frame = pd.DataFrame(rows)
    if args.out:
        write_csv(frame, args.out, float_format="%.4f")
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.4f}"), file=sys.stdout)


def register(command) -> None:
    p = command("generate-job", cmd_generate_job)
    p.add_argument("--prompts", required=True)
    shared.model(p)
    p.add_argument("--snapshot", help="stamp written by fetch-model: load its snapshot directory (offline)")
    shared.setting(p)
    p.add_argument(
        "--backend",
        choices=["auto", "hf", "vllm", "api"],
        default="auto",
        help="auto: api for API models, hf otherwise",
    )
    p.add_argument("--max-new-tokens", type=int, default=64)
    shared.extraction(p)
    p.add_argument("--chunk-size", type=int, default=256, help="prompts per checkpoint shard")
    p.add_argument(
        "--order",
        choices=["prefix", "table"],
        default="prefix",
        help="run order: prefix (neighbours share prefixes, for prefix caching) or the table's",
    )
    shared.dtype(p)
    p.add_argument("--batch-size", type=int, default=16, help="hf backend")
    p.add_argument("--tensor-parallel-size", type=int, help="vllm backend (default: the registry's gpus)")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vllm backend")
    p.add_argument("--max-model-len", type=int, help="vllm backend")
    p.add_argument("--lora", help="LoRA adapter directory (vllm backend)")
    p.add_argument(
        "--attempt",
        type=attempt_number,
        default=1,
        help="vllm backend: the scheduler's attempt (Snakemake's `attempt`); each retry gets more KV cache (CPU) or "
        "a smaller batch (GPU), and resumes from the shards",
    )
    p.add_argument("--concurrency", type=int, default=8, help="api backend: requests in flight")
    p.add_argument("--max-retries", type=int, default=8, help="api backend: retries on 429/5xx/timeouts")
    p.add_argument("--timeout", type=float, default=60.0, help="api backend: seconds per request")
    p.add_argument("--backoff", type=float, default=1.0, help="api backend: first retry delay (doubles)")
    p.add_argument("--out", required=True)

    p = command("fetch-model", cmd_fetch_model)
    shared.model(p, weights=False)
    p.add_argument("--cache-dir", required=True)
    p.add_argument("--out", required=True, help="stamp JSON: hub id, revision, commit, snapshot directory")

    p = command("convert-gguf", cmd_convert_gguf)
    shared.model(p, weights=False)
    p.add_argument("--out", required=True, help="snapshot directory (save_pretrained layout)")

    p = command("check-tokenizer", cmd_check_tokenizer)
    p.add_argument("weights", help="snapshot directory written by convert-gguf")
    p.add_argument(
        "--texts", help="data table (Parquet) whose contexts and questions must also get the reference's ids"
    )
    p.add_argument("--out", help="write the one-line result here (a stamp for the workflow)")

    p = command("pin-revisions", cmd_pin_revisions)
    p.add_argument("--registry", required=True)
    p.add_argument("--stamps", required=True, help="the stamps folder of fetch-model (<hub_cache>/stamps)")
    p.add_argument("--dry-run", action="store_true", help="only say what would be pinned")

    p = command("serve", cmd_serve)
    p.add_argument("--weights", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    shared.dtype(p, default="float32")
    p.add_argument("--api-key-env", help="environment variable holding the key clients must send")
    p.add_argument("--faults", help="HTTP statuses for the first requests, e.g. 429,500,429")
    p.add_argument("--fault-every", type=int, default=0, help="then fail every k-th request (429/500)")
    p.add_argument("--delay", type=float, default=0.0, help="seconds added to every request")

    p = command("prefix-stats", cmd_prefix_stats)
    p.add_argument("--prompts", nargs="+", required=True)
    p.add_argument("--tokenizer", help="tokenizer directory or hub id: also count tokens")
    p.add_argument("--out", help="CSV")
