"""OpenAI-compatible chat completions backend (GPT-3.5-Turbo-0125, GPT-4o, DeepSeek-V3).

Each prompt is sent as one user turn (the provider applies its own chat template), greedy (temperature 0).
Key and base URL come from environment variables named after the provider (`OPENAI_API_KEY`,
`OPENAI_BASE_URL`, `DEEPSEEK_API_KEY`, ...). The key is only ever put in the Authorization header: it is
never logged, never in an error message, never in `describe()` (which is written to outputs).

Requests run with bounded concurrency (a thread pool); 429, 5xx, timeouts and dropped connections are
retried with exponential backoff and jitter (a server's Retry-After is honoured, capped); other 4xx stop
the job with one line. Standard library only (urllib), so no client SDK version to pin.

Each response's `model` field (the model the provider actually served, e.g. the dated snapshot
"gpt-4o-2024-08-06" behind "gpt-4o") comes back with its generation (`APIGeneration.served_model`); the
generation job records the served names in its table's metadata and warns when one is not the requested
model (`served_model_matches`). An alias that the provider moves to a newer model under the same name
(DeepSeek's "deepseek-chat") cannot be caught this way: see the registry's note on it.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tqdm.auto import tqdm

from xmrc.backends.base import Generation, StopRule
from xmrc.exceptions import XmrcError

DEFAULT_BASE_URLS = {"openai": "https://api.openai.com/v1", "deepseek": "https://api.deepseek.com/v1"}
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
# The date a provider appends to a model name for the snapshot it served: gpt-4o-2024-08-06,
# claude-3-5-sonnet-20241022, gpt-3.5-turbo-0125 (month and day).
SNAPSHOT_SUFFIX = re.compile(r"-(20\d{2}-[01]\d-[0-3]\d|20\d{2}[01]\d[0-3]\d|[01]\d[0-3]\d)")


@dataclass(frozen=True)
class APIGeneration(Generation):
    """A generation with the model name the provider's response gave (None: the response had none)."""

    served_model: str | None = None


def served_model_matches(requested: str, served: str) -> bool:
    """Whether `served` (a response's `model`) is the `requested` model: the same name (case aside), or the
    name with a snapshot date appended ("gpt-4o" served as "gpt-4o-2024-08-06")."""
    requested, served = requested.strip().lower(), served.strip().lower()
    if served == requested:
        return True
    return served.startswith(requested) and SNAPSHOT_SUFFIX.fullmatch(served[len(requested) :]) is not None


def key_variable(provider: str) -> str:
    return f"{provider.upper().replace('-', '_')}_API_KEY"


def base_url_variable(provider: str) -> str:
    return f"{provider.upper().replace('-', '_')}_BASE_URL"


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


class APIBackend:
    name = "api"

    def __init__(
        self,
        model: str,
        provider: str,
        concurrency: int = 8,
        max_retries: int = 8,
        timeout_s: float = 60.0,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        progress: bool = True,
        environ: dict | None = None,
    ):
        environ = os.environ if environ is None else environ
        self.model, self.provider = model, provider
        self.concurrency, self.max_retries, self.timeout_s = max(1, concurrency), max_retries, timeout_s
        self.backoff_s, self.max_backoff_s, self.progress = backoff_s, max_backoff_s, progress
        variable = key_variable(provider)
        self._key = environ.get(variable, "")
        if not self._key.strip():
            raise XmrcError(
                f"model '{model}' (provider {provider}): environment variable {variable} is not set; "
                f"export the API key there"
            )
        default = DEFAULT_BASE_URLS.get(provider)
        self.base_url = (environ.get(base_url_variable(provider)) or default or "").rstrip("/")
        if not self.base_url:
            raise XmrcError(
                f"model '{model}' (provider {provider}): no default endpoint for this provider; "
                f"set {base_url_variable(provider)}"
            )
        self.retries_used = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # never the key
        return f"APIBackend(model={self.model!r}, provider={self.provider!r})"

    def describe(self) -> dict:
        # The base URL is left out on purpose: it may carry credentials, and moving to another endpoint of
        # the same provider must not invalidate a half-finished job's shards.
        return {"name": self.name, "provider": self.provider, "model": self.model, "temperature": 0}

    def generate(
        self, prompts: Sequence[str], max_new_tokens: int, templated: bool, stop_when: StopRule | None = None
    ) -> list[Generation]:
        del templated, stop_when  # the provider templates; extraction takes the first line
        results: list[Generation | None] = [None] * len(prompts)
        with (
            ThreadPoolExecutor(max_workers=self.concurrency) as pool,
            tqdm(total=len(prompts), desc="api", unit="prompt", disable=not self.progress) as bar,
        ):
            futures = {pool.submit(self._complete, prompt, max_new_tokens): i for i, prompt in enumerate(prompts)}
            try:
                for future, index in futures.items():
                    results[index] = future.result()
                    bar.update()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return results

    def _complete(self, prompt: str, max_new_tokens: int) -> Generation:
        body = json.dumps(
            {
                "model": self.model,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": 0,
                "max_tokens": max_new_tokens,
            }
        ).encode()
        for attempt in range(self.max_retries + 1):
            try:
                return self._post(body)
            except _Retryable as retry:
                if attempt == self.max_retries:
                    raise XmrcError(
                        f"{self.provider} API ({self.model}): gave up after {attempt + 1} attempts, "
                        f"last: {retry.reason}"
                    ) from None
                with self._lock:
                    self.retries_used += 1
                delay = min(self.max_backoff_s, self.backoff_s * 2**attempt) * (0.5 + random.random() / 2)
                if retry.retry_after is not None:
                    delay = max(delay, min(retry.retry_after, self.max_backoff_s))
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _post(self, body: bytes) -> Generation:
        request = urllib.request.Request(
            f"{self.base_url}/chat/completions",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._key}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = _error_detail(error)
            if error.code in RETRY_STATUSES:
                raise _Retryable(f"HTTP {error.code}{detail}", _retry_after(error)) from None
            if error.code in (401, 403):
                raise XmrcError(
                    f"{self.provider} API ({self.model}): the key in {key_variable(self.provider)} "
                    f"was rejected (HTTP {error.code}{detail})"
                ) from None
            raise XmrcError(f"{self.provider} API ({self.model}): HTTP {error.code}{detail}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise _Retryable(f"connection problem ({type(reason).__name__})") from None
        except ValueError:
            raise _Retryable("response is not JSON") from None
        try:
            text = payload["choices"][0]["message"]["content"] or ""
            usage = payload.get("usage") or {}
            served = payload.get("model")
        except (KeyError, IndexError, TypeError):
            raise _Retryable("response has no choices[0].message.content") from None
        return APIGeneration(
            text,
            int(usage.get("prompt_tokens", 0)),
            int(usage.get("completion_tokens", 0)),
            served.strip() if isinstance(served, str) and served.strip() else None,
        )


def _retry_after(error: urllib.error.HTTPError) -> float | None:
    value = error.headers.get("Retry-After") if error.headers else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _error_detail(error: urllib.error.HTTPError) -> str:
    """The server's error message, one line, short (servers do not echo the key back)."""
    try:
        message = json.loads(error.read()).get("error", {})
        message = message.get("message", "") if isinstance(message, dict) else str(message)
    except Exception:
        return ""
    message = " ".join(str(message).split())[:200]
    return f": {message}" if message else ""
