"""Commands of the finetuning stage: training data, LLaMA-Factory config and training, the held-out evaluation
of the bases, the base-vs-tuned comparison."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from xmrc.cli import args as shared
from xmrc.config import Registry, model_weights
from xmrc.exceptions import XmrcError
from xmrc.finetune import conversations, finetuned_model, lfconfig, pairs, training
from xmrc.finetune.compare import comparison_figure, comparison_pairs, read_per_language, write_comparison
from xmrc.finetune.heldout import HeldOutItems, evaluate_heldout
from xmrc.hub.models import BackendSettings
from xmrc.io import read_table, write_csv, write_parquet, write_text
from xmrc.prompts import FORMATS, read_ids


def cmd_tulu(args) -> None:
    """TULU-3 SFT conversations -> LLaMA-Factory messages table; malformed ones reported by id"""
    if args.source == "local":
        if not args.local_file:
            raise XmrcError("--local-file is required with --source local")
        records = conversations.read_local(args.local_file)
    else:
        records = conversations.read_hub(args.hub_id, args.revision)
    kept, problems = conversations.split_valid(records)
    total = len(kept) + len(problems)
    kept = conversations.subsample(kept, args.max_conversations, args.seed)
    write_parquet(kept, args.out)
    write_csv(problems, args.problems)
    if len(problems):
        print(
            f"xmrc: warning: {len(problems)} of {total} conversations malformed and not trained on "
            f"({conversations.problem_reasons(problems)}); "
            f"ids in {args.problems}",
            file=sys.stderr,
        )
    print(f"{args.out}: {len(kept)} conversations ({total} read, {len(problems)} malformed)")


def cmd_split(args) -> None:
    """article-level train/eval split of XQuAD and the held-out item ids"""
    if not 0 < args.eval_fraction < 1:
        raise XmrcError(f"--eval-fraction: {args.eval_fraction} is not between 0 and 1")
    table = read_table(args.data)
    split = pairs.split_articles(table, args.eval_fraction, args.seed, args.demonstrations)
    ids = pairs.held_out_ids(table, split, args.demonstrations)
    write_csv(split, args.out_split)
    write_text("".join(f"{item}\n" for item in ids), args.out_ids)
    counts = split["split"].value_counts()
    print(
        f"{args.out_split}: {counts.get('train', 0)} training and {counts.get('eval', 0)} held-out articles; "
        f"{len(ids)} held-out items in {args.out_ids}"
    )


def cmd_qt_pairs(args) -> None:
    """question-translation pairs X->target from the training articles (and/or an external file)"""
    instruction = args.instruction or pairs.DEFAULT_INSTRUCTION
    pairs.check_request(instruction, args.sources, args.target)
    pools = []
    if not args.no_xquad:
        if not (args.data and args.split):
            raise XmrcError("--data and --split are required unless --no-xquad")
        pools.append(pairs.xquad_pairs(read_table(args.data), read_table(args.split), args.sources, args.target))
    if args.external:
        pools.append(pairs.read_external(args.external))
    if not pools:
        raise XmrcError("question translation: no pair source (--no-xquad without --external)")
    result = pairs.build_pairs(
        pd.concat(pools, ignore_index=True),
        args.sources,
        args.target,
        args.max_pairs_per_source,
        args.seed,
        instruction,
    )
    write_parquet(result, args.out)
    counts = ", ".join(f"{lang}->{args.target}: {n}" for lang, n in result["source_lang"].value_counts().items())
    print(f"{args.out}: {len(result)} pairs ({counts})")


def cmd_config(args) -> None:
    """LLaMA-Factory train YAML and dataset_info.json of one finetuned model"""
    registry = Registry.load(args.registry)
    model = finetuned_model(registry, args.model)
    spec = model.finetune
    base_weights = args.base_weights or model_weights(registry.get(spec["base"]))
    try:
        hyperparameters = json.loads(args.hyperparameters)
    except json.JSONDecodeError as error:
        raise XmrcError(f"--hyperparameters: not valid JSON ({error.msg})") from None
    lfconfig.write_configs(spec, hyperparameters, base_weights, args.dataset, args.out_dir, args.work_dir)
    print(
        f"{args.out_dir}: train.yaml, dataset_info.json for {model.name} ({spec['method']} on {spec['dataset']}, "
        f"base {spec['base']})"
    )


def cmd_train(args) -> None:
    """llamafactory-cli train (resumes from the last checkpoint), then the model directory (LoRA merged into the base by
    llamafactory-cli export)"""
    outcome = training.train(args.train_config, gpus=args.gpus)
    out = training.finalize(args.train_config, args.out, info=outcome)
    print(
        f"{out}: finetuned model ready"
        + (f" (resumed from {outcome['resumed_from']})" if outcome["resumed_from"] else "")
    )


def _settings(values: list[str]) -> list[tuple[int, str]]:
    settings = []
    for setting in values:
        shots, _, prompt_format = setting.partition(":")
        if not shots.isdigit() or prompt_format not in FORMATS:
            raise XmrcError(f"--settings: {setting!r} is not SHOTS:FORMAT, e.g. 2:v1")
        settings.append((int(shots), prompt_format))
    return settings


def cmd_heldout_eval(args) -> None:
    """evaluate a base model on the held-out items (prompts, generate, score for each setting)"""
    settings = _settings(args.settings)
    items = HeldOutItems(read_table(args.data), read_ids(args.ids), args.languages, args.demonstrations, args.max_items)
    backend_settings = BackendSettings(
        dtype=args.dtype,
        batch_size=args.batch_size,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_model_len=args.max_model_len,
    )
    for done in evaluate_heldout(
        args.registry,
        args.model,
        args.weights,
        items,
        settings,
        args.out_dir,
        backend=args.backend,
        backend_settings=backend_settings,
        max_new_tokens=args.max_new_tokens,
        chunk_size=args.chunk_size,
        normalization=args.normalization,
        layout=shared.layout_of(args),
        extraction=args.extraction,
    ):
        print(
            f"{done['scores']}: {done['prompts_n']} prompts, {done['generations_n']} generations ({done['kind']}), "
            f"{done['shots']}-shot {done['prompt_format']}"
        )


def cmd_compare(args) -> None:
    """base vs tuned tables on the same items"""
    items = read_table(args.item_scores)
    heldout = (
        pd.concat([read_table(p) for p in args.heldout_scores], ignore_index=True)
        if args.heldout_scores
        else items.iloc[:0]
    )
    compared = comparison_pairs(items, heldout, Registry.load(args.registry), args.tuned)
    paths = write_comparison(compared, args.shots, Path(args.out_dir), args.format_criterion, args.format_choice)
    print(f"{args.out_dir}: {len(paths)} comparison tables for {', '.join(args.tuned)}")


def cmd_compare_figure(args) -> None:
    """base vs tuned F1 per direction (PNG)"""
    path = comparison_figure(read_per_language(args.table_dir, args.shots), args.out)
    print(f"{path}: base vs tuned figure")


def register(command) -> None:
    p = command("finetune-tulu", cmd_tulu)
    p.add_argument("--source", choices=["hub", "local"], required=True)
    p.add_argument("--hub-id", default="allenai/tulu-3-sft-mixture")
    p.add_argument("--revision")
    p.add_argument("--local-file", help="JSON lines, JSON list or Parquet with a messages field")
    p.add_argument("--max-conversations", type=int, help="seeded random subsample of this many")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="Parquet: id, source, messages")
    p.add_argument("--problems", required=True, help="CSV of malformed conversations: id, reason")

    p = command("finetune-split", cmd_split)
    p.add_argument("--data", required=True, help="XQuAD table")
    p.add_argument("--eval-fraction", type=float, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--demonstrations", nargs=2, required=True, metavar="ID")
    p.add_argument("--out-split", required=True, help="CSV: title, split, items")
    p.add_argument("--out-ids", required=True, help="text file of held-out ids, one per line")

    p = command("finetune-qt-pairs", cmd_qt_pairs)
    p.add_argument("--data", help="XQuAD table")
    p.add_argument("--split", help="article split CSV (finetune-split)")
    p.add_argument("--sources", nargs="+", required=True, metavar="LANG")
    p.add_argument("--target", required=True, metavar="LANG")
    p.add_argument("--max-pairs-per-source", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--instruction", default=None, help="template with {target} and {question}")
    p.add_argument(
        "--external", help="extra pairs: JSON lines or Parquet (source_lang, target_lang, source_text, target_text)"
    )
    p.add_argument("--no-xquad", action="store_true", help="only the external pairs")
    p.add_argument("--out", required=True)

    p = command("finetune-config", cmd_config)
    p.add_argument("--registry", required=True)
    p.add_argument("--model", required=True, help="registry key of a source: finetune model")
    p.add_argument("--base-weights", help="default: the base model's weights from the registry")
    p.add_argument("--hyperparameters", required=True, help="JSON: the run config's finetune.<method> block")
    p.add_argument("--dataset", required=True, help="training table (messages format)")
    p.add_argument("--work-dir", required=True, help="LLaMA-Factory output_dir (checkpoints)")
    p.add_argument("--out-dir", required=True)

    p = command("finetune-train", cmd_train)
    p.add_argument("--train-config", required=True)
    p.add_argument("--gpus", type=int, default=0, help="> 1: torchrun with one process per GPU")
    p.add_argument("--out", required=True)

    p = command("finetune-heldout-eval", cmd_heldout_eval)
    p.add_argument("--data", required=True, help="XQuAD table")
    shared.model(p)
    p.add_argument("--ids", required=True, help="held-out ids (finetune-split)")
    p.add_argument("--settings", nargs="+", required=True, metavar="SHOTS:FORMAT")
    shared.languages(p, required=True)
    p.add_argument("--demonstrations", nargs=2, required=True, metavar="ID")
    p.add_argument("--max-items", type=int)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    shared.dtype(p)
    p.add_argument("--chunk-size", type=int, default=256)
    p.add_argument(
        "--backend", choices=["auto", "hf", "vllm"], default="auto", help="the main generation jobs' backend (auto: hf)"
    )
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vllm backend")
    p.add_argument("--max-model-len", type=int, help="vllm backend")
    p.add_argument("--normalization", choices=["mlqa", "squad"], default="mlqa")
    shared.prompt_protocol(p)
    shared.extraction(p)
    p.add_argument("--out-dir", required=True, help="writes {prompts,generations,scores}/<model>/<setting>.parquet")

    p = command("finetune-compare", cmd_compare)
    p.add_argument("--item-scores", required=True, help="the run's item_scores.parquet")
    p.add_argument(
        "--heldout-scores",
        nargs="*",
        default=[],
        help="score tables of the question-translation models' bases on the held-out articles",
    )
    p.add_argument("--registry", required=True)
    p.add_argument("--tuned", nargs="+", required=True, metavar="MODEL", help="registry keys of tuned models")
    p.add_argument("--shots", nargs="+", type=int, required=True)
    shared.format_criterion(p)
    p.add_argument("--out-dir", required=True)

    p = command("finetune-figure", cmd_compare_figure)
    p.add_argument("--table-dir", required=True)
    p.add_argument("--shots", type=int, required=True)
    p.add_argument("--out", required=True)
