"""Throughput of xmrc.scoring.score_pairs against the plain official scoring functions.

    python bench/bench_scoring.py [--pairs N] [--xquad-dir DIR] [--repeat R]

Pairs simulate the workflow: every XQuAD gold of every language is scored against one
prediction from each of several models (``make_scoring_pairs.simulate_models``), so golds repeat
and popular answers recur. Both sides score the same pairs in the same process; the official
side calls ``exact_match_score`` and ``f1_score`` per pair, as the official ``evaluate()`` does;
``score_pairs`` gets one call per language and builds its memo afresh on every call, so nothing
is carried over between timed runs. Results must agree exactly (a blank prediction scores 0 by
design, see xmrc.scoring). "mlqa" is timed on the languages the official MLQA script defines
identically (en es de vi hi zh); "squad" on all 12.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
try:
    import xmrc.scoring  # noqa: F401
except ImportError:  # not installed: use the source tree
    sys.path.insert(0, str(HERE.parent / "src"))

import official_eval as official
from make_scoring_pairs import DEFAULT_XQUAD_DIR, LANGS, load_questions, simulate_models

from xmrc.scoring import score_pairs

FIXTURE = HERE.parent / "tests" / "data" / "scoring_pairs.jsonl"
MLQA_OFFICIAL = ("en", "es", "de", "vi", "hi", "zh")


def load_pairs(xquad_dir: Path, n_pairs: int) -> tuple[list[dict], str]:
    if (xquad_dir / "xquad.en.json").exists():
        questions = load_questions(xquad_dir)
        n_models = math.ceil(n_pairs / sum(map(len, questions.values())))
        return simulate_models(questions, n_models), f"XQuAD answers in {xquad_dir}, {n_models} simulated models"
    pairs = [json.loads(line) for line in FIXTURE.open(encoding="utf-8")]
    reps = math.ceil(n_pairs / len(pairs))
    return pairs * reps, f"fixture {FIXTURE.name} repeated {reps}x (XQuAD not found: cache hits overstated)"


def run_official(groups: dict[str, list[dict]], normalization: str) -> dict[str, tuple[list, list]]:
    out = {}
    for lang, pairs in groups.items():
        ems, f1s = [], []
        for pair in pairs:
            p, g = pair["prediction"], pair["gold"]
            if normalization == "squad":
                ems.append(float(official.squad_exact_match_score(p, g)))
                f1s.append(float(official.squad_f1_score(p, g)))
            else:
                ems.append(float(official.mlqa_exact_match_score(p, g, lang)))
                f1s.append(float(official.mlqa_f1_score(p, g, lang)))
        out[lang] = ems, f1s
    return out


def run_fast(groups: dict[str, list[dict]], normalization: str) -> dict[str, tuple[list, list]]:
    return {
        lang: score_pairs([p["prediction"] for p in pairs], [p["gold"] for p in pairs], lang, normalization)
        for lang, pairs in groups.items()
    }


def best_time(fn, groups, normalization, repeat: int):
    best, result = math.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(groups, normalization)
        best = min(best, time.perf_counter() - start)
    return best, result


def check(groups, reference, fast) -> None:
    for lang, pairs in groups.items():
        for pair, em, f, fast_em, fast_f in zip(pairs, *reference[lang], *fast[lang]):
            if not pair["prediction"].strip():
                em = f = 0.0  # blank predictions score 0 by design
            assert (em, f) == (fast_em, fast_f), (lang, pair, (em, f), (fast_em, fast_f))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pairs",
        type=int,
        default=150_000,
        help="at least this many pairs over all 12 languages (whole simulated models)",
    )
    parser.add_argument("--xquad-dir", type=Path, default=DEFAULT_XQUAD_DIR)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per side; the best counts")
    args = parser.parse_args(argv)

    pairs, source = load_pairs(args.xquad_dir, args.pairs)
    print(f"{len(pairs)} pairs from {source}")
    for normalization, langs in (("squad", LANGS), ("mlqa", MLQA_OFFICIAL)):
        groups = {lang: [p for p in pairs if p["lang"] == lang] for lang in langs}
        n = sum(map(len, groups.values()))
        score_pairs(["warm"], ["up"], "en", normalization)  # builds the punctuation table once
        t_ref, reference = best_time(run_official, groups, normalization, args.repeat)
        t_fast, fast = best_time(run_fast, groups, normalization, args.repeat)
        check(groups, reference, fast)
        print(
            f"{normalization:5s} ({len(langs):2d} langs, {n} pairs): official {n / t_ref:10,.0f} pairs/s"
            f" | score_pairs {n / t_fast:10,.0f} pairs/s | speed-up {t_ref / t_fast:5.1f}x | identical"
        )
    rest = [lang for lang in LANGS if lang not in MLQA_OFFICIAL]
    groups = {lang: [p for p in pairs if p["lang"] == lang] for lang in rest}
    n = sum(map(len, groups.values()))
    t_fast, _ = best_time(run_fast, groups, "mlqa", args.repeat)
    print(f"mlqa  ({' '.join(rest)}: our extension, no official reference): score_pairs {n / t_fast:10,.0f} pairs/s")


if __name__ == "__main__":
    main()
