"""The Snakemake workflow itself: lint, the paper DAG (dry run), DAG-build errors, the smoke run for real and its
HTML report in a real browser."""

import json
import re
import time

import pytest
import yaml

from helpers import ROOT
from helpers.browser import Browser, find_chromium
from helpers.workflow import assert_smoke_outputs, copy_workflow, snakemake
from xmrc.paper.published import our_file_names


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("checkout"))


def test_lint_is_clean(checkout):
    result = snakemake("--lint", cwd=checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_paper_dry_run_has_every_model_job(checkout):
    started = time.monotonic()
    result = snakemake("-n", "-p", cwd=checkout)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    jobs = re.findall(
        r"rule generate(?:_api)?:.*?wildcards: model=([^,\s]+), shots=(\d+), fmt=(v\d)", result.stdout, re.S
    )
    config = yaml.safe_load((checkout / "config/config.yaml").read_text())
    registry = yaml.safe_load((checkout / "config/models.yaml").read_text())
    main = {key for key, entry in registry.items() if entry.get("main")}
    assert config["models"] == "main" and len(main) == 18 and len(jobs) == len(set(jobs))
    by_setting = {
        (shots, fmt): {model for model, s, f in jobs if (s, f) == (shots, fmt)}
        for shots in ("0", "2")
        for fmt in ("v1", "v2")
    }
    # 2-shot: the main list (Table 2) and LLaMA-2-Chat-7B (Tables 7-9 and the layer analysis)
    assert by_setting[("2", "v1")] == by_setting[("2", "v2")] == main | {"llama-2-chat-7b"}
    # 0-shot: the rows of Table 5, LLaMA-2-Chat-7B among them, no LLaMA-3.1-Tuned-8B or DeepSeek-V3
    assert (
        by_setting[("0", "v1")]
        == by_setting[("0", "v2")]
        == (main - {"llama-3.1-tuned-8b", "deepseek-v3"} | {"llama-2-chat-7b"})
    )
    assert len(jobs) == 19 * 2 + 17 * 2
    # the paper comparison reads every table of the run that holds cells of the paper's
    comparison = re.search(r"rule paper_comparison:\s*input: ([^\n]+)", result.stdout)
    assert {name.rsplit("/", 1)[-1] for name in comparison.group(1).split(", ")} == set(our_file_names())
    # the literal protocol of A.3 (docs/configuration.md, "The paper's protocol") in every prompts and judge job
    prompts = re.findall(r"python -m xmrc prompts .*", result.stdout)
    assert len(prompts) == len(jobs) and all(
        "--layout paper --answer-cue none --answer-language named --out" in line for line in prompts
    )
    assert re.search(r"python -m xmrc judge .*--layout paper", result.stdout)
    assert re.search(r"python -m xmrc oracle-attribute .*--extraction first_line --sequence-target eos", result.stdout)
    assert elapsed < 60


@pytest.mark.parametrize(
    "override, message",
    [
        ("models=[not-a-model]", "unknown model 'not-a-model'"),  # each config check: tests/unit/test_config.py
    ],
)
def test_bad_config_stops_the_dag_with_one_line(checkout, override, message):
    result = snakemake("-n", "--config", override, cwd=checkout)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("xmrc: error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_conda_env_pins_match_the_venv_requirements():
    requirements = [
        line.strip()
        for line in (ROOT / "envs/requirements-cpu.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    env = yaml.safe_load((ROOT / "envs/xmrc.yaml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    assert pip == requirements


@pytest.mark.slow
def test_smoke_workflow_end_to_end(checkout):
    result = snakemake("--configfile", "config/smoke.yaml", "--cores", "2", cwd=checkout)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_smoke_outputs(checkout)
    rerun = snakemake("--configfile", "config/smoke.yaml", "--cores", "2", "-n", cwd=checkout)
    assert "Nothing to be done" in rerun.stdout + rerun.stderr


# Shows every image result of the report in turn (as clicking its eye button does) and waits until the browser
# has decoded it: path -> [width, height] in pixels.
SHOW_EVERY_FIGURE = """(async () => {
  const shown = {};
  for (const [path, entry] of Object.entries(results)) {
    if (entry.mime_type !== "image/png") continue;
    app.setView({content: "img", contentPath: entry.data_uri, resultPath: path});
    for (let i = 0; i < 200; i++) {
      const img = [...document.querySelectorAll("img")].find(el => el.src === entry.data_uri);
      if (img && img.complete && img.naturalWidth > 0) { shown[path] = [img.naturalWidth, img.naturalHeight]; break; }
      await new Promise(resolve => setTimeout(resolve, 25));
    }
  }
  return shown;
})()"""


@pytest.mark.slow
def test_smoke_report_renders_in_a_real_browser(checkout, tmp_path):
    """`snakemake --report` of the smoke run above (same checkout, no second run), opened in headless Chromium:
    no JavaScript error, every figure and main table is an item of its stage, and every figure is displayed."""
    results = checkout / "results/smoke"
    if not (results / "tables/paper_comparison.csv").exists():
        pytest.skip("the smoke run (test_smoke_workflow_end_to_end) left no outputs in this module's checkout")
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium on PATH: .ci/run installs Debian's chromium package")
    report = snakemake("--configfile", "config/smoke.yaml", "--report", "report.html", cwd=checkout)
    assert report.returncode == 0, report.stderr[-3000:]
    figures = {str(path.relative_to(checkout)) for path in results.glob("figures/**/*.png")}
    tables = {str(path.relative_to(checkout)) for path in results.glob("report/**/*.html")}
    assert len(figures) >= 10 and len(tables) >= 20
    with Browser(chromium) as browser:
        browser.open((checkout / "report.html").as_uri())
        assert browser.evaluate("""new Promise(resolve => { const started = Date.now(); (function wait() {
            if (document.querySelector("#app").childElementCount > 0 || Date.now() - started > 20000)
                resolve(document.querySelector("#app").childElementCount); else setTimeout(wait, 50); })(); })""")
        browser.screenshot(tmp_path / "report_start.png")
        assert set(browser.evaluate("Object.keys(results)")) == figures | tables
        assert set(browser.evaluate("Object.keys(categories)")) == {
            "Scores",
            "Errors",
            "Oracle",
            "Finetuning",
            "Layer-wise analysis",
            "Paper comparison",
        }
        placed = browser.evaluate(
            "Object.fromEntries(Object.entries(categories).map(([c, subs]) => [c, Object.values(subs).flat()]))"
        )
        assert {
            "results/smoke/figures/paper_comparison.png",
            "results/smoke/report/paper_comparison.html",
            "results/smoke/report/paper_comparison_summary.html",
        } <= set(placed["Paper comparison"])
        assert "results/smoke/report/oracle_summary.html" in placed["Oracle"]
        pages = browser.evaluate(
            "Object.fromEntries(Object.entries(results).filter(([p, e]) => "
            "e.mime_type === 'text/html').map(([p, e]) => [p, atob(e.data_uri.split(',')[1])]))"
        )
        assert all("<table" in page for page in pages.values())
        shown = browser.evaluate(SHOW_EVERY_FIGURE)
        assert set(shown) == figures and all(width > 100 and height > 100 for width, height in shown.values())
        # the stage's menu lists its figure and tables; a table opens as a page in the content frame
        browser.evaluate("app.showCategory('Paper comparison'), true")
        menu = browser.evaluate("new Promise(resolve => setTimeout(() => resolve(document.body.innerText), 300))")
        assert all(item in menu for item in ("paper vs ours", "per published table", "every compared cell"))
        summary = "results/smoke/report/paper_comparison_summary.html"
        browser.evaluate(
            f"app.setView({{content: 'html', contentPath: results['{summary}'].data_uri, "
            f"resultPath: '{summary}'}}), true"
        )
        assert browser.evaluate(
            f"new Promise(resolve => setTimeout(() => resolve([...document.querySelectorAll("
            f"'iframe')].some(frame => frame.src === results['{summary}'].data_uri)), 300))"
        )
        screenshot = browser.screenshot(tmp_path / "report_paper_comparison.png")
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert browser.javascript_errors() == []


def test_command_line_overrides_as_users_type_them(checkout):
    """`--config` values as typed on the command line: Snakemake hands them over as strings (['0', '2'],
    {'enabled': 'true'}); the workflow gives them the schema's types, and the DAG has the intervals stage."""
    result = snakemake(
        "-n",
        "--configfile",
        "config/smoke.yaml",
        "--config",
        "shots=[0,2]",
        'intervals={"enabled": true}',
        cwd=checkout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "xmrc: error" not in result.stderr and "Traceback" not in result.stderr
    # off in both config files (config/config.yaml, config/smoke.yaml): on by the override alone
    assert not any(
        "intervals" in yaml.safe_load((checkout / f).read_text()) for f in ("config/config.yaml", "config/smoke.yaml")
    )
    assert re.search(r"^rule intervals:", result.stdout, re.M), result.stdout[-3000:]
    figures = re.findall(r"rule intervals_figure:.*?wildcards: shots=(\d+)", result.stdout, re.S)
    assert sorted(figures) == ["0", "2"]


def _job_counts(output: str) -> dict[str, int]:
    """Snakemake's "Job stats" table of a dry run: rule -> jobs."""
    stats = output.split("Job stats:", 1)[1] if "Job stats:" in output else ""
    found = re.findall(r"^(\w+)\s+(\d+)$", stats, re.M)
    return {rule: int(count) for rule, count in found if rule != "total"}


@pytest.mark.slow
def test_a_flipped_protocol_switch_reruns_only_the_jobs_it_touches(checkout):
    """On the finished smoke run (the end-to-end test's, or made here), each switch of `protocol` re-runs its
    stage and what reads it, never the rest: counted in Snakemake's own dry-run job table."""
    if not (checkout / "results/smoke/tables/direction_scores.csv").is_file():
        made = snakemake("--configfile", "config/smoke.yaml", "--cores", "2", cwd=checkout)
        assert made.returncode == 0, made.stderr[-3000:]
    results = checkout / "results/smoke"
    generation_jobs = len(list((results / "generations").glob("*/*.parquet")))
    prompt_jobs = len(list((results / "prompts").glob("*/*.parquet")))

    def flipped(switch: str, value: str) -> dict[str, int]:
        override = f"protocol={json.dumps({switch: value})}"
        result = snakemake("-n", "--configfile", "config/smoke.yaml", "--config", override, cwd=checkout)
        assert result.returncode == 0, result.stderr[-3000:]
        return _job_counts(result.stdout)

    layout = flipped("layout", "compact")
    assert layout["prompts"] == prompt_jobs and layout["generate"] == generation_jobs and layout["judge"] == 1
    extraction = flipped("extraction", "answer_label")
    assert "prompts" not in extraction and extraction["generate"] == generation_jobs
    assert extraction["oracle_attribution"] == 2 and extraction["layer_relevance"] >= 1
    lingua = flipped("lingua_languages", "all")
    assert lingua.get("language_errors") == 1 and not {"prompts", "generate", "judge", "score"} & set(lingua)
    oracle = flipped("oracle_items", "per_model")
    assert oracle.get("oracle_tables") == 1 and not {"oracle_attribution", "generate"} & set(oracle)
    mrd = flipped("mrd_relevance", "layer")
    assert mrd["layer_relevance"] >= 1 and not {"layer_hidden_states", "generate", "prompts"} & set(mrd)
    assert not {"generate", "layer_relevance"} & set(flipped("oracle_sequence", "answer"))
    step = flipped("oracle_step", "first_step")
    assert step.get("oracle_attribution") == 2 and not {"generate", "layer_relevance", "prompts"} & set(step)
    print(
        "\nflipped on the finished smoke run, jobs per switch: "
        + ", ".join(
            f"{name} {sum(counts.values())}"
            for name, counts in (
                ("layout", layout),
                ("extraction", extraction),
                ("lingua", lingua),
                ("oracle_items", oracle),
                ("mrd", mrd),
            )
        )
    )
