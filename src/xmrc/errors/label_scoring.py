"""Next-token label scoring with transformers: for each prompt, the log-probability of each label token as
the next token. The verdict is the best-scoring label, so it is always one of the labels.

Batched and left-padded, longest prompts first; position ids follow the attention mask, so a padded row
scores exactly as it would alone.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from xmrc.backends.base import longest_first_batches
from xmrc.backends.hf import HFBackend
from xmrc.exceptions import XmrcError


def label_token_ids(tokenizer, labels: Sequence[str]) -> list[int]:
    """The one token each label is emitted as. A vocabulary entry spelled exactly like the label wins (a
    SentencePiece tokenizer encodes "0" as "▁" + "0" but emits a bare "0" after the assistant header);
    otherwise the label must encode to a single token. Labels must map to distinct tokens."""
    ids = []
    for label in labels:
        token_id = tokenizer.convert_tokens_to_ids(label)
        if token_id is None or token_id == tokenizer.unk_token_id:
            encoded = tokenizer.encode(label, add_special_tokens=False)
            if len(encoded) != 1:
                raise XmrcError(
                    f"{tokenizer.name_or_path}: judge label {label!r} is not a single token "
                    f"(encodes to {len(encoded)} tokens)"
                )
            token_id = encoded[0]
        ids.append(int(token_id))
    if len(set(ids)) != len(ids):
        raise XmrcError(f"{tokenizer.name_or_path}: judge labels {list(labels)} share tokens ({ids})")
    return ids


class LabelScorer(HFBackend):
    """An `HFBackend` (same loading, batching and left padding) that also scores label tokens."""

    def __init__(
        self, weights: str, revision: str | None = None, dtype: str = "bfloat16", batch_size: int = 8, **options
    ):
        super().__init__(weights, revision, dtype, batch_size, **options)
        # Prompts are encoded once (to sort by length) and padded per batch: that is intended, not slow.
        self.tokenizer.deprecation_warnings["Asking-to-pad-a-fast-tokenizer"] = True
        self._keeps_logits = "logits_to_keep" in inspect.signature(self.model.forward).parameters

    def _last_logits(self, input_ids, attention_mask, position_ids) -> torch.Tensor:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids}
        if self._keeps_logits:  # only the last position: a 150k vocabulary at every position is gigabytes
            inputs["logits_to_keep"] = 1
        return self.model(**inputs).logits[:, -1, :]

    @torch.inference_mode()
    def score(self, prompts: Sequence[str], labels: Sequence[str], templated: bool) -> np.ndarray:
        """log P(label | prompt) over the whole vocabulary, shape (len(prompts), len(labels)), float32."""
        label_ids = torch.tensor(label_token_ids(self.tokenizer, labels))
        encoded = self.tokenize(prompts, templated)
        scores = np.full((len(prompts), len(labels)), np.nan, dtype=np.float32)
        batches = longest_first_batches([len(ids) for ids in encoded], self.batch_size)
        for batch in tqdm(batches, desc="judge", unit="batch", disable=not self.progress):
            padded = self.tokenizer.pad({"input_ids": [encoded[i] for i in batch]}, return_tensors="pt")
            input_ids = padded["input_ids"].to(self.model.device)
            attention_mask = padded["attention_mask"].to(self.model.device)
            position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
            logits = self._last_logits(input_ids, attention_mask, position_ids)
            log_probs = torch.log_softmax(logits.float(), dim=-1)[:, label_ids.to(logits.device)]
            scores[batch] = log_probs.cpu().numpy()
        return scores
