"""Time of the bootstrap intervals (xmrc.intervals) on a paper-sized run of synthetic item scores.

    python bench/bench_bootstrap.py [--items N] [--resamples R] [--per-direction N]

The paper run holds ~2 million item scores: 19 models x 2 shots x 2 formats x 23 directions x ~1190
items. The benchmark builds that many (random F1/EM, parallel ids; --items rounds to whole directions),
then times, separately (as `xmrc intervals` runs them):
  grouping              items by (model, shots, format, direction), sorted by id; chosen formats
  direction intervals   F1 and EM of every (model, shots, format, direction) with its interval
  paired differences    every compared pair (here: instruct vs base for half of the models, and
                        2-shot vs 0-shot for every model), per direction
and the core alone (xmrc.bootstrap.mean_intervals on the same vectors, no pandas). Peak memory of the
resampling is bounded by xmrc.bootstrap.CHUNK_ELEMENTS.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))  # this checkout's package, whatever else is installed

import numpy as np
import pandas as pd

from xmrc.bootstrap import CHUNK_ELEMENTS, BootstrapSettings, mean_intervals
from xmrc.intervals import Grouped, ModelPair, direction_intervals, paired_differences

LANGS = ["en", "de", "es", "vi", "zh", "hi", "ar", "el", "ro", "ru", "th", "tr"]
DIRECTIONS = [("en", x) for x in LANGS] + [(x, x) for x in LANGS if x != "en"]


def synthetic_items(total: int, per_direction: int, seed: int = 0) -> pd.DataFrame:
    """`total` item scores (rounded to whole directions of `per_direction` items): models numbered on until
    their 2 shots x 2 formats x 23 directions hold them all."""
    settings = [(s, f) for s in (0, 2) for f in ("v1", "v2")]
    groups = max(1, round(total / per_direction))
    models = -(-groups // (len(settings) * len(DIRECTIONS)))
    rng = np.random.default_rng(seed)
    keys = [(f"Model-{m:02d}", s, f, c, q) for m in range(models) for s, f in settings for c, q in DIRECTIONS]
    keys = keys[:groups]
    frame = pd.DataFrame(
        np.repeat(np.array(keys, dtype=object), per_direction, axis=0),
        columns=["model", "shots", "prompt_format", "context_lang", "question_lang"],
    )
    frame["shots"] = frame["shots"].astype(int)
    frame["id"] = np.tile([f"q{i:05d}" for i in range(per_direction)], groups)
    f1 = np.where(rng.random(len(frame)) < 0.5, 1.0, rng.random(len(frame)) * 0.8)
    frame["f1"] = f1
    frame["em"] = (f1 == 1.0).astype(float)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2_000_000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--per-direction", type=int, default=1190)
    args = parser.parse_args()
    items = synthetic_items(args.items, args.per_direction)
    settings = BootstrapSettings(resamples=args.resamples, seed=0)
    models = list(pd.unique(items["model"]))
    pairs = [ModelPair("instruct vs base", a, b) for a, b in zip(models[0::2], models[1::2])]
    print(
        f"{len(items):,} item scores in {len(items) // args.per_direction:,} directions of "
        f"{args.per_direction} items; {args.resamples} resamples; chunk {CHUNK_ELEMENTS:,} items"
    )

    vectors = [
        group.to_numpy()
        for _, group in items.groupby(["model", "shots", "prompt_format", "context_lang", "question_lang"], sort=False)[
            "f1"
        ]
    ]
    started = time.perf_counter()
    mean_intervals(vectors, settings)
    core = time.perf_counter() - started
    print(f"core (mean_intervals, F1 of every direction):        {core:6.2f} s")

    started = time.perf_counter()
    grouped = Grouped.of(items)
    took_grouping = time.perf_counter() - started
    print(f"grouping by direction, ids, chosen formats (pandas):  {took_grouping:6.2f} s")

    started = time.perf_counter()
    table = direction_intervals(grouped, settings)
    took = time.perf_counter() - started
    print(f"direction intervals (F1 and EM, {len(table):,} rows):         {took:6.2f} s")

    started = time.perf_counter()
    differences = paired_differences(grouped, pairs, settings)
    took_pairs = time.perf_counter() - started
    print(f"paired differences (F1 and EM, {len(differences):,} rows):           {took_pairs:6.2f} s")
    total = took_grouping + took + took_pairs
    print(f"total: {total:.2f} s for {len(items):,} item scores and {args.resamples} resamples")


if __name__ == "__main__":
    main()
