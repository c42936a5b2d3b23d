"""Throughput of language detection (Lingua, 12 XQuAD languages, high accuracy) on real XQuAD answers.

    python bench/bench_language_detection.py [--answers N] [--xquad-dir DIR] [--threads T]

The answer strings are XQuAD's gold answers in all 12 languages (14,280 strings; the bundled three-article
subset when the full data is not found), cycled and shuffled to N (default 120,000). Timed in one process:
  - Lingua's parallel batch `detect_languages_in_parallel_of` over all N strings (what a detector sees when
    every answer is distinct),
  - `xmrc.errors.language.detect`, the workflow's path: each distinct string detected once,
  - Lingua's one-at-a-time `detect_language_of` on a sample, for the ratio to the batch.
Also printed: how often an answer is detected as its own language, and how often Lingua cannot decide.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_XQUAD_DIR = ROOT.parent / "shared" / "data" / "xquad"
FALLBACK_DIR = ROOT / "data" / "xquad_subset"
LANGS = ("en", "de", "es", "vi", "zh", "hi", "ar", "el", "ro", "ru", "th", "tr")


def load_answers(xquad_dir: Path) -> tuple[list[tuple[str, str]], str]:
    source = xquad_dir if (xquad_dir / "xquad.en.json").exists() else FALLBACK_DIR
    answers = []
    for lang in LANGS:
        data = json.loads((source / f"xquad.{lang}.json").read_text(encoding="utf-8"))["data"]
        answers += [
            (lang, qa["answers"][0]["text"])
            for article in data
            for paragraph in article["paragraphs"]
            for qa in paragraph["qas"]
        ]
    note = "" if source == xquad_dir else " (full XQuAD not found: bundled subset)"
    return answers, f"{source}{note}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=120_000)
    parser.add_argument("--xquad-dir", type=Path, default=DEFAULT_XQUAD_DIR)
    parser.add_argument("--threads", type=int, default=None, help="Lingua worker threads (default: all cores)")
    parser.add_argument("--sequential-sample", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        os.environ["RAYON_NUM_THREADS"] = str(args.threads)
    sys.path.insert(0, str(ROOT / "src"))  # this checkout's package, even where another one is installed
    from xmrc.errors.language import UNDECIDED, build_detector, detect

    pool, source = load_answers(args.xquad_dir)
    rng = random.Random(args.seed)
    labelled = (pool * (args.answers // len(pool) + 1))[: args.answers]
    rng.shuffle(labelled)
    texts = [text for _, text in labelled]
    print(
        f"{len(texts)} answer strings ({len(set(texts))} distinct) from {len(pool)} XQuAD answers in "
        f"{len(LANGS)} languages; source {source}; {os.cpu_count()} CPU cores, "
        f"threads {args.threads or 'all'}"
    )

    started = time.perf_counter()
    detector = build_detector(threads=args.threads)
    detector.detect_languages_in_parallel_of(texts[:1000])  # loads the language models
    print(f"detector built, models loaded: {time.perf_counter() - started:.2f} s")

    started = time.perf_counter()
    batch = detector.detect_languages_in_parallel_of(texts)
    batch_rate = len(texts) / (time.perf_counter() - started)
    print(f"Lingua parallel batch, every string:         {batch_rate:10,.0f} answers/s")

    started = time.perf_counter()
    ours = detect(detector, texts)
    ours_rate = len(texts) / (time.perf_counter() - started)
    print(
        f"xmrc detect (distinct strings once):         {ours_rate:10,.0f} answers/s  "
        f"({ours_rate / batch_rate:.1f}x the batch)"
    )

    sample = texts[: args.sequential_sample]
    started = time.perf_counter()
    for text in sample:
        detector.detect_language_of(text)
    sequential_rate = len(sample) / (time.perf_counter() - started)
    print(
        f"Lingua one at a time ({len(sample)} strings):       {sequential_rate:10,.0f} answers/s  "
        f"(batch is {batch_rate / sequential_rate:.1f}x)"
    )

    codes = [lang.iso_code_639_1.name.lower() if lang is not None else UNDECIDED for lang in batch]
    assert codes == ours, "the deduplicated path must give the batch's answers"
    per_lang = Counter(lang for lang, _ in labelled)
    own = Counter(lang for (lang, _), code in zip(labelled, codes) if code == lang)
    undecided = Counter(lang for (lang, _), code in zip(labelled, codes) if code == UNDECIDED)
    print("language: detected as itself / undecided (% of its answers)")
    print(
        "  "
        + "  ".join(
            f"{lang} {100 * own[lang] / per_lang[lang]:.0f}/{100 * undecided[lang] / per_lang[lang]:.0f}"
            for lang in LANGS
        )
    )


if __name__ == "__main__":
    main()
