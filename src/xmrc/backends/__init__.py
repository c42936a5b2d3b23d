"""Generation backends behind one interface: a list of prompt strings in, a list of generations out, same
order. Backends know nothing about prompts' meaning, extraction or scoring."""

from __future__ import annotations

from xmrc.backends.base import Backend, Generation
from xmrc.exceptions import XmrcError

__all__ = ["Backend", "Generation", "create_backend"]


def create_backend(kind: str, **options) -> Backend:
    if kind == "hf":
        from xmrc.backends.hf import HFBackend
        return HFBackend(**options)
    raise XmrcError(f"backend '{kind}' is not available in this version (available: hf)")
