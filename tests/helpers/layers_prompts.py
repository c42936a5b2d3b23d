"""Realistic prompt-table rows (with part spans) for the layer-analysis tests."""

import pandas as pd

from xmrc.prompts import COMPACT, Example, apply_template, build_body, hf_chat_template

DEMOS = [
    Example(
        "The Normans gave their name to Normandy, a region in France.", "Who gave Normandy its name?", "The Normans"
    ),
    Example("Paris is the capital and largest city of France.", "What is the capital of France?", "Paris"),
]
# en-x test items: English context, question in de, es, en
TESTS = [
    ("The Normans were the people who gave their name to Normandy.", "Wer gab der Normandie den Namen?"),
    ("The Normans gave their name to Normandy.", "¿Quién dio nombre a Normandía?"),
    (
        "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy.",
        "When did the Normans name Normandy?",
    ),
]
ANSWERS = ["The Normans", "The Normans", "in the 10th and 11th centuries"]


def model_output(answer: str, chat: bool) -> str:
    """A stored output as the generation stage keeps it: a chat model writes the label, a base model's prompt
    ends with it."""
    return f"Answer: {answer}\nQuestion: ..." if chat else f" {answer}\n"


def prompt_rows(tokenizer, chat: bool, shots: int = 2, prompt_format: str = "v1") -> pd.DataFrame:
    """Prompt-table rows of the three test items, each with a model output (`raw_output`) answering it."""
    template = hf_chat_template(tokenizer) if chat else None
    rows = []
    for number, (context, question) in enumerate(TESTS):
        body = build_body(Example(context, question), DEMOS[:shots], prompt_format, "en", not chat, COMPACT)
        prompt = apply_template(body, template)
        row = dict(
            id=f"item{number}",
            context_lang="en",
            question_lang=["de", "es", "en"][number],
            prompt=prompt.text,
            templated=chat,
            raw_output=model_output(ANSWERS[number], chat),
        )
        for part in ("task_description", "demonstrations", "context", "question"):
            row[f"{part}_start"], row[f"{part}_end"] = prompt.spans.get(part, (-1, -1))
        rows.append(row)
    return pd.DataFrame(rows)


def deep_llama(source, out, layers: int = 6):
    """(model, tokenizer) of the tiny Llama at `source` (its tokenizer) with `layers` random layers, saved to
    `out`, so that MRD has depths to choose from."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from xmrc.analysis.layers.inputs import load_model

    config = AutoConfig.from_pretrained(source)
    config.num_hidden_layers = layers
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
    return load_model(str(out), dtype="float32")
