"""A GGUF file's tokenizer, rebuilt as the model it is, and the independent reference its ids are checked against.

A GGUF file stores its vocabulary as metadata: `tokenizer.ggml.model` names the kind, then `tokens`, `scores`
and `token_type`. Two kinds are rebuilt:

- `gpt2` (byte-level BPE with merges, e.g. SmolLM2): transformers' own GGUF loader reads it faithfully; the
  ids are checked against the GGUF's vocabulary itself (every id's token string is the file's, and the
  byte-level pieces spell the text).
- `llama` (SentencePiece BPE with byte fallback, scores as merge priorities, e.g. Gemma 3): transformers
  4.57's loader builds a *Unigram* model from those scores, which round-trips every text yet splits words as
  the model never saw them. We rebuild the SentencePiece `ModelProto` (BPE, byte fallback, identity
  normaliser, the file's space-prefix flag and special ids) and ship it inside the snapshot
  (`xmrc_sentencepiece.model`): the `sentencepiece` library run on it is the reference, independent of
  transformers' converter, that every tokenizer check compares ids with.

Any other kind is refused: a tokenizer guessed from a vocabulary list would pass a round-trip check and still
give the model ids it never saw.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from xmrc.exceptions import XmrcError

REBUILDABLE = ("gpt2", "llama")
SENTENCEPIECE_FILE = "xmrc_sentencepiece.model"
# GGUF token types (llama.cpp's) share SentencePiece's piece types: 1 normal, 2 unknown, 3 control,
# 4 user-defined, 5 unused, 6 byte.
PIECE_TYPES = range(1, 7)
USER_DEFINED = 4
SPACE = "\u2581"  # SentencePiece's escaped space


@dataclass(frozen=True)
class GgufVocabulary:
    kind: str  # tokenizer.ggml.model
    tokens: list[str]
    scores: list[float]
    types: list[int]
    special: dict[str, int]  # bos, eos, unk, pad -> token id, as the file declares them
    add_bos: bool
    add_space_prefix: bool
    chat_template: str | None


def _contents(reader, name: str, default=None):
    field = reader.fields.get(name)
    return default if field is None else field.contents()


def read_vocabulary(path: str | Path, label: str) -> GgufVocabulary:
    """The tokenizer metadata of a GGUF file; a kind we cannot rebuild is refused here, before any conversion."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as error:  # the reader raises ValueError, struct and numpy errors alike
        first = (str(error).splitlines() or [""])[0][:160]
        raise XmrcError(f"{label}: {path} is not a readable GGUF model ({type(error).__name__}: {first})") from None
    kind = _contents(reader, "tokenizer.ggml.model")
    if kind not in REBUILDABLE:
        raise XmrcError(
            f"{label}: GGUF tokenizer type {kind!r} cannot be rebuilt faithfully (supported: "
            f"{', '.join(REBUILDABLE)}); refusing to convert it with a guessed tokenizer"
        )
    tokens = list(_contents(reader, "tokenizer.ggml.tokens", []))
    scores = list(_contents(reader, "tokenizer.ggml.scores", [0.0] * len(tokens)))
    types = [int(t) for t in _contents(reader, "tokenizer.ggml.token_type", [1] * len(tokens))]
    special = {
        key: int(value)
        for key, name in (("bos", "bos"), ("eos", "eos"), ("unk", "unknown"), ("pad", "padding"))
        if (value := _contents(reader, f"tokenizer.ggml.{name}_token_id")) is not None
    }
    if not tokens or len(scores) != len(tokens) or len(types) != len(tokens):
        raise XmrcError(f"{label}: {path} has no consistent vocabulary (tokens, scores and token types differ)")
    return GgufVocabulary(
        kind=kind,
        tokens=tokens,
        scores=[float(s) for s in scores],
        types=types,
        special=special,
        add_bos=bool(_contents(reader, "tokenizer.ggml.add_bos_token", False)),
        add_space_prefix=bool(_contents(reader, "tokenizer.ggml.add_space_prefix", False)),
        chat_template=_contents(reader, "tokenizer.chat_template"),
    )


def sentencepiece_proto(vocab: GgufVocabulary, original_spaces: bool = True) -> bytes:
    """The SentencePiece BPE model a `llama`-kind GGUF vocabulary was exported from. llama.cpp's converter writes
    user-defined pieces with plain spaces where SentencePiece had "▁" (Gemma's whitespace runs, ids 138-167);
    `original_spaces` restores them (the reference), else they stay as the GGUF has them: transformers'
    converter then makes them tokens matched on the raw text, which is how the original model splits them."""
    from sentencepiece import sentencepiece_model_pb2 as spm_pb2

    proto = spm_pb2.ModelProto()
    trainer = proto.trainer_spec
    trainer.model_type = spm_pb2.TrainerSpec.BPE
    trainer.byte_fallback = True
    trainer.vocab_size = len(vocab.tokens)
    for key in ("unk", "bos", "eos", "pad"):
        setattr(trainer, f"{key}_id", vocab.special.get(key, -1))
    normalizer = proto.normalizer_spec
    normalizer.name = "identity"
    normalizer.add_dummy_prefix = vocab.add_space_prefix
    normalizer.remove_extra_whitespaces = False
    normalizer.escape_whitespaces = True
    for token, score, kind in zip(vocab.tokens, vocab.scores, vocab.types):
        piece = proto.pieces.add()
        piece.piece = token.replace(" ", SPACE) if original_spaces and kind == USER_DEFINED else token
        piece.score = score
        piece.type = kind if kind in PIECE_TYPES else 1
    return proto.SerializeToString()


def sentencepiece_tokenizer(vocab: GgufVocabulary):
    """transformers' fast tokenizer converted from the GGUF's pieces as exported (special tokens and BOS as the
    file says); whether it is right is for `check_ids` against the sentencepiece library to say."""
    from transformers import GemmaTokenizerFast, LlamaTokenizerFast

    special = {f"{key}_token": vocab.tokens[token_id] for key, token_id in vocab.special.items()}
    with tempfile.TemporaryDirectory() as scratch:
        proto_file = Path(scratch) / "tokenizer.model"
        proto_file.write_bytes(sentencepiece_proto(vocab, original_spaces=False))
        if vocab.add_space_prefix:  # Llama-2-style SentencePiece: a dummy prefix space, no legacy handling
            return LlamaTokenizerFast(
                vocab_file=str(proto_file), legacy=False, add_bos_token=vocab.add_bos, from_slow=True, **special
            )
        return GemmaTokenizerFast(vocab_file=str(proto_file), add_bos_token=vocab.add_bos, **special)


def _first_difference(got: list[int], expected: list[int]) -> str:
    at = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
    return f"ids differ at token {at} ({got[at : at + 4]} vs {expected[at : at + 4]})"


class SentencePieceReference:
    """The `sentencepiece` library on the rebuilt proto: the ids (no special tokens) a text must get."""

    name = "sentencepiece"

    def __init__(self, proto_file: str | Path):
        import sentencepiece

        self.processor = sentencepiece.SentencePieceProcessor(model_file=str(proto_file))

    def ids(self, texts: list[str]) -> list[list[int]]:
        return [list(map(int, ids)) for ids in self.processor.encode(list(texts))]

    def problems(self, texts: list[str], ids: list[list[int]]):
        for text, got, expected in zip(texts, ids, self.ids(texts)):
            if list(got) != expected:
                yield text, _first_difference(list(got), expected)


def byte_alphabet() -> dict[int, str]:
    """GPT-2's map of the 256 bytes to printable characters (written here: transformers moves it between
    releases, and the reference should not lean on the library it checks)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


class ByteLevelVocabulary:
    """A byte-level BPE's GGUF vocabulary: every id must name the file's token, and the pieces spell the text."""

    name = "GGUF vocabulary"

    def __init__(self, tokens: list[str]):
        self.tokens = tokens
        self.byte_of = {char: byte for byte, char in byte_alphabet().items()}

    def spelling(self, ids: list[int]) -> str:
        pieces = "".join(self.tokens[i] for i in ids if 0 <= i < len(self.tokens))
        return bytes(self.byte_of.get(c, 0) for c in pieces).decode("utf-8", errors="replace")

    def problems(self, texts: list[str], ids: list[list[int]]):
        for text, got in zip(texts, ids):
            spelled = self.spelling(list(got))
            if spelled != text:
                yield text, f"its ids spell {spelled[:40]!r} in the GGUF vocabulary"


def check_ids(tokenizer, texts: list[str], reference, where: str) -> int:
    """The tokenizer's ids (no special tokens added) agree with the reference on every text; raises XmrcError
    naming the first text that does not. Returns the number of texts checked."""
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    for text, problem in reference.problems(list(texts), ids):
        raise XmrcError(f"{where}: {problem} against the {reference.name} reference, on {text[:40]!r}")
    return len(texts)
