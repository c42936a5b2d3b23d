"""Hugging Face transformers backend: greedy, batched, left-padded, longest prompts first.

Longest-first batching keeps padding small (neighbours have similar lengths) and fails fast on memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteria, StoppingCriteriaList

from xmrc.backends.base import Generation, StopRule, longest_first_batches
from xmrc.exceptions import XmrcError

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32, "auto": "auto"}


class _StopWhen(StoppingCriteria):
    """Per-sequence early stop: decodes only the new tokens and asks `stop_when`."""

    def __init__(self, tokenizer, prompt_length: int, stop_when: StopRule):
        self.tokenizer, self.prompt_length, self.stop_when = tokenizer, prompt_length, stop_when

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length :], skip_special_tokens=True)
        return torch.tensor([self.stop_when(text) for text in texts], dtype=torch.bool, device=input_ids.device)


def complete_characters(text: str) -> str:
    """Drop the U+FFFD that a byte-level tokenizer decodes from a character cut off at the token limit (the last
    tokens hold only some of its UTF-8 bytes), as vLLM's incremental detokenizer does: both backends then give
    the same text."""
    return text.rstrip("\ufffd")


def _first_line(error: Exception, limit: int = 300) -> str:
    """A loader's error in one line of a readable length (some list every model type they know)."""
    line = (str(error).strip().splitlines() or [""])[0]
    line = line if len(line) <= limit else line[: limit - 3] + "..."
    return f"{type(error).__name__}: {line}" if line else type(error).__name__


def load_tokenizer(weights: str, revision: str | None = None):
    try:
        tokenizer = AutoTokenizer.from_pretrained(weights, revision=revision)
    except Exception as error:  # a damaged or incomplete snapshot raises many kinds (AttributeError, KeyError...)
        raise XmrcError(f"{weights}: could not load the tokenizer ({_first_line(error)})") from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_causal_lm(
    weights: str, revision: str | None = None, dtype: str = "bfloat16", device: str | None = None, gpus: int = 1
):
    """A causal LM in eval mode on `device`; with several GPUs its layers are sharded over them. Every stage that
    runs a model (generation, the judge, attribution) loads it here."""
    device = device or default_device()
    if device == "cpu" and dtype in ("bfloat16", "float16"):
        dtype = "float32"  # half precision matmuls are slow or missing on CPU
    options = {"revision": revision, "dtype": DTYPES[dtype]}
    if device == "cuda" and gpus > 1:
        options["device_map"] = "auto"  # shard large models over the job's GPUs
    try:
        model = AutoModelForCausalLM.from_pretrained(weights, **options)
    except Exception as error:  # a damaged snapshot: safetensors' SafetensorError among others
        raise XmrcError(f"{weights}: could not load the model ({_first_line(error)})") from None
    if "device_map" not in options:
        model.to(device)
    return model.eval()


class HFBackend:
    name = "hf"

    def __init__(
        self,
        weights: str,
        revision: str | None = None,
        dtype: str = "bfloat16",
        batch_size: int = 16,
        device: str | None = None,
        gpus: int = 1,
        progress: bool = True,
    ):
        self.batch_size, self.progress = batch_size, progress
        self.weights, self.revision = str(weights), revision
        self.device = device or default_device()
        self.tokenizer = load_tokenizer(weights, revision)
        self.model = load_causal_lm(weights, revision, dtype, self.device, gpus)
        self.dtype = str(self.model.dtype).replace("torch.", "")

    @classmethod
    def from_model(cls, model, tokenizer, batch_size: int = 16, progress: bool = True) -> HFBackend:
        """A backend around a model already in memory (benchmarks of randomly initialised shapes)."""
        backend = cls.__new__(cls)
        backend.model, backend.tokenizer = model.eval(), tokenizer
        backend.batch_size, backend.progress = batch_size, progress
        backend.weights, backend.revision = getattr(model, "name_or_path", "in-memory"), None
        backend.device, backend.dtype = str(model.device.type), str(model.dtype).replace("torch.", "")
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return backend

    def describe(self) -> dict:
        import transformers

        return {
            "name": self.name,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "weights": self.weights,
            "revision": self.revision,
            "dtype": self.dtype,
            "batch_size": self.batch_size,
            "device": self.device,
            "decoding": "greedy",
        }

    def tokenize(self, prompts: Sequence[str], templated: bool) -> list[list[int]]:
        return self.tokenizer(list(prompts), add_special_tokens=not templated)["input_ids"]

    def generate(
        self, prompts: Sequence[str], max_new_tokens: int, templated: bool, stop_when: StopRule | None = None
    ) -> list[Generation]:
        encoded = self.tokenize(prompts, templated)
        new_tokens = generate_until(
            self.model, self.tokenizer, encoded, max_new_tokens, self.batch_size, stop_when, self.progress
        )
        texts = [
            complete_characters(text) for text in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        ]
        return [
            Generation(text, len(prompt), int((tokens != self.tokenizer.pad_token_id).sum()))
            for text, prompt, tokens in zip(texts, encoded, new_tokens)
        ]


@torch.inference_mode()
def generate_until(
    model,
    tokenizer,
    encoded: Sequence[list[int]],
    max_new_tokens: int,
    batch_size: int,
    stop_when: StopRule | None = None,
    progress: bool = False,
) -> list[torch.Tensor]:
    """Greedy continuations of tokenised prompts, batched longest first and left-padded, each ended early once
    `stop_when(its text)` holds (the answer is complete): every prompt's new token ids (pad ids after its
    end), in the prompts' order. The generation stage and the oracle's regeneration both run here, so the
    oracle sees the answers the generation stage produced."""
    results: list[torch.Tensor | None] = [None] * len(encoded)
    batches = longest_first_batches([len(ids) for ids in encoded], batch_size)
    for batch in tqdm(batches, desc="generate", unit="batch", disable=not progress):
        padded = tokenizer.pad({"input_ids": [encoded[i] for i in batch]}, return_tensors="pt")
        input_ids = padded["input_ids"].to(model.device)
        attention_mask = padded["attention_mask"].to(model.device)
        criteria = StoppingCriteriaList([_StopWhen(tokenizer, input_ids.shape[1], stop_when)]) if stop_when else None
        output = model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            stopping_criteria=criteria,
            pad_token_id=tokenizer.pad_token_id,
            temperature=None,
            top_p=None,
            top_k=None,
        )
        new_tokens = output[:, input_ids.shape[1] :].to("cpu")
        for row, index in enumerate(batch):
            results[index] = new_tokens[row]
    return results
