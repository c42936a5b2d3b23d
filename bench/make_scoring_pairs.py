"""Realistic (lang, prediction, gold) triples built from the XQuAD answers.

Golds are XQuAD answer texts; predictions are what models tend to return for them: the answer
itself, the answer with articles/quotes/punctuation around it, a context span that overshoots or
falls short of it, a whole clause of the context, another question's answer, the English answer
(a language error), a blank, or the answer with changed case or spacing.

    python bench/make_scoring_pairs.py [--xquad-dir DIR] [--out tests/data/scoring_pairs.jsonl]

writes the committed test fixture. ``bench/bench_scoring.py`` imports ``load_questions`` and
``simulate_models`` from here.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_XQUAD_DIR = ROOT.parent / "shared" / "data" / "xquad"
DEFAULT_OUT = ROOT / "tests" / "data" / "scoring_pairs.jsonl"
LANGS = ("en", "de", "es", "vi", "zh", "hi", "ar", "el", "ro", "ru", "th", "tr")

# Articles / determiners a model may add in front of an answer, per language.
_PREFIXES = {
    "en": ["The ", "a ", "An "],
    "es": ["El ", "la ", "unos "],
    "de": ["Der ", "die ", "einem "],
    "vi": ["những ", "của ", "một ", "cái "],
    "zh": ["这个", "“"],
    "hi": ["एक ", "यह "],
    "ar": ["ال", "ال ", "و"],
    "el": ["Ο ", "το ", "τα "],
    "ro": ["un ", "o ", "Cei "],
    "ru": ["Это ", "— "],
    "th": ["การ", "คือ "],
    "tr": ["bir ", "Bu "],
}
_WRAPS = ['"{}".', "«{}»", "({})", "{}。", "「{}」", "{}!", "¿{}?", "'{}'", "{}…", "“{}”", "{}، ", "- {}:"]

KINDS = ("answer", "decorated", "overshoot", "truncated", "clause", "other", "english", "blank", "case")
# How often each kind is drawn when simulating a model (bench); the fixture takes every kind.
WEIGHTS = (35, 10, 15, 5, 12, 5, 5, 3, 10)


@dataclass(frozen=True)
class Question:
    lang: str
    context: str
    answer: str
    start: int
    en_answer: str


def _answers(path: Path) -> dict[str, tuple[str, str, int]]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return {
        qa["id"]: (p["context"], qa["answers"][0]["text"], qa["answers"][0]["answer_start"])
        for article in data
        for p in article["paragraphs"]
        for qa in p["qas"]
    }


def load_questions(xquad_dir: Path, langs=LANGS) -> dict[str, list[Question]]:
    """Every XQuAD question per language, in file order, with its English answer."""
    english = _answers(Path(xquad_dir) / "xquad.en.json")
    out = {}
    for lang in langs:
        rows = english if lang == "en" else _answers(Path(xquad_dir) / f"xquad.{lang}.json")
        out[lang] = [Question(lang, c, a, s, english[qid][1]) for qid, (c, a, s) in rows.items()]
    return out


def predict(rng: random.Random, q: Question, kind: str, others: list[Question]) -> str:
    """One prediction of the given kind for question ``q``."""
    a, ctx = q.answer, q.context
    start = q.start if ctx[q.start : q.start + len(a)] == a else max(ctx.find(a), 0)
    end = start + len(a)
    if kind == "answer":
        return a
    if kind == "decorated":
        return rng.choice(_WRAPS).format(rng.choice(_PREFIXES[q.lang]) + a)
    if kind == "overshoot":
        return ctx[max(0, start - rng.randint(0, 25)) : end + rng.randint(0, 25)].strip()
    if kind == "truncated":
        cut = rng.randint(1, max(1, len(a) - 1))
        return a[:cut] if rng.random() < 0.5 else a[cut:]
    if kind == "clause":
        return ctx[max(0, start - rng.randint(20, 80)) : end + rng.randint(20, 80)]
    if kind == "other":
        return rng.choice(others).answer
    if kind == "english":
        return q.en_answer
    if kind == "blank":
        return rng.choice(["", " ", "\n"])
    if kind == "case":
        return rng.choice([a.upper(), a.title(), "  " + a.replace(" ", "  ") + "\n"])
    raise ValueError(f"unknown kind {kind!r}")


def fixture_pairs(questions: dict[str, list[Question]], per_lang: int, seed: int = 0) -> list[dict]:
    """Every kind of prediction for ``per_lang`` random questions of each language."""
    rng = random.Random(seed)
    pairs = []
    for lang, qs in questions.items():
        for q in rng.sample(qs, min(per_lang, len(qs))):
            for kind in KINDS:
                pairs.append({"lang": lang, "kind": kind, "prediction": predict(rng, q, kind, qs), "gold": q.answer})
    return pairs


def simulate_models(questions: dict[str, list[Question]], n_models: int, seed: int = 0) -> list[dict]:
    """One prediction per (model, question): each gold recurs ``n_models`` times, as in the workflow."""
    rng = random.Random(seed)
    pairs = []
    for lang, qs in questions.items():
        for q in qs:
            for kind in rng.choices(KINDS, WEIGHTS, k=n_models):
                pairs.append({"lang": lang, "kind": kind, "prediction": predict(rng, q, kind, qs), "gold": q.answer})
    return pairs


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xquad-dir", type=Path, default=DEFAULT_XQUAD_DIR)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--per-lang", type=int, default=18, help="questions sampled per language")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    pairs = fixture_pairs(load_questions(args.xquad_dir), args.per_lang, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as fh:
        for pair in pairs:
            fh.write(json.dumps(pair, ensure_ascii=False) + "\n")
    print(f"wrote {len(pairs)} pairs ({args.out.stat().st_size / 1024:.0f} KiB) to {args.out}")


if __name__ == "__main__":
    main()
