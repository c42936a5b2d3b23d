"""Shared pieces of the tests. ROOT: the checkout the tests run from (every test file takes it from here);
PUBLISHED_TABLES: the paper's published tables, as the package ships them."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED_TABLES = ROOT / "src" / "xmrc" / "resources" / "paper"
