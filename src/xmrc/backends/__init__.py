"""Generation backends behind one interface: a list of prompt strings in, a list of generations out, same
order. Backends know nothing about prompts' meaning, extraction or scoring.

- `hf`: transformers on CPU or GPU (`xmrc.backends.hf`).
- `vllm`: vLLM offline engine, tensor parallel, prefix caching, LoRA (`xmrc.backends.vllm`; GPU only).
- `api`: OpenAI-compatible chat completions (`xmrc.backends.api`: GPT-3.5/4o, DeepSeek-V3).
hf and vllm are imported when chosen: choosing one backend never imports another's heavy dependencies.
"""

from __future__ import annotations

from xmrc.backends.api import APIBackend
from xmrc.backends.base import Backend, Generation
from xmrc.exceptions import XmrcError

__all__ = ["BACKENDS", "Backend", "Generation", "create_backend", "describe_backend"]

BACKENDS = ("hf", "vllm", "api")


def create_backend(kind: str, **options) -> Backend:
    if kind == "hf":
        from xmrc.backends.hf import HFBackend

        return HFBackend(**options)
    if kind == "vllm":
        from xmrc.backends.vllm import VLLMBackend

        return VLLMBackend(**options)
    if kind == "api":
        return APIBackend(**options)
    raise XmrcError(f"backend '{kind}' is not available (available: {', '.join(BACKENDS)})")


def describe_backend(backend: Backend) -> dict:
    """What produced a generation: backend name, library versions and the settings that change outputs."""
    describe = getattr(backend, "describe", None)
    return describe() if describe is not None else {"name": backend.name}
