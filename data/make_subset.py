"""Cut the bundled XQuAD subset out of the original XQuAD JSON files.

Usage: python data/make_subset.py PATH/TO/xquad [--titles Normans Computational_complexity_theory Teacher]
Writes data/xquad_subset/xquad.<lang>.json in the original SQuAD-v1.1 layout, plus the licence.
"""

import argparse
import json
import shutil
from pathlib import Path

LANGUAGES = ("en", "de", "es", "vi", "zh", "hi", "ar", "el", "ro", "ru", "th", "tr")
DEFAULT_TITLES = ("Normans", "Computational_complexity_theory", "Teacher")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="directory holding xquad.<lang>.json and LICENSE.txt")
    parser.add_argument("--titles", nargs="+", default=list(DEFAULT_TITLES))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "xquad_subset")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for lang in LANGUAGES:
        full = json.loads((args.source / f"xquad.{lang}.json").read_text(encoding="utf-8"))
        articles = [a for a in full["data"] if a["title"] in args.titles]
        subset = {"version": full.get("version", "1.1"), "data": articles}
        (args.out / f"xquad.{lang}.json").write_text(
            json.dumps(subset, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
    shutil.copy(args.source / "LICENSE.txt", args.out / "LICENSE.txt")


if __name__ == "__main__":
    main()
