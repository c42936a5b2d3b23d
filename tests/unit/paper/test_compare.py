"""The paper comparison (`xmrc paper-comparison`) as the rule calls it: the paper's own numbers fed as ours
agree in every cell, a changed number shows as its difference, a run without a paper model says so."""

from pathlib import Path

import pandas as pd
import yaml

from helpers import PUBLISHED_TABLES, ROOT
from helpers.workflow import assert_one_line_error, xmrc
from xmrc.paper.published import PAPER_TABLES, published_cells, published_table
from xmrc.tables import write_table

REGISTRY = ROOT / "config/models.yaml"


def reference(stem: str) -> pd.DataFrame:
    return pd.read_csv(PUBLISHED_TABLES / f"{stem}.csv").set_index("model")


def paper_as_ours(out_dir: Path) -> list[Path]:
    """Our tables (names, layout, 2 decimals as the workflow writes them) holding the paper's numbers."""
    table2 = reference("table2_2shot_summary")
    ours = {
        "summary_2shot": table2[["en-en", "mean en-x", "mean x-x", "en-x / en-en", "x-x / en-en"]].assign(
            prompt_format="v1"
        ),
        "error_summary_2shot_en-x": table2[["mean language", "mean generation", "en-en generation"]].assign(
            prompt_format="v2"
        ),
        "oracle_summary": reference("table3_oracle"),
        "em_0shot_en-x": reference("table5a_0shot_em_en-x"),
        "f1_0shot_en-x": reference("table5b_0shot_f1_en-x"),
        "em_0shot_x-x": reference("table5c_0shot_em_x-x"),
        "f1_0shot_x-x": reference("table5d_0shot_f1_x-x"),
        # the tuned model is one more row of our 2-shot F1 tables (the paper prints it apart, as Table 10)
        "f1_2shot_en-x": pd.concat([reference("table6a_2shot_f1_en-x"), reference("table10a_2shot_f1_en-x_tuned")]),
        "f1_2shot_x-x": pd.concat([reference("table6b_2shot_f1_x-x"), reference("table10b_2shot_f1_x-x_tuned")]),
        "language_error_2shot_en-x": reference("table7_2shot_language_error_en-x"),
        "generation_failure_2shot_en-x": reference("table8_2shot_generation_failure_en-x"),
        "gibberish_2shot_en-x": reference("table9a_2shot_gibberish_en-x"),
        "refusal_2shot_en-x": reference("table9b_2shot_refusal_en-x"),
        "blank_2shot_en-x": reference("table9c_2shot_blank_en-x"),
    }
    return [write_table(frame, out_dir / stem)[0] for stem, frame in ours.items()]


def run_comparison(tmp_path: Path, tables: list[Path]):
    out = tmp_path / "out"
    result = xmrc(
        "paper-comparison",
        "--tables",
        *tables,
        "--registry",
        REGISTRY,
        "--out-dir",
        out,
        "--figure",
        out / "paper_comparison.png",
    )
    assert result.returncode == 0, result.stderr
    cells = pd.read_csv(out / "paper_comparison.csv")
    summary = pd.read_csv(out / "paper_comparison_summary.csv", keep_default_na=False, na_values=[""])
    return out, cells, summary


def test_every_packaged_table_is_one_of_the_papers_tables():
    assert {spec.published for spec in PAPER_TABLES} == {path.stem for path in PUBLISHED_TABLES.glob("*.csv")}


def test_every_model_of_the_papers_tables_has_its_paper_name_in_the_registry():
    registry = yaml.safe_load(REGISTRY.read_text())
    paper_names = {entry.get("paper_name") for entry in registry.values()}
    for spec in PAPER_TABLES:
        assert set(published_table(spec.published).index) <= paper_names, spec.published
    assert not any("paper_name" in entry for key, entry in registry.items() if key.startswith(("tiny-", "smollm2")))


def test_the_papers_own_numbers_agree_in_every_cell(tmp_path):
    out, cells, summary = run_comparison(tmp_path, paper_as_ours(tmp_path / "tables"))
    assert (cells["difference"] == 0).all() and (cells["paper"] == cells["ours"]).all()
    # every published number is compared once per table it is printed in, Table 3's lost cells excepted
    assert list(summary["cells"]) == [published_cells(spec) for spec in PAPER_TABLES]
    # Table 2: 18 models x 8; 3: 16 surviving; 5: 17 models x (12 + 12 + 11 + 11); 6: 16 x (12 + 11);
    # 7: 17 x 11; 8 and 9a-c: 17 x 12 each; 10: 12 + 11
    assert len(cells) == 18 * 8 + 16 + 17 * 46 + 16 * 23 + 17 * 11 + 4 * 17 * 12 + 23 == 2336
    assert (summary["mean_abs_difference"] == 0).all() and (summary["note"].isna()).all()
    assert summary["largest_differences"].isna().all()  # nothing to list where every cell agrees
    assert set(cells.loc[cells["table"] == "Table 10a", "model"]) == {"LLaMA-3.1-Tuned-8B"}
    ratios = cells[cells["column"] == "en-x / en-en"]
    assert (ratios["unit"] == "fraction").all() and ratios["paper"].between(0, 1.5).all()
    assert "0 of" not in (out / "paper_comparison.md").read_text()
    assert (out / "paper_comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_changed_number_shows_as_its_difference(tmp_path):
    tables = paper_as_ours(tmp_path / "tables")
    path = tmp_path / "tables/f1_2shot_en-x.csv"
    frame = pd.read_csv(path)
    frame.loc[frame["model"] == "Qwen-2.5-7B", "en-de"] += 1.5
    frame.loc[frame["model"] == "LLaMA-3.1-Tuned-8B", "en-en"] -= 2.25
    frame.to_csv(path, index=False, float_format="%.2f")
    _, cells, summary = run_comparison(tmp_path, tables)
    changed = cells[cells["difference"] != 0].set_index("table")
    assert changed["difference"].to_dict() == {"Table 6a": 1.5, "Table 10a": -2.25}
    assert changed.loc["Table 6a", ["model", "column", "ours"]].tolist() == ["Qwen-2.5-7B", "en-de", 58.18]
    row = summary.set_index("measure").loc["2-shot F1, en-x"]
    assert row["max_abs_difference"] == 1.5
    assert row["largest_differences"] == "Qwen-2.5-7B en-de: 58.18 vs 56.68 (+1.50)"


def test_a_run_without_a_paper_model_compares_nothing_and_says_why(tmp_path):
    scores = pd.DataFrame({"model": ["Tiny-Llama-Chat", "Tiny-Qwen2-Chat"], "en-en": [3.0, 4.0], "en-de": [1.0, 2.0]})
    write_table(scores.set_index("model"), tmp_path / "tables/f1_2shot_en-x")
    out, cells, summary = run_comparison(tmp_path, [tmp_path / "tables/f1_2shot_en-x.csv"])
    assert cells.empty and list(cells.columns)[:3] == ["table", "measure", "model"]
    notes = summary.set_index("measure")["note"]
    assert notes["2-shot F1, en-x"] == "no model of this run is the paper's"
    assert notes["0-shot EM, en-x"] == "this run did not produce em_0shot_en-x.csv"
    assert "No published cell compared" in (out / "paper_comparison.md").read_text()
    assert (out / "paper_comparison.png").stat().st_size > 0


def test_bad_input_is_one_line_naming_the_file(tmp_path):
    unknown = tmp_path / "f1_2shot_en-x.csv"
    pd.DataFrame({"model": ["No-Such-Model"], "en-en": [1.0]}).to_csv(unknown, index=False)
    args = ["--registry", REGISTRY, "--out-dir", tmp_path / "out", "--figure", tmp_path / "out/f.png"]
    assert_one_line_error(xmrc("paper-comparison", "--tables", unknown, *args), "f1_2shot_en-x.csv", "No-Such-Model")
    stray = tmp_path / "direction_scores.csv"
    stray.write_text("model,f1\nA,1\n")
    assert_one_line_error(
        xmrc("paper-comparison", "--tables", stray, *args),
        "direction_scores.csv",
        "not a table the paper comparison reads",
    )
