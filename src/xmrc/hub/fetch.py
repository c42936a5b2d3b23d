"""Model snapshots for nodes without internet: fetched on the submit host, read offline by GPU jobs.

`fetch_snapshot` downloads a registry model's files (`huggingface_hub.snapshot_download`, the registry's
pinned `revision`, weights in safetensors only) into a shared cache and returns a stamp: hub id, requested
revision, the resolved commit and the snapshot directory. Generation jobs load that directory with
`HF_HUB_OFFLINE=1`. Gated models (Llama, Gemma) need `HF_TOKEN`; the token goes to the Hub client only,
never into the stamp, a log or an error message.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from xmrc.config import Model
from xmrc.exceptions import XmrcError

# Configs, tokenizers and safetensors weights; not the duplicate original/*.pth checkpoints or *.bin.
ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.tiktoken", "*.txt", "*.py", "*.jinja"]
IGNORE_PATTERNS = ["original/*", "*.pth", "*.bin", "*.pt", "*.gguf"]


def _label(model: Model) -> str:
    return f"model '{model.key}' ({model.hub_id})"


def fetch_snapshot(model: Model, cache_dir: str | Path, environ: dict | None = None) -> dict:
    environ = os.environ if environ is None else environ
    if model.backend != "local" or model.source != "hub":
        raise XmrcError(f"model '{model.key}': nothing to fetch (backend {model.backend}, source {model.source})")
    token = environ.get("HF_TOKEN") or None
    offline = environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if model.gated and token is None and not offline:
        raise XmrcError(
            f"{_label(model)} is gated on the Hugging Face Hub: export HF_TOKEN (a token of an account "
            f"that accepted its licence at https://huggingface.co/{model.hub_id})"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        path = snapshot_download(
            model.hub_id,
            revision=model.revision,
            cache_dir=str(cache_dir),
            token=token,
            allow_patterns=ALLOW_PATTERNS,
            ignore_patterns=IGNORE_PATTERNS,
        )
    except GatedRepoError:
        raise XmrcError(
            f"{_label(model)}: access denied; accept the licence at https://huggingface.co/"
            f"{model.hub_id} with the account of HF_TOKEN"
        ) from None
    except RevisionNotFoundError:
        raise XmrcError(f"{_label(model)}: revision '{model.revision}' not found on the Hub") from None
    except RepositoryNotFoundError:
        raise XmrcError(f"{_label(model)}: repository not found (or HF_TOKEN has no access to it)") from None
    except LocalEntryNotFoundError:
        raise XmrcError(
            f"{_label(model)}: not in the cache {cache_dir} and the Hub cannot be reached "
            f"(offline mode or no network); fetch it on a host with internet"
        ) from None
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", "?")
        raise XmrcError(f"{_label(model)}: the Hub answered HTTP {status}") from None
    except OSError as error:
        raise XmrcError(f"{_label(model)}: download failed ({type(error).__name__}: {error.strerror or ''})") from None
    return {
        "model": model.key,
        "hub_id": model.hub_id,
        "revision": model.revision,
        "commit": Path(path).name,
        "path": str(path),
    }


def read_stamp(path: str | Path) -> dict:
    """A stamp written by `xmrc fetch-model`; its snapshot directory must still exist."""
    try:
        stamp = json.loads(Path(path).read_text())
        snapshot = Path(stamp["path"])
    except FileNotFoundError:
        raise XmrcError(f"{path}: snapshot stamp not found (run the fetch_model rule first)") from None
    except (ValueError, KeyError, TypeError):
        raise XmrcError(f"{path}: not a snapshot stamp written by `xmrc fetch-model`") from None
    if not snapshot.is_dir():
        raise XmrcError(f"{path}: snapshot directory {snapshot} is gone; delete the stamp and fetch again")
    return stamp
