"""4. One LoRA training step of the question-translation finetune, through peft with the paper config's LoRA
settings (finetune.lora: rank 8, alpha 16, q_proj and v_proj, batch 16, learning rate 5e-5, cutoff 2048).

The batch is real question-translation pairs (zh and es -> en, as the registry's llama-3.1-8b-qt-zh-es) built
by `xmrc.finetune.pairs` from the bundled XQuAD's training articles, rendered with the LLaMA-3 chat template the
tokenizer carries (LLaMA-Factory's llama3 template) and trained on the answer only, as LLaMA-Factory does; with
its default gradient checkpointing. Timed: AdamW steps after one warm-up step, until the budget or --lora-steps.
The model is adapted in place, so this stage runs last of the measured ones.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time

SOURCES, TARGET = ["zh", "es"], "en"


def training_batch(table, tokenizer, config: dict, demonstrations: list[str], size: int) -> dict:
    """input_ids, attention_mask and labels (-100 outside the answer) of `size` pairs, right-padded."""
    import torch

    from xmrc.finetune.pairs import DEFAULT_INSTRUCTION, build_pairs, split_articles, xquad_pairs

    qt = config.get("finetune", {}).get("question_translation", {})
    cutoff = config.get("finetune", {}).get("lora", {}).get("cutoff_len", 2048)
    split = split_articles(table, qt.get("eval_fraction", 0.5), qt.get("seed", 0), demonstrations)
    pool = xquad_pairs(table, split, SOURCES, TARGET)
    pairs = build_pairs(pool, SOURCES, TARGET, None, qt.get("seed", 0), qt.get("instruction") or DEFAULT_INSTRUCTION)
    rows = []
    for messages in pairs["messages"].head(size):
        user, answer = list(messages)
        prompt = tokenizer.apply_chat_template([dict(user)], tokenize=False, add_generation_prompt=True)
        head = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        tail = tokenizer(answer["content"] + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        rows.append(((head + tail)[:cutoff], ([-100] * len(head) + tail)[:cutoff]))
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id
    batch = {
        "input_ids": torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows]),
        "attention_mask": torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows]),
        "labels": torch.tensor([labels + [-100] * (width - len(labels)) for _, labels in rows]),
    }
    batch["pairs_available"] = len(pairs)
    return batch


@contextlib.contextmanager
def _without_bitsandbytes():
    """peft imports bitsandbytes when it is installed (seconds of start-up, torch's compiler with it) for its
    quantised layers, which a bf16 LoRA never uses; the GPU image has no bitsandbytes. Hidden while peft loads
    and wraps the model (where it looks for it)."""
    hidden = "bitsandbytes" not in sys.modules
    if hidden:
        sys.modules["bitsandbytes"] = None  # importlib.util.find_spec then answers None: "not installed"
    try:
        yield
    finally:
        if hidden and sys.modules.get("bitsandbytes", 0) is None:
            del sys.modules["bitsandbytes"]


def run(report, built, table, config, args, budget, memory) -> None:
    import torch

    with _without_bitsandbytes():
        import peft
        from peft import LoraConfig, get_peft_model

    stage = "4 LoRA step"
    settings = config.get("finetune", {}).get("lora", {})
    size = args.lora_batch_size or int(settings.get("per_device_train_batch_size", 16))
    batch = training_batch(table, built.tokenizer, config, args.demonstrations, size)
    available = batch.pop("pairs_available")
    device = built.model.get_input_embeddings().weight.device
    batch = {key: value.to(device) for key, value in batch.items()}
    lora = LoraConfig(
        r=int(settings.get("lora_rank", 8)),
        lora_alpha=int(settings.get("lora_alpha", 16)),
        target_modules=list(settings.get("lora_target", ["q_proj", "v_proj"])),
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
    )
    if args.gradient_checkpointing:
        built.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    with _without_bitsandbytes():
        model = get_peft_model(built.model, lora)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=float(settings.get("learning_rate", 5e-5)))
    tokens = int(batch["attention_mask"].sum())

    def step() -> float:
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    first_loss = step()  # warm-up: optimizer state, kernels
    memory.reset()
    started, losses = time.perf_counter(), []
    while len(losses) < args.lora_steps:
        losses.append(step())
        memory.sync()
        if budget.spent():
            break
    seconds = (time.perf_counter() - started) / len(losses)
    width = batch["input_ids"].shape[1]
    bound = 3 * built.flops.forward(width) * size / args.rate_flops  # forward, backward to activations, recompute
    steps_per_epoch = math.ceil(available / size)
    report.add(
        stage,
        f"LoRA r{lora.r} alpha {lora.lora_alpha} {'+'.join(sorted(lora.target_modules))}, batch {size}",
        f"{seconds:.3f} s/step ({len(losses)} steps after a warm-up; {tokens} tokens, padded to {width}); "
        f"{tokens / seconds:.0f} tokens/s; peak {memory.peak_gib():.2f} {memory.label}; "
        f"{sum(p.numel() for p in trainable) / 1e6:.2f}M trainable; loss {first_loss:.2f} -> {losses[-1]:.2f}; "
        f"FLOP bound {bound * 1e3:.1f} ms/step, measured / bound = {seconds / bound:.1f}x "
        f"(peft {peft.__version__}, gradient checkpointing {'on' if args.gradient_checkpointing else 'off'})",
        s_per_step=seconds,
        steps=len(losses),
        tokens_per_step=tokens,
        batch_size=size,
        peak_gib=memory.peak_gib(),
        bound_s_per_step=bound,
        pairs_bundled=available,
        steps_per_epoch_bundled=steps_per_epoch,
        trainable=sum(p.numel() for p in trainable),
    )
