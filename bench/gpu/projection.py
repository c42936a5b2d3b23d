"""5. GPU-hours of the paper config's oracle, layer and finetune stages: its item counts x the measured rates,
beside the FLOP bound of the same work (the card's bf16 rate, every token processed once per pass).

Counts come from the paper config (config/config.yaml) and the registry (config/models.yaml: size_b). Rates were
measured on the 8B shape; a model of size_b billion parameters is scaled by size_b / 8 (compute scales with the
weights; a 70B model runs sharded over 4 GPUs, counted here at the same efficiency, which is optimistic).
  oracle   models x directions x items (sample_size, or all 1188 2-shot items) x (batched attribution + the
           regeneration of the answer, at the generation stage's measured prompts/s); Captum's rate beside it
  layers   models x prompt formats x groups x max_samples x 12 en-x directions (an upper bound: a group may hold
           fewer items) x (AttnLRP relevance + pooled hidden states)
  finetune the question-translation LoRA of one registry model (two sources): steps of the measured batch over
           3 epochs, for the bundled-article estimate of XQuAD pairs and for 10k pairs per source; the full
           TULU-3 SFT is not measured (8 GPUs, ZeRO-3): its FLOP bound per 10^9 training tokens is given
"""

from __future__ import annotations

import math

from bench.gpu.report import billions

ITEMS_2SHOT = 1188  # XQuAD's 1190 items less the two demonstrations
EN_X = 12  # en-x directions, en-en included


def _size(registry: dict, key: str) -> float:
    entry = registry.get(key) or next((e for e in registry.values() if e.get("name") == key), {})
    return float(entry.get("size_b", 8))


def _hours(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:,.0f} GPU-h" if hours >= 100 else f"{hours:.1f} GPU-h" if hours >= 1 else f"{hours:.2g} GPU-h"


def run(report, config: dict, registry: dict, args) -> None:
    stage = "5 projection"
    oracle_rates = report.results.get("1 oracle", {})
    layer_rates = report.results.get("2 layers", {})
    generation = report.results.get("3 generation", {})
    lora_rates = report.results.get("4 LoRA step", {})
    regeneration = 1 / generation["prompts_per_s"] if generation.get("prompts_per_s") else None
    regeneration_bound = generation["limit_s"] / generation["prompts"] if generation.get("prompts") else None
    projected = {}

    oracle = config.get("oracle", {})
    if oracle_rates.get("batched_items_per_s") and oracle.get("enabled", True):
        models = list(oracle.get("models", []))
        items = oracle.get("sample_size") or ITEMS_2SHOT
        work = sum(_size(registry, m) / 8 for m in models) * len(oracle.get("directions", [])) * items
        regen = regeneration or 0.0
        batched = work * (1 / oracle_rates["batched_items_per_s"] + regen)
        bound = work * (oracle_rates["batched_bound_s_per_item"] + (regeneration_bound or 0.0))
        captum_rate = oracle_rates.get("captum_token_items_per_s") or oracle_rates.get("captum_onepass_items_per_s")
        captum = work * (1 / captum_rate + regen) if captum_rate else None
        projected["oracle"] = {"batched_s": batched, "captum_s": captum, "bound_s": bound, "work": work}
        report.add(
            stage,
            f"oracle: {len(models)} models x {len(oracle.get('directions', []))} directions x {items} items",
            f"{_hours(batched)} batched (the workflow's default){'' if captum is None else '; ' + _hours(captum)} "
            f"with Captum; FLOP bound {_hours(bound)}"
            + ("" if regeneration else "; regeneration not measured, left out"),
            oracle_batched_gpu_h=batched / 3600,
            oracle_captum_gpu_h=None if captum is None else captum / 3600,
            oracle_bound_gpu_h=bound / 3600,
        )

    layers = config.get("layers", {})
    if layer_rates.get("relevance_s_per_prompt") and layers.get("enabled", True):
        models = list(layers.get("models", []))
        per_model = (
            len(layers.get("prompt_formats", [])) * len(layers.get("groups", [])) * layers.get("max_samples", 100)
        )
        work = sum(_size(registry, m) / 8 for m in models) * per_model * EN_X
        hidden = layer_rates.get("hidden_s_per_prompt", 0.0)
        measured = work * (layer_rates["relevance_s_per_prompt"] + hidden)
        bound = work * (layer_rates["relevance_bound_s_per_prompt"] + layer_rates.get("hidden_bound_s_per_prompt", 0))
        projected["layers"] = {"measured_s": measured, "bound_s": bound}
        report.add(
            stage,
            f"layers: {len(models)} models x {per_model} samples x {EN_X} en-x directions (at most)",
            f"{_hours(measured)} (relevance + hidden states); FLOP bound {_hours(bound)}",
            layers_gpu_h=measured / 3600,
            layers_bound_gpu_h=bound / 3600,
        )

    lora = config.get("finetune", {}).get("lora", {})
    qt = config.get("finetune", {}).get("question_translation", {})
    if lora_rates.get("s_per_step"):
        epochs = float(lora.get("num_train_epochs", 3.0))
        batch = int(lora_rates.get("batch_size") or lora.get("per_device_train_batch_size", 16))
        train_share = 1 - float(lora.get("val_size", 0.05))
        per_source_xquad = round(1190 * (1 - float(qt.get("eval_fraction", 0.5))))
        cap = qt.get("max_pairs_per_source") or 10000
        for label, per_source in (("XQuAD pairs only", per_source_xquad), (f"{cap} pairs per source", cap)):
            steps = math.ceil(2 * per_source * train_share / batch) * epochs
            seconds = steps * lora_rates["s_per_step"]
            bound = steps * lora_rates["bound_s_per_step"]
            report.add(
                stage,
                f"finetune: question-translation LoRA, 2 sources, {label} (~{per_source}/source)",
                f"{steps:.0f} steps of batch {batch} over {epochs:g} epochs: {_hours(seconds)}; FLOP bound "
                f"{_hours(bound)}",
                **{f"lora_gpu_h_{per_source}": seconds / 3600, f"lora_bound_gpu_h_{per_source}": bound / 3600},
            )
        projected["lora"] = True
    if args.parameters:
        bound = 6 * args.parameters * 1e9 / args.rate_flops
        report.add(
            stage,
            "finetune: TULU-3 full SFT (not measured: 8 GPUs, ZeRO-3)",
            f"FLOP bound {_hours(bound)} per 10^9 training tokens (6 x {billions(args.parameters)} parameters x "
            f"tokens / {args.rate_text})",
            sft_bound_gpu_h_per_billion_tokens=bound / 3600,
        )
    if not projected:
        report.set_status(stage, "nothing to project (no stage measured)")
