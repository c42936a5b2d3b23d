"""3. The HF backend's batched greedy generation (`xmrc.backends.hf.HFBackend`, the generation stage's and the
oracle's regeneration's code), on 2-shot prompts of every direction, longest first in batches of the paper
config's generation.batch_size, generation.max_new_tokens new tokens each (no stop rule: the random model's
text has no answer to end, and every batch then does the same work).

The prefill limit is the time the same tokens would take if each were processed once at the card's bf16 rate:
the model's forward FLOPs over prompt + generated tokens / the rate. Greedy decoding reads every weight once
per step, so it runs far above that limit; the ratio measured / limit says how far.
"""

from __future__ import annotations

import time


def run(report, built, prompts, args, budget, memory) -> None:
    from xmrc.backends.hf import HFBackend

    stage = "3 generation"
    backend = HFBackend.from_model(built.model, built.tokenizer, batch_size=args.batch_size, progress=False)
    templated = bool(prompts["templated"].iloc[0])
    texts = prompts["prompt"].tolist()
    backend.generate(texts[:1], 2, templated)  # warm-up: kernels, allocator
    encoded = backend.tokenize(texts, templated)
    order = sorted(range(len(texts)), key=lambda i: -len(encoded[i]))  # the backend's own batching order
    memory.reset()
    started = time.perf_counter()
    done, new_tokens, flops = 0, 0, 0.0
    for first in range(0, len(order), args.batch_size):
        batch = [texts[i] for i in order[first : first + args.batch_size]]
        for generation in backend.generate(batch, args.max_new_tokens, templated):
            new_tokens += generation.output_tokens
            flops += built.flops.forward(generation.prompt_tokens + generation.output_tokens)
        done += len(batch)
        memory.sync()
        if budget.spent():
            break
    seconds = time.perf_counter() - started
    limit = flops / args.rate_flops
    prompt_tokens = sum(len(encoded[i]) for i in order[:done])
    total = prompt_tokens + new_tokens
    report.add(
        stage,
        f"HF batched greedy (batch {args.batch_size}, {args.max_new_tokens} new tokens)",
        f"{done} prompts (mean {prompt_tokens / done:.0f} tokens) in {seconds:.2f} s = {done / seconds:.2f} prompts/s, "
        f"{new_tokens / seconds:.1f} new tokens/s; peak {memory.peak_gib():.2f} {memory.label}",
        prompts=done,
        seconds=seconds,
        prompts_per_s=done / seconds,
        tokens_per_s=new_tokens / seconds,
        new_tokens=new_tokens,
        prompt_tokens=prompt_tokens,
        peak_gib=memory.peak_gib(),
    )
    report.add(
        stage,
        "prefill limit",
        f"{flops / 1e12:.3g} TFLOP ({total} tokens x {flops / total / 1e9:.3g} GFLOP) / {args.rate_text} = "
        f"{limit:.3f} s; measured / limit = {seconds / limit:.1f}x",
        limit_s=limit,
        ratio=seconds / limit,
        flops=flops,
    )
    print(f"generation: measured / prefill limit = {seconds / limit:.1f}x", flush=True)
    if budget.spent() and done < len(order):
        report.set_status(stage, f"stopped by its budget ({budget.seconds:.0f} s) after {done} prompts")
