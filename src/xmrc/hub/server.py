"""A small OpenAI-compatible chat completions server over the HF backend (`xmrc serve`).

It lets the API backend be exercised end to end without a provider: tests start it on localhost with a tiny
model; it applies the model's chat template to the user turn, generates greedily with `HFBackend` and
answers in the OpenAI response format. Fault injection (`faults`: statuses for the first requests, then
`fault_every`: every k-th request fails) makes 429/5xx paths testable; `GET /stats` reports the request
count and the largest number of requests in flight at once (bounded concurrency is checkable).
Standard library HTTP server; one generation at a time (the model is not thread-safe).
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULT_STATUSES = (429, 500, 502, 503)


class _State:
    def __init__(
        self, backend, chat_template, api_key: str | None, faults: list[int], fault_every: int, delay_s: float
    ):
        self.backend, self.chat_template, self.api_key = backend, chat_template, api_key
        self.faults, self.fault_every, self.delay_s = list(faults), fault_every, delay_s
        self.lock, self.model_lock = threading.Lock(), threading.Lock()
        self.requests = self.in_flight = self.max_in_flight = self.failed = 0

    def fault_for(self, number: int) -> int | None:
        if number <= len(self.faults):
            return self.faults[number - 1]
        if self.fault_every and number % self.fault_every == 0:
            return FAULT_STATUSES[(number // self.fault_every) % 2]  # alternate 429 and 500
        return None


def _handler(state: _State):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002 - quiet: tests read stdout
            pass

        def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path.rstrip("/") == "/stats":
                with state.lock:
                    self._send(
                        200, {"requests": state.requests, "max_in_flight": state.max_in_flight, "failed": state.failed}
                    )
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path.rstrip("/") != "/v1/chat/completions":
                return self._send(404, {"error": {"message": "not found"}})
            if state.api_key is not None:
                given = self.headers.get("Authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {state.api_key}".encode()):
                    return self._send(401, {"error": {"message": "invalid api key"}})
            with state.lock:
                state.requests += 1
                number = state.requests
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            try:
                fault = state.fault_for(number)
                if state.delay_s:
                    time.sleep(state.delay_s)
                if fault is not None:
                    with state.lock:
                        state.failed += 1
                    headers = {"Retry-After": "0"} if fault == 429 else None
                    return self._send(fault, {"error": {"message": f"injected fault {fault}"}}, headers)
                try:
                    request = json.loads(raw)
                    user = [m["content"] for m in request["messages"] if m.get("role") == "user"][-1]
                    max_tokens = int(request.get("max_tokens") or 16)
                except (ValueError, KeyError, IndexError, TypeError):
                    return self._send(400, {"error": {"message": "expected messages with a user turn"}})
                prompt = state.chat_template(user) if state.chat_template else user
                with state.model_lock:
                    generation = state.backend.generate([prompt], max_tokens, state.chat_template is not None)[0]
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{number}",
                        "object": "chat.completion",
                        "model": request.get("model", ""),
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": generation.text},
                            }
                        ],
                        "usage": {
                            "prompt_tokens": generation.prompt_tokens,
                            "completion_tokens": generation.output_tokens,
                            "total_tokens": generation.prompt_tokens + generation.output_tokens,
                        },
                    },
                )
            finally:
                with state.lock:
                    state.in_flight -= 1

    return Handler


def make_server(
    backend,
    chat_template,
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str | None = None,
    faults: list[int] | None = None,
    fault_every: int = 0,
    delay_s: float = 0.0,
) -> ThreadingHTTPServer:
    state = _State(backend, chat_template, api_key, faults or [], fault_every, delay_s)
    server = ThreadingHTTPServer((host, port), _handler(state))
    server.daemon_threads = True
    server.state = state
    return server
