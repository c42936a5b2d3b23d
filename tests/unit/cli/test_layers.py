"""The layer-analysis subcommands: tables to figures on synthetic data, extraction on a tiny model, and
one-line errors for bad input."""

import numpy as np
import pandas as pd
import pytest

from helpers.layers_prompts import prompt_rows
from xmrc.cli import main
from xmrc.io import read_parquet

pytest.importorskip("seaborn")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LANGS = ["en", "de", "zh", "ar"]


def write_item_scores(path, models=("Tiny-Llama-Base", "Tiny-Llama-Chat"), n=6, seed=0, formats=("v2",)):
    rng = np.random.default_rng(seed)
    rows = [
        dict(
            model=m,
            shots=2,
            prompt_format=fmt,
            context_lang="en",
            question_lang=q,
            id=f"i{i}",
            em=0.0,
            f1=float(rng.choice([0.0, 1.0])),
        )
        for m in models
        for fmt in formats
        for q in LANGS
        for i in range(n)
    ]
    pd.DataFrame(rows).to_parquet(path, index=False)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_groups_command_writes_members_and_sizes(tmp_path, capsys):
    # the run's item table plus the score file of an analysis-only model
    write_item_scores(tmp_path / "items.parquet", models=("Tiny-Llama-Base",))
    write_item_scores(tmp_path / "extra.parquet", models=("Tiny-Llama-Chat",), seed=1)
    code, out, err = run(
        capsys,
        "layer-groups",
        "--item-scores",
        tmp_path / "items.parquet",
        tmp_path / "extra.parquet",
        "--registry",
        "config/models.yaml",
        "--models",
        "tiny-llama-base",
        "Tiny-Llama-Chat",
        "--shots",
        2,
        "--formats",
        "v2",
        "--languages",
        *LANGS,
        "--cap",
        3,
        "--out-members",
        tmp_path / "groups.parquet",
        "--out-sizes",
        tmp_path / "sizes.csv",
    )
    assert code == 0, err
    members, sizes = read_parquet(tmp_path / "groups.parquet"), pd.read_csv(tmp_path / "sizes.csv")
    assert set(members["model"]) == {"tiny-llama-base", "tiny-llama-chat"}
    assert len(sizes) == 4 and (sizes["selected"] <= 3).all()
    assert "Tiny-Llama-Chat 2-shot v2 balanced" in out


def test_groups_command_resolves_best_to_each_models_chosen_format(tmp_path, capsys):
    write_item_scores(tmp_path / "items.parquet", models=("Tiny-Llama-Base",), formats=("v1", "v2"))
    scores = read_parquet(tmp_path / "items.parquet")
    means = scores[scores["question_lang"] != "en"].groupby("prompt_format")["f1"].mean()
    best = means.idxmax()  # the higher mean F1 over en-x (x != en): tables.format_criterion en-x
    assert means.nunique() == 2
    code, out, err = run(
        capsys,
        "layer-groups",
        "--item-scores",
        tmp_path / "items.parquet",
        "--registry",
        "config/models.yaml",
        "--models",
        "tiny-llama-base",
        "--shots",
        2,
        "--formats",
        "best",
        "v1",
        "--languages",
        *LANGS,
        "--out-members",
        tmp_path / "groups.parquet",
        "--out-sizes",
        tmp_path / "sizes.csv",
    )
    assert code == 0, err
    assert f"Tiny-Llama-Base 2-shot: best format {best} (higher mean F1 over en-x" in out
    sizes = pd.read_csv(tmp_path / "sizes.csv")
    # best and v1 named: both formats once each (or v1 once, if it is the best), the chosen one marked
    assert set(sizes["prompt_format"]) == {best, "v1"} and len(sizes) == 2 * len({best, "v1"})
    assert set(sizes.loc[sizes["chosen"], "prompt_format"]) == {best}


def test_missing_item_scores_is_one_line_error(tmp_path, capsys):
    code, _, err = run(
        capsys,
        "layer-groups",
        "--item-scores",
        tmp_path / "nope.parquet",
        "--registry",
        "config/models.yaml",
        "--models",
        "tiny-llama-base",
        "--shots",
        2,
        "--formats",
        "v2",
        "--out-members",
        tmp_path / "g.parquet",
        "--out-sizes",
        tmp_path / "s.csv",
    )
    assert code == 2 and err.strip().count("\n") == 0 and "nope.parquet: file not found" in err


def test_model_not_scored_is_one_line_error(tmp_path, capsys):
    write_item_scores(tmp_path / "items.parquet", models=("Tiny-Llama-Base",))
    code, _, err = run(
        capsys,
        "layer-groups",
        "--item-scores",
        tmp_path / "items.parquet",
        "--registry",
        "config/models.yaml",
        "--models",
        "tiny-qwen2-chat",
        "--shots",
        2,
        "--formats",
        "v2",
        "--out-members",
        tmp_path / "g.parquet",
        "--out-sizes",
        tmp_path / "s.csv",
    )
    assert code == 2 and "no en-x rows for model 'Tiny-Qwen2-Chat'" in err and err.count("\n") == 1


def synthetic_tables(tmp_path, models=("tiny-llama-base", "tiny-llama-chat"), layers=4):
    rng = np.random.default_rng(1)
    mrd, similarity, sizes = [], [], []
    for model in models:
        key = dict(model=model, model_name=model.title(), shots=2, prompt_format="v2")
        for group, fallback in (("balanced", False), ("en-superior", True)):
            sizes.append(
                dict(key, group=group, eligible=0 if fallback else 5, selected=5, fallback=fallback, chosen=True)
            )
            for lang in LANGS:
                for part in ("task_description", "demonstrations", "context", "question"):
                    mrd.append(
                        dict(
                            key,
                            group=group,
                            fallback=fallback,
                            question_lang=lang,
                            part=part,
                            mean_mrd=rng.uniform(1, layers - 1),
                            std_mrd=0.5,
                            n=5,
                            layers=layers - 1,
                        )
                    )
                if lang == "en":
                    continue
                for layer in range(layers + 1):
                    for part in ("question", "context", "last"):
                        similarity.append(
                            dict(
                                key,
                                group=group,
                                fallback=fallback,
                                lang=lang,
                                part=part,
                                layer=layer,
                                relative_depth=layer / layers,
                                ratio=rng.uniform(0.8, 1.5),
                                k=5,
                                sample_cos=rng.uniform(0.95, 1.0),
                                language_cos=rng.uniform(0.95, 1.0),
                                ratio_centred=rng.uniform(0.5, 3.0),
                                sample_cos_centred=rng.uniform(-0.2, 0.8),
                                language_cos_centred=rng.uniform(0.05, 0.3),
                            )
                        )
    paths = {name: tmp_path / f"{name}.csv" for name in ("mrd", "similarity", "sizes")}
    pd.DataFrame(mrd).to_csv(paths["mrd"], index=False)
    pd.DataFrame(similarity).to_csv(paths["similarity"], index=False)
    pd.DataFrame(sizes).to_csv(paths["sizes"], index=False)
    return paths


def assert_png(path):
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000


def test_figures_render_from_tables(tmp_path, capsys):
    paths = synthetic_tables(tmp_path)
    names = ["mrd-context-question", "mrd-task-demos", "similarity-question", "similarity-context", "similarity-last"]
    outs = [arg for name in names for arg in (f"--out-{name}", tmp_path / "fig" / f"{name}.png")]
    code, _, err = run(
        capsys,
        "layer-figures",
        "--mrd",
        paths["mrd"],
        "--similarity",
        paths["similarity"],
        "--sizes",
        paths["sizes"],
        "--model",
        "tiny-llama-chat",
        "--shots",
        2,
        "--format",
        "best",  # the format layer-groups chose: v2 (column chosen of the sizes)
        *outs,
    )
    assert code == 0, err
    for name in names:
        assert_png(tmp_path / "fig" / f"{name}.png")
    code, _, err = run(
        capsys,
        "layer-change-figures",
        "--similarity",
        paths["similarity"],
        "--sizes",
        paths["sizes"],
        "--models",
        "tiny-llama-base",
        "tiny-llama-chat",
        "--shots",
        2,
        "--format",
        "best",
        *[
            arg
            for part in ("question", "context", "last")
            for arg in (f"--out-{part}", tmp_path / "change" / f"{part}.png")
        ],
    )
    assert code == 0, err
    for part in ("question", "context", "last"):
        assert_png(tmp_path / "change" / f"{part}.png")


def test_figure_of_unknown_model_is_one_line_error(tmp_path, capsys):
    paths = synthetic_tables(tmp_path)
    outs = [
        arg
        for name in (
            "mrd-context-question",
            "mrd-task-demos",
            "similarity-question",
            "similarity-context",
            "similarity-last",
        )
        for arg in (f"--out-{name}", tmp_path / f"{name}.png")
    ]
    code, _, err = run(
        capsys,
        "layer-figures",
        "--mrd",
        paths["mrd"],
        "--similarity",
        paths["similarity"],
        "--sizes",
        paths["sizes"],
        "--model",
        "other",
        "--shots",
        2,
        "--format",
        "v2",
        *outs,
    )
    assert code == 2 and "no rows for model 'other'" in err and err.count("\n") == 1


def test_group_titles_say_when_all_items_stand_in():
    from xmrc.analysis.layers.figures import group_title

    sizes = pd.DataFrame(
        [dict(group="balanced", selected=12, fallback=False), dict(group="en-superior", selected=4, fallback=True)]
    )
    assert group_title("balanced", sizes) == "balanced (n=12)"
    assert group_title("en-superior", sizes) == "no en-superior sample: all items (n=4)"


def write_prompts_and_generations(rows, directory):
    """The prompt table and the model's generation table (its outputs) of the test rows."""
    rows.drop(columns="raw_output").to_parquet(directory / "prompts.parquet", index=False)
    rows[["id", "context_lang", "question_lang", "raw_output"]].to_parquet(
        directory / "generations.parquet", index=False
    )


def relevance_command(tiny_models, tmp_path, model="llama-chat", languages=("de", "es"), examples=1):
    key = f"tiny-{model}"
    pd.DataFrame(
        [
            dict(
                model=key,
                model_name=key.title(),
                shots=2,
                prompt_format="v1",
                group="balanced",
                id=item,
                fallback=False,
            )
            for item in ("item0", "item1")
        ]
    ).to_parquet(tmp_path / "groups.parquet")
    return [
        "layer-relevance",
        "--prompts",
        tmp_path / "prompts.parquet",
        "--generations",
        tmp_path / "generations.parquet",
        "--groups",
        tmp_path / "groups.parquet",
        "--registry",
        "config/models.yaml",
        "--model",
        key,
        "--weights",
        tiny_models[model],
        "--shots",
        2,
        "--format",
        "v1",
        "--languages",
        *languages,
        "--dtype",
        "float32",
        "--examples",
        examples,
        "--out",
        tmp_path / "r.parquet",
        "--out-tokens",
        tmp_path / "t.parquet",
    ]


def test_relevance_command_keeps_example_tokens_and_draws_them(tiny_models, tmp_path, capsys):
    pytest.importorskip("lxt")
    from transformers import AutoTokenizer

    rows = prompt_rows(AutoTokenizer.from_pretrained(tiny_models["llama-chat"]), chat=True)
    write_prompts_and_generations(rows, tmp_path)
    code, out, err = run(capsys, *relevance_command(tiny_models, tmp_path))
    assert code == 0, err
    assert "explained token: answer 2" in out
    assert "AttnLRP conservation, tiny-llama-chat 2-shot v1: relevance sum / explained logit" in out
    relevance, tokens = read_parquet(tmp_path / "r.parquet"), read_parquet(tmp_path / "t.parquet")
    assert (relevance["forced_prefix"].str.strip() == "Answer:").all()
    # per-token relevance of the first item only (its one direction here: item0 is asked in de)
    assert set(tokens["id"]) == {"item0"} and len(tokens) == tokens["position"].max() + 1
    assert set(tokens["part"]) == {"task_description", "demonstrations", "context", "question", ""}
    mrd = relevance[relevance["id"] == "item0"].set_index("part")["mrd"]
    by_part = tokens[tokens["part"] != ""].groupby("part")["mrd"].max()
    assert by_part.to_dict() == mrd.to_dict()  # the part MRD is the largest of its tokens'
    code, _, err = run(
        capsys, "layer-example-figure", "--tokens", tmp_path / "t.parquet", "--out", tmp_path / "example.png"
    )
    assert code == 0, err
    assert_png(tmp_path / "example.png")


def test_relevance_command_needs_a_generation_per_prompt(tiny_models, tmp_path, capsys):
    from transformers import AutoTokenizer

    rows = prompt_rows(AutoTokenizer.from_pretrained(tiny_models["llama-chat"]), chat=True)
    write_prompts_and_generations(rows, tmp_path)
    rows[rows["question_lang"] != "es"][["id", "context_lang", "question_lang", "raw_output"]].to_parquet(
        tmp_path / "generations.parquet", index=False
    )
    code, _, err = run(capsys, *relevance_command(tiny_models, tmp_path))
    assert code == 2 and err.count("\n") == 1
    assert "generations.parquet: no generation for 1 prompt(s), e.g. item item1 (en-es)" in err


def test_example_figure_needs_the_token_table(tmp_path, capsys):
    pd.DataFrame([dict(model="m", id="a")]).to_parquet(tmp_path / "t.parquet", index=False)
    code, _, err = run(capsys, "layer-example-figure", "--tokens", tmp_path / "t.parquet", "--out", tmp_path / "x.png")
    assert code == 2 and "t.parquet" in err and "position" in err and err.count("\n") == 1


def test_relevance_command_on_unsupported_family_fails_in_one_line(tiny_models, tmp_path, capsys):
    pytest.importorskip("lxt")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["mistral-base"])
    write_prompts_and_generations(prompt_rows(tokenizer, chat=False), tmp_path)
    pd.DataFrame(
        [
            dict(
                model="tiny-mistral-base",
                model_name="Tiny-Mistral-Base",
                shots=2,
                prompt_format="v1",
                group="balanced",
                id="item0",
                fallback=True,
            )
        ]
    ).to_parquet(tmp_path / "groups.parquet")
    code, _, err = run(
        capsys,
        "layer-relevance",
        "--prompts",
        tmp_path / "prompts.parquet",
        "--generations",
        tmp_path / "generations.parquet",
        "--groups",
        tmp_path / "groups.parquet",
        "--registry",
        "config/models.yaml",
        "--model",
        "tiny-mistral-base",
        "--weights",
        tiny_models["mistral-base"],
        "--shots",
        2,
        "--format",
        "v1",
        "--languages",
        "de",
        "--dtype",
        "float32",
        "--out",
        tmp_path / "r.parquet",
        "--out-tokens",
        tmp_path / "t.parquet",
    )
    assert code == 2 and "LXT 2.1 has no AttnLRP rules" in err and err.count("\n") == 1
    assert not (tmp_path / "r.parquet").exists()


def test_hidden_command_of_best_reads_the_chosen_formats_files(tiny_models, tmp_path, capsys):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["llama-chat"])
    write_prompts_and_generations(prompt_rows(tokenizer, chat=True), tmp_path)
    key = dict(model="tiny-llama-chat", model_name="Tiny-Llama-Chat", shots=2, group="balanced", fallback=False)
    pd.DataFrame(
        [dict(key, prompt_format="v1", id="item0", chosen=True), dict(key, prompt_format="v2", id="v2", chosen=False)]
    ).to_parquet(tmp_path / "groups.parquet")
    code, _, err = run(
        capsys,
        "layer-hidden",
        "--prompts",
        f"v1={tmp_path / 'prompts.parquet'}",
        f"v2={tmp_path / 'absent.parquet'}",
        "--generations",
        f"v1={tmp_path / 'generations.parquet'}",
        f"v2={tmp_path / 'absent.parquet'}",
        "--groups",
        tmp_path / "groups.parquet",
        "--registry",
        "config/models.yaml",
        "--model",
        "tiny-llama-chat",
        "--weights",
        tiny_models["llama-chat"],
        "--shots",
        2,
        "--format",
        "best",
        "--languages",
        "de",
        "--out-vectors",
        tmp_path / "h.npy",
        "--out-index",
        tmp_path / "h.parquet",
    )
    assert code == 0, err
    assert set(read_parquet(tmp_path / "h.parquet")["prompt_format"]) == {"v1"}  # the format, not "best"


def test_hidden_command_names_missing_prompts(tiny_models, tmp_path, capsys):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["llama-chat"])
    write_prompts_and_generations(prompt_rows(tokenizer, chat=True), tmp_path)
    pd.DataFrame(
        [
            dict(
                model="tiny-llama-chat",
                model_name="Tiny-Llama-Chat",
                shots=2,
                prompt_format="v1",
                group="balanced",
                id=item,
                fallback=False,
            )
            for item in ("item0", "lost")
        ]
    ).to_parquet(tmp_path / "groups.parquet")
    code, _, err = run(
        capsys,
        "layer-hidden",
        "--prompts",
        tmp_path / "prompts.parquet",
        "--generations",
        tmp_path / "generations.parquet",
        "--groups",
        tmp_path / "groups.parquet",
        "--registry",
        "config/models.yaml",
        "--model",
        "tiny-llama-chat",
        "--weights",
        tiny_models["llama-chat"],
        "--shots",
        2,
        "--format",
        "v1",
        "--languages",
        "de",
        "--out-vectors",
        tmp_path / "h.npy",
        "--out-index",
        tmp_path / "h.parquet",
    )
    assert code == 2 and "no en-x prompts for item(s) lost" in err and err.count("\n") == 1


def test_similarity_command_checks_vectors_against_index(tmp_path, capsys):
    index = pd.DataFrame(
        [dict(model="m", shots=2, prompt_format="v2", context_lang="en", question_lang=q, id="a") for q in ("en", "de")]
    )
    index.to_parquet(tmp_path / "h.parquet", index=False)
    np.save(tmp_path / "h.npy", np.zeros((3, 2, 3, 4), dtype=np.float16))
    pd.DataFrame(
        [dict(model="m", model_name="M", shots=2, prompt_format="v2", group="balanced", id="a", fallback=False)]
    ).to_parquet(tmp_path / "groups.parquet", index=False)
    code, _, err = run(
        capsys,
        "layer-similarity",
        "--vectors",
        tmp_path / "h.npy",
        "--index",
        tmp_path / "h.parquet",
        "--groups",
        tmp_path / "groups.parquet",
        "--out",
        tmp_path / "s.csv",
        "--out-items",
        tmp_path / "s.parquet",
    )
    assert code == 2 and "does not match 2 rows" in err and err.count("\n") == 1


def test_similarity_command_writes_both_tables_and_counts_a_repeated_setting_once(tmp_path, capsys):
    # a model whose best format is also named (layers.prompt_formats [best, v1]): two files of one setting
    rng = np.random.default_rng(5)
    index = pd.DataFrame(
        [
            dict(model="m", shots=2, prompt_format="v1", context_lang="en", question_lang=q, id=i)
            for q in ("en", "de")
            for i in ("a", "b", "c")
        ]
    )
    vectors = rng.normal(size=(len(index), 3, 3, 8)).astype(np.float16)
    for stem in ("best", "v1"):
        index.to_parquet(tmp_path / f"{stem}.parquet", index=False)
        np.save(tmp_path / f"{stem}.npy", vectors)
    pd.DataFrame(
        [
            dict(model="m", model_name="M", shots=2, prompt_format="v1", group="balanced", id=i, fallback=False)
            for i in ("a", "b", "c")
        ]
    ).to_parquet(tmp_path / "groups.parquet", index=False)
    code, _, err = run(
        capsys,
        "layer-similarity",
        "--vectors",
        tmp_path / "best.npy",
        tmp_path / "v1.npy",
        "--index",
        tmp_path / "best.parquet",
        tmp_path / "v1.parquet",
        "--groups",
        tmp_path / "groups.parquet",
        "--out",
        tmp_path / "s.csv",
        "--out-items",
        tmp_path / "items.parquet",
    )
    assert code == 0, err
    table, items = pd.read_csv(tmp_path / "s.csv"), read_parquet(tmp_path / "items.parquet")
    assert len(table) == 3 * 3 and len(items) == 3 * 3 * 3  # parts x depths (x items): once, not twice
    assert list(table.columns[-5:]) == [
        "sample_cos",
        "language_cos",
        "ratio_centred",
        "sample_cos_centred",
        "language_cos_centred",
    ]
    assert list(items.columns[-3:]) == ["id", "cos", "cos_centred"]


def synthetic_tokens(layers=5):
    rng = np.random.default_rng(2)
    rows = []
    for item in ("first", "second"):
        for lang in ("en", "zh", "de"):
            parts = ["", "task_description", "demonstrations", "context", "question"] * 4
            for position, part in enumerate(parts):
                profile = rng.uniform(0, 1, layers)
                rows.append(
                    dict(
                        model="m",
                        shots=2,
                        prompt_format="v2",
                        context_lang="en",
                        question_lang=lang,
                        id=item,
                        position=position,
                        token_id=position,
                        token=f" t{position}",
                        part=part,
                        target_token=" The",
                        mrd=int(rng.integers(1, layers + 1)),
                        total=float(profile.sum()),
                        relevance=profile.tolist(),
                    )
                )
    return pd.DataFrame(rows)


def test_example_draws_the_top_tokens_of_each_part_of_one_en_x_prompt(tmp_path, capsys):
    from xmrc.analysis.layers.attribution_example import example_prompt, top_tokens

    tokens = synthetic_tokens()
    prompt = example_prompt(tokens)
    # the first item, its first non-English direction in the paper's language order (de before zh)
    assert set(prompt["id"]) == {"first"} and set(prompt["question_lang"]) == {"de"}
    chosen = top_tokens(prompt, 3)
    assert chosen["part"].tolist() == [
        p for p in ("task_description", "demonstrations", "context", "question") for _ in range(3)
    ]
    for part, rows in chosen.groupby("part"):
        candidates = prompt[prompt["part"] == part]["total"].sort_values(ascending=False)
        assert rows["total"].tolist() == candidates.iloc[:3].tolist()
    tokens.to_parquet(tmp_path / "t.parquet", index=False)
    code, _, err = run(
        capsys, "layer-example-figure", "--tokens", tmp_path / "t.parquet", "--out", tmp_path / "example.png"
    )
    assert code == 0, err
    assert_png(tmp_path / "example.png")
    tokens.iloc[:0].to_parquet(tmp_path / "none.parquet", index=False)  # no example explained: a notice
    code, _, err = run(
        capsys, "layer-example-figure", "--tokens", tmp_path / "none.parquet", "--out", tmp_path / "none.png"
    )
    assert code == 0, err
    assert (tmp_path / "none.png").read_bytes()[:8] == PNG_MAGIC


def test_mrd_command_counts_a_setting_given_twice_once(tmp_path, capsys):
    # layers.prompt_formats [best, v1] with v1 the best: 2shot-best.parquet and 2shot-v1.parquet hold the same rows
    key = dict(model="m", shots=2, prompt_format="v1", context_lang="en", question_lang="de")
    relevance = pd.DataFrame(
        [dict(key, id=i, part="question", mrd=mrd, layers=5) for i, mrd in (("a", 2), ("b", 4), ("c", 5))]
    )
    for stem in ("best", "v1"):
        relevance.to_parquet(tmp_path / f"{stem}.parquet", index=False)
    pd.DataFrame(
        [
            dict(model="m", model_name="M", shots=2, prompt_format="v1", group="balanced", id=i, fallback=False)
            for i in ("a", "b", "c")
        ]
    ).to_parquet(tmp_path / "groups.parquet", index=False)
    code, _, err = run(
        capsys,
        "layer-mrd",
        "--relevance",
        tmp_path / "best.parquet",
        tmp_path / "v1.parquet",
        "--groups",
        tmp_path / "groups.parquet",
        "--out",
        tmp_path / "mrd.csv",
    )
    assert code == 0, err
    row = pd.read_csv(tmp_path / "mrd.csv").iloc[0]
    assert row["n"] == 3 and row["std_mrd"] == pytest.approx(np.std([2, 4, 5], ddof=1), rel=1e-4)


def test_conservation_command_tables_the_ratio_per_depth(tmp_path, capsys):
    keys = {"model": "m", "shots": 2, "prompt_format": "v1", "context_lang": "en", "question_lang": "de"}
    rows = [
        {**keys, "id": f"id{i}", "part": part, "target_logit": 2.0, "relevance_sum": [0.5 + i, 1.0, 2.0]}
        for i in range(2)
        for part in ("question", "context")
    ]
    pd.DataFrame(rows).to_parquet(tmp_path / "relevance.parquet")
    main(["layer-conservation", "--relevance", str(tmp_path / "relevance.parquet"), "--out", str(tmp_path / "c.csv")])
    table = pd.read_csv(tmp_path / "c.csv")
    assert list(table["layer"]) == [0, 1, 2] and list(table["n"]) == [2, 2, 2]
    assert table["ratio_median"].tolist() == [0.5, 0.5, 1.0] and table["ratio_max"].iloc[0] == 0.75
    assert "0.50 at the embeddings" in capsys.readouterr().out
