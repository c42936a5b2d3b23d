"""Beyond the paper's en-x/x-x at 0/2 shots, through the workflow: x-y on three languages and 5-shot prompts in
one tiny run (one tiny model, 5-shot v1, 2 items). More shots than demonstrations: tests/unit/test_config.py."""

import pandas as pd
import pytest
import yaml

from helpers import ROOT
from helpers.workflow import copy_workflow, snakemake
from xmrc.io import read_parquet

# The paper's two demonstrations, then three more items of the bundled subset (parallel in all 12 languages).
FIVE_DEMOS = [
    "56dde1d966d3e219004dad8d",
    "56de49564396321400ee277a",
    "56de0daecffd8e1900b4b595",
    "56de0daecffd8e1900b4b596",
    "56de0f6a4396321400ee257f",
]
LANGS = ["en", "de", "zh"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = copy_workflow(tmp_path_factory.mktemp("directions"))
    config = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    config.update(
        run="xy",
        models=["tiny-llama-base"],
        languages=LANGS,
        shots=[5],
        prompt_formats=["v1"],
        scenarios=["x-y"],
        demonstrations=FIVE_DEMOS,
    )
    config["data"]["max_items"] = 2
    for stage in ("errors", "layers", "oracle", "finetune"):  # the scores DAG only
        config[stage]["enabled"] = False
    (work / "config/xy.yaml").write_text(yaml.safe_dump(config))
    return work


@pytest.mark.slow
def test_x_y_and_five_shots_run_end_to_end(work):
    results = work / "results/xy"
    # just the new outputs (the run's other figures and the report pages are the smoke run's business)
    targets = ["results/xy/tables/f1_5shot_x-y.csv", "results/xy/figures/matrix_f1/tiny-llama-base/5shot-v1.png"]
    result = snakemake("--configfile", "config/xy.yaml", "--cores", "2", *targets, cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    scores = pd.read_csv(results / "tables/direction_scores.csv")
    # every (context, question) pair of the three languages, each scored on the 2 items
    assert sorted(zip(scores["context_lang"], scores["question_lang"])) == sorted((c, q) for c in LANGS for q in LANGS)
    assert (scores["n"] == 2).all() and set(scores["shots"]) == {5}
    xy = pd.read_csv(results / "tables/f1_5shot_x-y.csv", index_col="model")
    assert xy.shape == (1, 9)
    png = results / "figures/matrix_f1/tiny-llama-base/5shot-v1.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    prompts = read_parquet(results / "prompts/tiny-llama-base/5shot-v1.parquet")
    assert (prompts["prompt"].str.count("Context: ") == 6).all()  # five demonstrations, then the test item
    assert not set(FIVE_DEMOS) & set(prompts["id"])  # in the prompt, so not evaluated
    assert set(prompts["answer_lang"]) == set(LANGS) and (prompts["answer_lang"] == prompts["context_lang"]).all()
