"""The oracle commands end to end on a tiny model: real prompts, generations, attributions, tables, figure."""

import numpy as np
import pandas as pd
import pytest

from helpers import ROOT
from helpers.jobs import rewrite_shard, shards_kept
from xmrc.cli import main
from xmrc.io import read_parquet

SUBSET = ROOT / "data" / "xquad_subset"
REGISTRY = ROOT / "config" / "models.yaml"
DEMOS = ["56dde1d966d3e219004dad8d", "56de49564396321400ee277a"]


def run(*argv):
    assert main([str(a) for a in argv]) == 0


@pytest.fixture(scope="module")
def stage(tiny_models, tmp_path_factory):
    """Inputs of the oracle stage for tiny-llama-chat: 2-shot prompts and generations (v1, v2), summary."""
    root = tmp_path_factory.mktemp("oracle_stage")
    weights = tiny_models["llama-chat"]
    run(
        "data",
        "--source",
        "local",
        "--local-dir",
        SUBSET,
        "--languages",
        "en",
        "de",
        "--out",
        root / "xquad.parquet",
        "--problems",
        root / "problems.csv",
    )
    scores = []
    for fmt in ("v1", "v2"):
        common = [
            "--registry",
            REGISTRY,
            "--model",
            "tiny-llama-chat",
            "--weights",
            weights,
            "--shots",
            2,
            "--format",
            fmt,
        ]
        run(
            "prompts",
            "--data",
            root / "xquad.parquet",
            *common,
            "--languages",
            "en",
            "de",
            "--demonstrations",
            *DEMOS,
            "--max-items",
            2,
            "--out",
            root / f"prompts-{fmt}.parquet",
        )
        run(
            "generate-job",
            "--prompts",
            root / f"prompts-{fmt}.parquet",
            *common,
            "--max-new-tokens",
            8,
            "--dtype",
            "float32",
            "--out",
            root / f"generations-{fmt}.parquet",
        )
        run("score", "--generations", root / f"generations-{fmt}.parquet", "--out", root / f"scores-{fmt}.parquet")
        scores.append(root / f"scores-{fmt}.parquet")
    run(
        "aggregate",
        "--scores",
        *scores,
        "--out-csv",
        root / "direction_scores.csv",
        "--out-items",
        root / "item_scores.parquet",
    )
    run("tables", "--direction-scores", root / "direction_scores.csv", "--out-dir", root / "tables")
    run(
        "oracle-sentences",
        "--data",
        root / "xquad.parquet",
        "--out",
        root / "units.parquet",
        "--problems",
        root / "sentence_problems.csv",
    )
    return root, weights


def attribute_args(root, weights, implementation, out, *extra, languages=("en", "de")):
    return [
        "oracle-attribute",
        "--units",
        root / "units.parquet",
        "--summary",
        root / "tables" / "summary_2shot.csv",
        "--prompts",
        f"v1={root / 'prompts-v1.parquet'}",
        f"v2={root / 'prompts-v2.parquet'}",
        "--generations",
        f"v1={root / 'generations-v1.parquet'}",
        f"v2={root / 'generations-v2.parquet'}",
        "--registry",
        REGISTRY,
        "--model",
        "tiny-llama-chat",
        "--weights",
        weights,
        "--question-languages",
        *languages,
        "--implementation",
        implementation,
        "--max-new-tokens",
        8,
        "--dtype",
        "float32",
        "--out",
        out,
        *extra,
    ]


def test_attribution_tables_and_figure(stage):
    root, weights = stage
    run(*attribute_args(root, weights, "batched", root / "batched.parquet", "--chunk-size", 3))
    run(*attribute_args(root, weights, "captum", root / "captum.parquet", languages=("de",)))
    batched, captum = read_parquet(root / "batched.parquet"), read_parquet(root / "captum.parquet")
    summary = pd.read_csv(root / "tables" / "summary_2shot.csv")
    assert len(batched) == 4 and set(batched["question_lang"]) == {"en", "de"}
    assert (batched["prompt_format"] == summary["prompt_format"].iloc[0]).all()
    assert not (root / "batched.parquet.shards").exists()
    generations = read_parquet(root / f"generations-{batched['prompt_format'].iloc[0]}.parquet")
    en_x = generations[generations["context_lang"] == "en"]
    assert sorted(batched["prediction"]) == sorted(en_x["prediction"])
    attributed = batched[batched["status"] == "ok"]
    assert len(attributed) >= 1
    assert (attributed["target_source"] == "regenerated").all()  # same greedy answers as the generation stage
    german = attributed[attributed["question_lang"] == "de"]
    assert len(captum) == 2 and (captum["status"] == "ok").sum() == len(german)
    for row, reference in zip(german.itertuples(), captum[captum["status"] == "ok"].itertuples()):
        assert (row.id, row.target_ids.tolist()) == (reference.id, reference.target_ids.tolist())
        assert len(row.step_attr) == len(row.sequence_attr) == row.n_units
        assert 0 <= row.gold_unit < row.n_units
        assert np.abs(np.array(row.sequence_attr) - np.array(reference.sequence_attr)).max() < 1e-4
        assert np.abs(np.array(row.step_attr) - np.array(reference.step_attr)).max() < 1e-4
        assert row.step_correct == (row.step_top == row.gold_unit)

    run(
        "oracle-tables",
        "--attributions",
        root / "batched.parquet",
        "--item-scores",
        root / "item_scores.parquet",
        "--out-dir",
        root / "oracle_tables",
    )
    table3 = pd.read_csv(root / "oracle_tables" / "oracle_summary.csv")
    assert list(table3.columns) == ["model", "step en-en", "step en-x", "sequence en-en", "sequence en-x"]
    assert table3["model"].tolist() == ["Tiny-Llama-Chat"]
    run("oracle-figure", "--accuracy", root / "oracle_tables" / "oracle_vs_f1.csv", "--out", root / "oracle.png")
    assert (root / "oracle.png").stat().st_size > 10_000


def test_finished_shards_are_reused_and_stale_ones_redone(stage, monkeypatch):
    root, weights = stage
    out = root / "resumed.parquet"
    shards = root / "resumed.parquet.shards"
    with shards_kept(monkeypatch):  # the job's shard folder stays, as a kill leaves it
        run(*attribute_args(root, weights, "batched", out, "--chunk-size", 2))
    first = read_parquet(out)
    out.unlink()
    done = first.iloc[:2].assign(seconds=-1.0)  # marks the shard as the one a killed job left behind
    rewrite_shard(shards / "shard-00000.parquet", done)
    rewrite_shard(shards / "shard-00001.parquet", first.iloc[:2])  # wrong items for shard 1: recomputed
    run(*attribute_args(root, weights, "batched", out, "--chunk-size", 2))
    resumed = read_parquet(out)
    assert (resumed["seconds"].iloc[:2] == -1.0).all()
    assert resumed[["id", "question_lang"]].values.tolist() == first[["id", "question_lang"]].values.tolist()
    assert (resumed["seconds"].iloc[2:] >= 0).all()
    assert not shards.exists()


def test_bad_input_is_one_line(stage, tmp_path, capsys):
    root, weights = stage
    args = [str(a) for a in attribute_args(root, weights, "batched", tmp_path / "x.parquet")]
    assert args[5] == "--prompts"
    assert main(args[:6] + ["v1"] + args[7:]) == 2
    assert "expected FORMAT=PATH" in capsys.readouterr().err
    pd.DataFrame({"model": ["Other"], "prompt_format": ["v1"]}).to_csv(tmp_path / "summary.csv", index=False)
    args = attribute_args(root, weights, "batched", tmp_path / "x.parquet")
    args[args.index("--summary") + 1] = tmp_path / "summary.csv"
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no row for model 'Tiny-Llama-Chat'" in err
    assert main(["oracle-tables", "--attributions", str(tmp_path / "missing.parquet"), "--out-dir", str(tmp_path)]) == 2
    assert "missing.parquet: file not found" in capsys.readouterr().err
