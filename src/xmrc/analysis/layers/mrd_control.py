"""Controls of the Major Relevance Depth: is a part's MRD at the last layer the model's or the method's?

Both real models of this project put the MRD of question and context at (or one below) the last layer, while
the paper's LLaMA models put the question's well below the context's. These controls tell a relevance pass
that cannot report a shallow depth from a model whose relevance does reach its last layers:

- **known depth** (`blocked_attention`): no position outside a part may read the part's representations
  deeper than depth d (an attention mask on decoder layers d + 2 .. L, so the model itself changes). The output
  then cannot depend on them: a correct pass gives them exactly zero relevance and the part an MRD of at
  most d. A pass whose relevance rows were misaligned with the layers, or leaked across depths,
  would still report the ceiling.
- **statistics** (`part_statistics`): besides the paper's MRD (the largest token MRD of the part, 95% of the
  cumulative |relevance|), the median token MRD, the MRD of the part's summed profile, the MRD with each
  depth normalised by its own total (protocol.mrd_relevance "layer", which cancels the relevance AttnLRP
  loses depth by depth, `xmrc.analysis.layers.conservation`) and the *release depth*: the deepest depth
  whose share of the part's relevance is at least half the mean share (1 / N). A profile that is flat up to
  the last layers puts the 95% threshold at ceil(0.95 N) whatever the model does with the part.
- **swapped parts** (`swap_context_question`): the test item's question before its context, every span moved.
- **conserving variant**: the same prompts under LXT's CP-LRP rules (`layer_relevance(variant="cp-lrp")`).

`control_results` runs the conditions on one prompt row, `control_records` tabulates them;
`bench/bench_mrd_control.py` runs them on the real models (docs/layers.md, "MRD and conservation").
"""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd

from xmrc.analysis.layers.inputs import EncodedPrompt, decoder_layers, encode_to_answer
from xmrc.analysis.layers.mrd import major_relevance_depth, major_relevance_depths
from xmrc.analysis.layers.relevance import LayerRelevance, layer_relevance, normalised_relevance

CONTROL_PARTS = ("question", "context")
STATISTICS = ("mrd", "median_token_mrd", "profile_mrd", "layer_mrd", "release_depth")


@contextlib.contextmanager
def blocked_attention(model, blocked: dict[int, np.ndarray]):
    """For each depth d in `blocked`, the positions outside `blocked[d]` (a boolean mask over the tokens of a
    one-prompt batch) cannot attend to those inside it at depths deeper than d: decoder layer n reads depth
    n - 1, so layers d + 2 .. L are masked. Positions inside still attend to each other, so no row of the
    attention is empty."""
    import torch

    layers = decoder_layers(model)
    handles = []

    def hook_for(masks: list[np.ndarray]):
        def hook(module, args, kwargs):
            hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
            width = hidden.shape[1]
            mask = kwargs.get("attention_mask")
            if mask is None:  # SDPA's causal fast path: write the causal mask out
                mask = torch.ones(width, width, dtype=torch.bool, device=hidden.device).tril()[None, None]
            cut = torch.zeros(width, width, dtype=torch.bool, device=hidden.device)
            for inside in masks:
                inside = torch.as_tensor(inside, device=hidden.device)
                cut |= (~inside)[:, None] & inside[None, :]  # queries outside, keys inside
            cut = cut[None, None, :, : mask.shape[-1]]
            blocked_value = False if mask.dtype == torch.bool else torch.finfo(mask.dtype).min  # SDPA / eager
            mask = mask.masked_fill(cut, blocked_value)
            return args, dict(kwargs, attention_mask=mask)

        return hook

    try:
        for number in range(1, len(layers) + 1):
            masks = [np.asarray(m, dtype=bool) for depth, m in blocked.items() if depth < number - 1]
            if masks:
                handles.append(
                    layers[number - 1].self_attn.register_forward_pre_hook(hook_for(masks), with_kwargs=True)
                )
        yield
    finally:
        for handle in handles:
            handle.remove()


def release_depth(profile: np.ndarray) -> int:
    """The deepest depth (1..N) whose share of the profile is at least half the mean share 1 / N."""
    profile = np.asarray(profile, dtype=np.float64)
    share = profile / max(profile.sum(), 1e-300)
    return int(np.flatnonzero(share >= 0.5 / len(profile))[-1]) + 1


def part_statistics(result: LayerRelevance, prompt: EncodedPrompt, part: str) -> dict:
    """The MRD statistics of one part (see the module docstring) and its profile: the part's share of its own
    summed |relevance| / |logit| at each depth 1..N."""
    mask = prompt.parts[part]
    relevance = normalised_relevance(result)[:, mask]
    by_layer = normalised_relevance(result, "layer")[:, mask]
    depths = major_relevance_depths(relevance)
    profile = relevance.sum(axis=1)
    return dict(
        part=part,
        n_tokens=int(mask.sum()),
        mrd=int(depths.max()),
        median_token_mrd=float(np.median(depths)),
        profile_mrd=major_relevance_depth(profile),
        layer_mrd=int(major_relevance_depths(by_layer).max()),
        release_depth=release_depth(profile),
        profile=(profile / max(profile.sum(), 1e-300)).tolist(),
    )


def swap_context_question(row: pd.Series) -> pd.Series:
    """A prompt row with its test item's question ("Question: ...") put where its context ("Context: ...") was
    and the context after it, at the question's place; the separator between them and every other character
    kept, the spans moved."""
    row = row.copy()
    text = row["prompt"]
    c0, c1, q0, q1 = (int(row[k]) for k in ("context_start", "context_end", "question_start", "question_end"))
    c_label, q_label = c0 - len("Context: "), q0 - len("Question: ")
    if text[c_label:c0] != "Context: " or text[q_label:q0] != "Question: " or not c1 <= q_label:
        raise ValueError("swap_context_question: the row's context does not precede its question with their labels")
    between = text[c1:q_label]
    head = text[:c_label] + "Question: "
    row["question_start"], row["question_end"] = len(head), len(head) + q1 - q0
    middle = head + text[q0:q1] + between + "Context: "
    row["context_start"], row["context_end"] = len(middle), len(middle) + c1 - c0
    row["prompt"] = middle + text[c0:c1] + text[q1:]
    for part in ("task_description", "demonstrations"):  # before the context or after the question: unmoved
        assert row[f"{part}_start"] < 0 or row[f"{part}_end"] <= c_label or row[f"{part}_start"] >= q1
    return row


def control_results(
    model, tokenizer, row: pd.Series, cuts: dict[str, int], extraction: str = "first_line"
) -> dict[str, tuple[EncodedPrompt, LayerRelevance]]:
    """Every condition on one prompt row with its model output (`raw_output`), each explaining the answer's
    first token: the workflow's AttnLRP pass ("attnlrp"), "cp-lrp", the known depths ("known depth"; `cuts`:
    part -> d, all blocked in one pass) and "swapped" parts. Empty for an item whose answer has no first token."""
    prompt, start = encode_to_answer(tokenizer, row, extraction)
    if not start.explained:
        return {}

    def run(encoded: EncodedPrompt, **options) -> tuple[EncodedPrompt, LayerRelevance]:
        return encoded, layer_relevance(model, [encoded], tokenizer.pad_token_id, targets=[start.target_id], **options)[
            0
        ]

    results = {"attnlrp": run(prompt), "cp-lrp": run(prompt, variant="cp-lrp")}
    with blocked_attention(model, {k: prompt.parts[part] for part, k in cuts.items()}):
        results["known depth"] = run(prompt)
    results["swapped"] = run(encode_to_answer(tokenizer, swap_context_question(row), extraction)[0])
    return results


def control_records(results: dict[str, tuple[EncodedPrompt, LayerRelevance]], cuts: dict[str, int]) -> list[dict]:
    """One record per (condition, part) of `control_results`: the `part_statistics`, and for the known depth the
    cut and the share of the part's relevance deeper than it (0 if the pass is right)."""
    records = []
    for condition, (encoded, result) in results.items():
        for part in CONTROL_PARTS:
            record = dict(
                condition=condition, target_logit=result.target_logit, **part_statistics(result, encoded, part)
            )
            if condition == "known depth" and part in cuts:
                record["cut"] = cuts[part]
                record["share_after_cut"] = float(np.sum(record["profile"][cuts[part] :]))
            records.append(record)
    return records
