"""GGUF tokenizers rebuilt as the model they are (xmrc.hub.gguf_tokenizer), on small GGUF files written here
with the `gguf` package: a SentencePiece-kind vocabulary becomes a BPE proto whose `sentencepiece` ids are the
reference; transformers' converter must match them; a kind we cannot rebuild is refused in one line. The real
Gemma 3 vocabulary is checked in tests/workflow/test_gemma.py."""

from __future__ import annotations

import pytest

from helpers.packages import convert_cli, fake_distribution, gguf_registry
from helpers.workflow import assert_one_line_error
from xmrc.exceptions import XmrcError
from xmrc.hub.gguf_tokenizer import (
    ByteLevelVocabulary,
    GgufVocabulary,
    SentencePieceReference,
    byte_alphabet,
    check_ids,
    read_vocabulary,
    sentencepiece_proto,
    sentencepiece_tokenizer,
)

SPACE = "\u2581"
# A SentencePiece BPE vocabulary as llama.cpp exports one: control tokens, user-defined "\n" and a whitespace run
# written with plain spaces (as Gemma's ids 138-167), the 256 byte pieces, then merges by score.
WORDS = [SPACE, "a", "b", "c", f"{SPACE}a", "ab", f"{SPACE}ab", f"{SPACE}b", "abc"]
TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "\n", "  ", *(f"<0x{b:02X}>" for b in range(256)), *WORDS]
TYPES = [3, 3, 3, 3, 4, 4, *[6] * 256, *[1] * len(WORDS)]
SCORES = [0.0] * (6 + 256) + [-float(i) for i in range(len(WORDS))]


def _write_gguf(path, kind="llama", tokens=TOKENS, types=TYPES, scores=SCORES, architecture="gemma3"):
    import gguf

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_tokenizer_model(kind)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_scores(scores)
    writer.add_bos_token_id(2)
    writer.add_eos_token_id(1)
    writer.add_unk_token_id(3)
    writer.add_pad_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_space_prefix(False)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def vocab(tmp_path) -> GgufVocabulary:
    return read_vocabulary(_write_gguf(tmp_path / "m.gguf"), "model 'm'")


def test_the_vocabulary_is_read_as_the_file_declares_it(vocab):
    assert vocab.kind == "llama" and vocab.special == {"bos": 2, "eos": 1, "unk": 3, "pad": 0}
    assert vocab.add_bos and not vocab.add_space_prefix and vocab.tokens[5] == "  "


def test_the_reference_matches_user_defined_runs_of_spaces_and_falls_back_to_bytes(vocab, tmp_path):
    proto = tmp_path / "ref.model"
    proto.write_bytes(sentencepiece_proto(vocab))
    reference = SentencePieceReference(proto)
    ab, space_b, run = TOKENS.index("ab"), TOKENS.index(f"{SPACE}b"), TOKENS.index("  ")
    assert reference.ids(["ab b"]) == [[ab, space_b]]
    assert reference.ids(["a  b"])[0] == [TOKENS.index("a"), run, TOKENS.index("b")]
    assert reference.ids(["é"])[0] == [TOKENS.index("<0xC3>"), TOKENS.index("<0xA9>")]  # byte fallback


def test_the_converted_tokenizer_gives_the_reference_ids(vocab, tmp_path):
    proto = tmp_path / "ref.model"
    proto.write_bytes(sentencepiece_proto(vocab))
    texts = ["ab b", "a  b", "abc\nab  c", " ab", "é ab", "c\n\nb"]
    tokenizer = sentencepiece_tokenizer(vocab)
    assert check_ids(tokenizer, texts, SentencePieceReference(proto), "here") == len(texts)
    assert tokenizer("ab").input_ids[0] == 2  # BOS, as the file asks


def test_transformers_own_gguf_tokenizer_round_trips_yet_is_refused(vocab, tmp_path):
    """transformers 4.57 reads a Gemma 3 GGUF's SentencePiece BPE as a Unigram model over the same scores: it
    round-trips every text, and splits "abc" as a, b, c where the BPE merges give abc. The check refuses it."""
    from transformers import AutoTokenizer

    proto = tmp_path / "ref.model"
    proto.write_bytes(sentencepiece_proto(vocab))
    unigram = AutoTokenizer.from_pretrained(tmp_path, gguf_file="m.gguf")
    assert type(unigram.backend_tokenizer.model).__name__ == "Unigram"
    ids = unigram("abc", add_special_tokens=False).input_ids
    assert unigram.decode(ids) == "abc" and ids == [TOKENS.index(c) for c in "abc"]
    with pytest.raises(XmrcError, match=r"here: ids differ at token 0 .* sentencepiece reference, on 'abc'"):
        check_ids(unigram, ["b", "abc"], SentencePieceReference(proto), "here")


def test_byte_level_ids_must_spell_the_text_in_the_gguf_vocabulary():
    alphabet = byte_alphabet()
    tokens = [alphabet[b] for b in range(256)] + ["Ġhello"]
    reference = ByteLevelVocabulary(tokens)
    assert reference.spelling([256, ord("!")]) == " hello!"
    assert list(reference.problems([" hello!"], [[256, ord("!")]])) == []
    assert "spell ' hello?'" in next(reference.problems([" hello!"], [[256, ord("?")]]))[1]


def test_an_unsupported_tokenizer_kind_is_refused_before_conversion(tmp_path):
    site = tmp_path / "site"
    gguf_file = _write_gguf(tmp_path / "bert.gguf", kind="bert")
    fake_distribution(site, "xmrc-bert-weights", "1.0", {"bert.gguf": gguf_file.read_bytes()})
    registry = gguf_registry(tmp_path, package="xmrc-bert-weights", version="1.0", file="bert.gguf")
    result = convert_cli(registry, tmp_path / "snapshot", site)
    assert_one_line_error(
        result, "GGUF tokenizer type 'bert' cannot be rebuilt faithfully (supported: gpt2, llama)", "guessed"
    )
    assert not (tmp_path / "snapshot").exists()
