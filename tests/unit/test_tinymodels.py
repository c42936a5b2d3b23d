"""The tiny models must behave like the real checkpoints through the Auto* loading path."""

import contextlib
import json
import logging
import warnings

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from jinja2.exceptions import TemplateError  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from xmrc import LANGUAGES  # noqa: E402
from xmrc.exceptions import XmrcError  # noqa: E402
from xmrc.tinymodels import ARCHITECTURES, build_from_spec, build_tiny_model, train_tokenizer  # noqa: E402

NAMES = [f"{a}-{v}" for a in ARCHITECTURES for v in ("chat", "base")]
CHAT_NAMES = [n for n in NAMES if n.endswith("-chat")]

# Sentences the conftest corpus does not contain, so the round trip relies on byte fallback, not on luck.
UNSEEN = {
    "en": "  Who wrote the 'Principia'?\nNewton did, in 1687 — didn't he?",
    "de": "Größe, Übermaß und Äußerung: ß ist kein Problem.",
    "es": "¿Dónde está la biblioteca? ¡Aquí, señor!",
    "vi": "Thủ đô của Việt Nam là Hà Nội, nằm bên bờ sông Hồng.",
    "zh": "长城是中国古代的军事防御工程，全长两万多公里。",
    "hi": "भारत की राजधानी नई दिल्ली है, जो यमुना नदी के किनारे स्थित है।",
    "ar": "القاهرة هي عاصمة مصر وأكبر مدنها، وتقع على ضفاف نهر النيل.",
    "el": "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας· ποιος την ίδρυσε;",
    "ro": "Bucureștiul este capitala României și cel mai mare oraș al țării.",
    "ru": "Москва — столица России, крупнейший город страны; ёж и щи.",
    "th": "กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย มีประชากรมากที่สุด",
    "tr": "İstanbul, Türkiye'nin en kalabalık şehridir; ğ, ş, ı ve ç harfleri.",
}

PROMPTS = [
    "Hi",
    "泰国的首都是哪里？请用一句话回答。",
    "Context: กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย\nQuestion: What is the capital of Thailand?\nAnswer:",
]


@contextlib.contextmanager
def no_transformers_warnings():
    """Fail on any warning transformers logs (its logger does not propagate) or raises as a Warning."""
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        logger.removeHandler(handler)
    messages = [r.getMessage() for r in records] + [str(w.message) for w in caught]
    assert not messages, messages


def _load(path):
    return AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)


@pytest.mark.parametrize("name", NAMES)
def test_builds_and_loads_through_auto_classes(tiny_models, name):
    arch, variant = name.split("-")
    path = tiny_models[name]
    tokenizer, model = _load(path)
    assert model.config.model_type == arch
    assert tokenizer.padding_side == "left"
    assert tokenizer.model_max_length == 8192
    assert (tokenizer.chat_template is not None) == (variant == "chat")
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)

    gen = model.generation_config
    assert gen.pad_token_id == tokenizer.pad_token_id is not None
    eos = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
    assert tokenizer.eos_token_id in eos
    if variant == "chat":  # generation must stop at the end of the assistant turn
        end_of_turn = {"llama": "<|eot_id|>", "qwen2": "<|im_end|>", "mistral": "</s>", "gemma2": "<end_of_turn>"}[arch]
        assert tokenizer.convert_tokens_to_ids(end_of_turn) in eos
    # Qwen2, like the real one, prepends no BOS; the others do.
    assert (tokenizer("x").input_ids[0] == tokenizer.bos_token_id) == (arch != "qwen2")

    weights = (path / "model.safetensors").stat().st_size
    assert weights < 2_000_000
    meta = json.loads((path / "xmrc_tiny.json").read_text())
    assert meta["architecture"] == arch and meta["chat"] == (variant == "chat") and meta["seed"] == 0
    assert meta["parameters"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_batched_left_padded_greedy_generate(tiny_models, name):
    tokenizer, model = _load(tiny_models[name])
    if tokenizer.chat_template is not None:
        prompts = [
            tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
            for p in PROMPTS
        ]
        add_special = False  # the template already carries the BOS
    else:
        prompts, add_special = PROMPTS, True
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=add_special)
    lengths = batch.attention_mask.sum(dim=1)
    assert len(set(lengths.tolist())) == 3
    shortest = int(lengths.argmin())
    assert batch.attention_mask[shortest, 0] == 0 and batch.attention_mask[shortest, -1] == 1  # left

    with no_transformers_warnings(), torch.no_grad():
        out = model.generate(**batch, max_new_tokens=6, do_sample=False)
    new = out[:, batch.input_ids.shape[1] :]
    texts = tokenizer.batch_decode(new, skip_special_tokens=True)
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    assert new.shape[1] <= 6


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_byte_level_round_trip_in_all_languages(tiny_models, arch):
    assert set(UNSEEN) == set(LANGUAGES)
    tokenizer = AutoTokenizer.from_pretrained(tiny_models[f"{arch}-base"])
    for lang, text in [*UNSEEN.items(), ("emoji", "🦜 naïve café ☕ \t end")]:
        ids = tokenizer(text).input_ids
        assert tokenizer.decode(ids, skip_special_tokens=True) == text, lang
        assert tokenizer.unk_token_id is None or tokenizer.unk_token_id not in ids


def test_same_seed_same_weights_different_seed_different(tmp_path):
    corpus = list(UNSEEN.values())

    def state(seed, name):
        path = build_tiny_model("llama", True, corpus, tmp_path / name, seed=seed)
        return AutoModelForCausalLM.from_pretrained(path).state_dict(), (path / "tokenizer.json").read_text()

    a, tok_a = state(0, "a")
    b, tok_b = state(0, "b")
    c, _ = state(1, "c")
    assert tok_a == tok_b
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("name", CHAT_NAMES)
def test_chat_template_renders_user_content_and_generation_prompt(tiny_models, name):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models[name])
    messages = [{"role": "user", "content": "Wo liegt Bangkok? กรุงเทพ"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert "Wo liegt Bangkok? กรุงเทพ" in text
    suffix = {
        "llama-chat": "<|start_header_id|>assistant<|end_header_id|>\n\n",
        "qwen2-chat": "<|im_start|>assistant\n",
        "mistral-chat": " [/INST]",  # Mistral's prompt ends the user turn; nothing more is added
        "gemma2-chat": "<start_of_turn>model\n",
    }[name]
    assert text.endswith(suffix)
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    assert tokenizer.decode(ids) == text  # the template's markers are single special tokens


@pytest.mark.parametrize("name", [n for n in NAMES if n.endswith("-base")])
def test_base_models_have_no_chat_template(tiny_models, name):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models[name])
    with pytest.raises(ValueError, match="chat_template"):
        tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False)


def test_system_role_per_family(tiny_models):
    messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Q?"}]

    def render(name, msgs):
        tokenizer = AutoTokenizer.from_pretrained(tiny_models[name])
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)

    # Gemma-2 rejects a system role, as the published template does (it does not fold it).
    with pytest.raises(TemplateError, match="System role not supported"):
        render("gemma2-chat", messages)
    # Mistral folds it into the first user turn.
    assert render("mistral-chat", messages) == "<s>[INST] Answer briefly.\n\nQ? [/INST]"
    # Qwen2 uses it, and supplies its default system prompt when none is given.
    assert "<|im_start|>system\nAnswer briefly.<|im_end|>" in render("qwen2-chat", messages)
    assert render("qwen2-chat", messages[1:]).startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
    assert "<|start_header_id|>system<|end_header_id|>\n\nAnswer briefly.<|eot_id|>" in render("llama-chat", messages)


def test_gemma2_loads_with_eager_attention(tiny_models):
    # transformers does not persist attn_implementation, so the loader asks for it like for real Gemma-2.
    model = AutoModelForCausalLM.from_pretrained(tiny_models["gemma2-chat"], attn_implementation="eager")
    assert model.config._attn_implementation == "eager"


def test_build_from_spec_and_errors(tmp_path):
    spec = {"architecture": "qwen2", "chat": True, "seed": 3, "hf_id": "Qwen/Qwen2-7B-Instruct"}
    path = build_from_spec(spec, list(UNSEEN.values()), tmp_path / "m")
    meta = json.loads((path / "xmrc_tiny.json").read_text())
    assert (meta["architecture"], meta["chat"], meta["seed"]) == ("qwen2", True, 3)
    with pytest.raises(XmrcError):
        build_from_spec({"architecture": "gpt2"}, ["text"], tmp_path / "bad")
    with pytest.raises(XmrcError):
        build_from_spec({"chat": True}, ["text"], tmp_path / "bad")
    with pytest.raises(XmrcError):
        train_tokenizer(["text"], architecture="falcon")
