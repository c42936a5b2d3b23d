"""Shared pieces of the tests. ROOT: the checkout the tests run from (every test file takes it from here)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
