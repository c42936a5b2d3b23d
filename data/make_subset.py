"""Cut the bundled XQuAD subset out of the original XQuAD JSON files, or bundle the whole XQuAD compressed.

Usage: python data/make_subset.py PATH/TO/xquad [--titles Normans Computational_complexity_theory Teacher]
Writes data/xquad_subset/xquad.<lang>.json in the original SQuAD-v1.1 layout, plus the licence.

       python data/make_subset.py PATH/TO/xquad --full
Writes data/xquad/xquad.<lang>.json.xz (the original files byte for byte, xz -9e), plus the licence, and
prints the SHA-256 of each original file (sha256sum format) for data/xquad/README.md.
"""

import argparse
import hashlib
import json
import lzma
import shutil
from pathlib import Path

LANGUAGES = ("en", "de", "es", "vi", "zh", "hi", "ar", "el", "ro", "ru", "th", "tr")
DEFAULT_TITLES = ("Normans", "Computational_complexity_theory", "Teacher")


def write_subset(source: Path, out: Path, titles: list[str]) -> None:
    for lang in LANGUAGES:
        full = json.loads((source / f"xquad.{lang}.json").read_text(encoding="utf-8"))
        articles = [a for a in full["data"] if a["title"] in titles]
        subset = {"version": full.get("version", "1.1"), "data": articles}
        (out / f"xquad.{lang}.json").write_text(
            json.dumps(subset, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )


def write_full(source: Path, out: Path) -> None:
    for lang in LANGUAGES:
        name = f"xquad.{lang}.json"
        original = (source / name).read_bytes()
        (out / f"{name}.xz").write_bytes(lzma.compress(original, preset=9 | lzma.PRESET_EXTREME))
        print(f"{hashlib.sha256(original).hexdigest()}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="directory holding xquad.<lang>.json and LICENSE.txt")
    parser.add_argument("--titles", nargs="+", default=list(DEFAULT_TITLES))
    parser.add_argument("--full", action="store_true", help="every article, compressed, into data/xquad")
    parser.add_argument("--out", type=Path, help="default: data/xquad_subset (data/xquad with --full)")
    args = parser.parse_args()
    out = args.out or Path(__file__).parent / ("xquad" if args.full else "xquad_subset")
    out.mkdir(parents=True, exist_ok=True)
    if args.full:
        write_full(args.source, out)
    else:
        write_subset(args.source, out, args.titles)
    shutil.copy(args.source / "LICENSE.txt", out / "LICENSE.txt")


if __name__ == "__main__":
    main()
