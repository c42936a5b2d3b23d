"""2. The layer stage on en-x 2-shot prompts, with the workflow's functions and the paper config's batch sizes:
AttnLRP relevance (LXT 2.1's rules, `xmrc.analysis.layers.relevance.layer_relevance`, batch 1) and pooled
hidden states (`xmrc.analysis.layers.hidden_states.pooled_hidden_states`, batch 8).

Conservation: LRP distributes the explained logit over the tokens at every depth, so the relevance summed over
a prompt's tokens should equal that logit at every layer (row 0: the input embeddings; row i: the output of
decoder layer i). The ratio sum / logit is reported per layer, averaged over prompts (1.0 is exact); plain
gradient x input, without the rules, would not conserve. The explained token is the model's greedy next token
at the prompt's end (the random model's answer starts there: no prefix is forced).
"""

from __future__ import annotations

import time

import numpy as np


def run(report, built, prompts, args, budget, memory) -> None:
    from xmrc.analysis.layers.hidden_states import pooled_hidden_states
    from xmrc.analysis.layers.inputs import encode
    from xmrc.analysis.layers.relevance import layer_relevance, lxt_rules

    stage = "2 layers"
    model, tokenizer = built.model, built.tokenizer
    encoded = [encode(tokenizer, row) for _, row in prompts.iterrows()]
    lengths = [len(e.input_ids) for e in encoded]
    report.add(
        stage,
        "prompts",
        f"{len(encoded)} en-x 2-shot prompts ready, mean {np.mean(lengths):.0f} tokens",
        prompts_prepared=len(encoded),
        prompt_tokens=float(np.mean(lengths)),
    )
    lxt_rules(model)  # an architecture without LXT rules stops here, in one line
    pad = tokenizer.pad_token_id
    relevance_end = time.monotonic() + args.relevance_share * budget.left()

    # Relevance, one prompt per backward pass (layers.relevance.batch_size: 1).
    layer_relevance(model, encoded[:1], pad)  # warm-up, outside the timing
    memory.reset()
    started, ratios, done = time.perf_counter(), [], 0
    for prompt in encoded[: args.layer_prompts]:
        (result,) = layer_relevance(model, [prompt], pad)
        memory.sync()
        ratios.append(result.relevance.sum(axis=1) / result.target_logit)
        done += 1
        if time.monotonic() >= relevance_end:
            break
    seconds = (time.perf_counter() - started) / done
    peak = memory.peak_gib()
    tokens = float(np.mean(lengths[:done]))
    bound = 2 * built.flops.forward(int(tokens)) / args.rate_flops  # forward + a backward to activations only
    report.add(
        stage,
        "AttnLRP relevance (batch 1)",
        f"{done} prompts, {seconds:.3f} s/prompt (mean {tokens:.0f} tokens); peak {peak:.2f} {memory.label}; "
        f"FLOP bound {bound * 1e3:.1f} ms/prompt, measured / bound = {seconds / bound:.1f}x",
        relevance_prompts=done,
        relevance_s_per_prompt=seconds,
        relevance_peak_gib=peak,
        relevance_tokens=tokens,
        relevance_bound_s_per_prompt=bound,
    )
    mean = np.mean(np.stack(ratios), axis=0)
    worst = int(np.argmax(np.abs(mean - 1)))
    report.add(
        stage,
        "conservation (sum of relevance / explained logit)",
        f"embeddings {mean[0]:.3f}; decoder layers 1..{len(mean) - 1}: min {mean[1:].min():.3f}, median "
        f"{np.median(mean[1:]):.3f}, max {mean[1:].max():.3f}; farthest from 1: row {worst} ({mean[worst]:.3f}); "
        f"mean over {done} prompts",
        conservation_per_layer=[float(v) for v in mean],
        conservation_worst_row=worst,
    )

    # Pooled hidden states, forward only (layers.hidden_states.batch_size: 8).
    size = args.hidden_batch_size
    batches = [encoded[i : i + size] for i in range(0, min(len(encoded), args.layer_prompts * 2), size)]
    pooled_hidden_states(model, batches[0], pad)
    memory.reset()
    started, done, shape = time.perf_counter(), 0, None
    for batch in batches:
        shape = pooled_hidden_states(model, batch, pad).shape
        done += len(batch)
        if budget.spent():
            break
    seconds = (time.perf_counter() - started) / done
    tokens = float(np.mean(lengths[:done]))
    bound = built.flops.forward(int(tokens)) / args.rate_flops
    report.add(
        stage,
        f"pooled hidden states (batch {size})",
        f"{done} prompts, {seconds:.3f} s/prompt; pooled {tuple(shape)} float16 per batch; peak "
        f"{memory.peak_gib():.2f} {memory.label}; FLOP bound {bound * 1e3:.1f} ms/prompt, measured / bound = "
        f"{seconds / bound:.1f}x",
        hidden_prompts=done,
        hidden_s_per_prompt=seconds,
        hidden_peak_gib=memory.peak_gib(),
        hidden_bound_s_per_prompt=bound,
    )
    if budget.spent():
        report.set_status(stage, f"stopped by its budget ({budget.seconds:.0f} s)")
