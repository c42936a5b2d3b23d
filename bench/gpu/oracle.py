"""1. The oracle: Captum's FeatureAblation (the reference, `implementation: captum`) against the batched ablation
(`implementation: batched`, the default), on the same real 2-shot items in the run's dtype.

Captum runs first in its default mode (one forward per target token over a KV cache: what `implementation:
captum` runs), item after item until its share of the stage's budget is spent; then in its one-pass mode
(`forward_in_tokens=False`: one full forward per perturbation) on those same items; then the batched evaluator
on them too (it is the fastest). Each Captum mode is compared with the batched path item by item: the largest
difference of their attributions (beside the largest attribution, its scale) and how often they choose the
same sentence (the strictly largest attribution; a tie is "none") for the Sequence and the Step rows. Two
modes, because their difference tells the implementation from the dtype: under transformers 5.17 (the GPU
image's) Captum 0.9.0's cached token mode scores the target's second and later tokens differently from a full
forward even in float32 (6.8e-4 on attributions of 1e-2 in --dry; 2e-6 under 4.57.6, the workflow's pin),
while its one-pass mode matches the batched path to 2e-6. Each evaluator is warmed up on the first item,
outside its timing; peak memory is measured per evaluator.
"""

from __future__ import annotations

import time

import numpy as np

# Shares of the stage's budget (what is left once the items are ready) for Captum's two modes; the rest is
# the batched path's, which needs a fraction of either.
CAPTUM_MODES = (
    ("token", "token by token (its default)", True, 0.4),
    ("onepass", "one pass per perturbation", False, 0.3),
)


def run(report, built, inputs, args, budget, memory) -> None:
    from xmrc.analysis.oracle.ablation import BatchedAblation, CaptumAblation

    stage = "1 oracle"
    model, tokenizer = built.model, built.tokenizer
    units = np.mean([len(i.item.units) for i in inputs])
    targets = np.mean([len(i.item.target.ids) for i in inputs])
    tokens = np.mean([i.prompt_tokens for i in inputs])
    report.add(
        stage,
        "items",
        f"{len(inputs)} en-x 2-shot items ({', '.join(sorted({i.direction for i in inputs}))}): {units:.1f} "
        f"sentence units, {tokens:.0f} prompt tokens, {targets:.1f} target tokens on average",
        items_prepared=len(inputs),
        units=float(units),
        prompt_tokens=float(tokens),
        target_tokens=float(targets),
    )
    left, chosen, captum = budget.left(), inputs, {}
    for key, label, in_tokens, share in CAPTUM_MODES:
        end = time.monotonic() + share * left
        try:
            evaluator = CaptumAblation(model, tokenizer, forward_in_tokens=in_tokens)
            timing = _timed(evaluator, chosen, memory, lambda end=end: time.monotonic() >= end)
        except Exception as error:  # one line; the other mode and the batched path still run
            report.add(stage, f"captum, {label}", f"FAILED ({_line(error)})", **{f"captum_{key}_error": _line(error)})
            continue
        _line_for(report, stage, f"captum, {label}", timing, memory, f"captum_{key}")
        captum[key] = (label, timing)
        chosen = chosen[: len(timing["attributions"])]  # the next evaluators attribute the same items
    batched = _timed(BatchedAblation(model, tokenizer, args.oracle_batch_size), chosen, memory, budget.spent)
    _line_for(report, stage, f"batched (batch {args.oracle_batch_size})", batched, memory, "batched")
    bound = np.mean([_batched_flops(built, tokenizer, i.item) for i in chosen]) / args.rate_flops
    report.add(
        stage,
        "batched FLOP bound",
        f"{bound * 1e3:.1f} ms/item at {args.rate_text}; measured / bound = "
        f"{_ratio(1 / batched['items_per_s'] if batched['items_per_s'] else None, bound)}",
        batched_bound_s_per_item=float(bound),
    )
    for key, (label, timing) in captum.items():
        _agreement(report, stage, chosen, key, label, timing, batched)
    if budget.spent():
        report.set_status(stage, f"stopped by its budget ({budget.seconds:.0f} s) after {len(chosen)} items")


def _timed(evaluator, inputs, memory, stop) -> dict:
    """Warm-up on the first item, then items until `stop()`; attributions, seconds, items/s, peak memory."""
    evaluator.attribute(inputs[0].item)
    memory.reset()
    started, attributions = time.perf_counter(), []
    for entry in inputs:
        attributions.append(evaluator.attribute(entry.item))
        memory.sync()
        if stop():
            break
    seconds = time.perf_counter() - started
    rate = len(attributions) / seconds if seconds > 0 else None
    return {"attributions": attributions, "seconds": seconds, "items_per_s": rate, "peak_gib": memory.peak_gib()}


def _line_for(report, stage, label, timing, memory, key) -> None:
    n, rate = len(timing["attributions"]), timing["items_per_s"]
    report.add(
        stage,
        label,
        f"{n} items in {timing['seconds']:.2f} s = {rate:.3f} items/s ({1e3 / rate:.0f} ms/item); peak "
        f"{timing['peak_gib']:.2f} {memory.label}",
        **{f"{key}_items": n, f"{key}_items_per_s": rate, f"{key}_peak_gib": timing["peak_gib"]},
    )


def _agreement(report, stage, chosen, key, label, captum, batched) -> None:
    from xmrc.analysis.oracle.ablation import top_unit

    n = min(len(captum["attributions"]), len(batched["attributions"]))
    if not n:
        return
    differences, scales, same_sequence, same_step = [], [], 0, 0
    for entry, ours, reference in zip(chosen[:n], batched["attributions"], captum["attributions"]):
        differences.append(float(np.abs(ours - reference).max()))
        scales.append(float(np.abs(reference).max()))
        step_row = 1 + entry.item.target.answer_token
        same_sequence += top_unit(ours[0]) == top_unit(reference[0])
        same_step += top_unit(ours[step_row]) == top_unit(reference[step_row])
    per_item = [t["seconds"] / len(t["attributions"]) for t in (captum, batched)]
    speedup = per_item[0] / per_item[1]
    report.add(
        stage,
        f"batched vs captum, {label}",
        f"same chosen sentence: Sequence {same_sequence}/{n}, Step {same_step}/{n}; max |attr batched - captum| "
        f"{max(differences):.2e} (largest |attr| {max(scales):.2e}); batched {speedup:.1f}x faster",
        **{
            f"{key}_compared": n,
            f"{key}_same_sequence": same_sequence,
            f"{key}_same_step": same_step,
            f"{key}_max_abs_difference": max(differences),
            f"{key}_max_abs_attribution": max(scales),
            f"{key}_speedup": speedup,
        },
    )


def _batched_flops(built, tokenizer, item) -> float:
    """Forward FLOPs the batched evaluator spends on one item: the shared prefix once, then every row's rest
    and the target attending to it."""
    from xmrc.analysis.oracle.ablation import BatchedAblation, encode

    prompts = [encode(tokenizer, text, item.templated) for text in item.prompts()]
    prefix = BatchedAblation._shared_prefix(prompts)
    target = len(item.target.ids)
    rows = sum(built.flops.forward(len(p) - prefix + target, cached=prefix) for p in prompts)
    return built.flops.forward(prefix) + rows


def _ratio(measured, bound) -> str:
    return f"{measured / bound:.1f}x" if measured and bound else "n/a"


def _line(error) -> str:
    from bench.gpu.report import first_line

    return first_line(error, 160)
