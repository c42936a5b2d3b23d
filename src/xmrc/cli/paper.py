"""Command of the paper comparison: `xmrc paper-comparison`."""

from __future__ import annotations

from xmrc.config import Registry
from xmrc.paper.compare import compare, headline, read_our_tables, write_comparison


def cmd_paper_comparison(args) -> None:
    """the paper's published numbers beside this run's, cell by cell (CSV, Markdown, scatter PNG)"""
    from xmrc.paper.figure import comparison_scatter  # matplotlib and seaborn

    cells, summary = compare(read_our_tables(args.tables), Registry.load(args.registry))
    write_comparison(cells, summary, args.out_dir)
    comparison_scatter(cells, args.figure)
    print(f"{args.out_dir}/paper_comparison.{{csv,md}}, {args.figure}: {headline(cells, summary)}")


def cmd_paper_findings(args) -> None:
    """the paper's findings one model's run can test: each with the paper's words, its population, statistic,
    unit, n, the Holm-adjusted interval and a verdict that can come out every way (CSV and Markdown)"""
    from xmrc.bootstrap import BootstrapSettings
    from xmrc.io import write_csv, write_text
    from xmrc.paper.findings import check_findings, markdown, run_scenarios, summary_line

    settings = BootstrapSettings(resamples=args.resamples, seed=args.seed)
    found = check_findings(args.results, args.model, args.population, settings, args.alpha)
    write_csv(found, args.out)
    if args.markdown:
        write_text(markdown(found), args.markdown)
    if args.scenarios:
        write_text(run_scenarios(args.results).to_markdown(index=False) + "\n", args.scenarios)
    for row in found.itertuples():
        n = f"{int(row.paragraphs)} paragraphs, {int(row.items)} items" if row.paragraphs == row.paragraphs else "n/a"
        interval = f" [{row.low:.3f}, {row.high:.3f}] ({row.confidence:.2%}, Holm)" if row.low == row.low else ""
        estimate = f"θ = {row.estimate:.3f}{interval}" if row.estimate == row.estimate else (row.note or "")
        print(f"{row.verdict:>14}  {row.finding}: {estimate}")
        print(f"{'':>16}paper ({row.population} models): {row.paper}")
        print(f"{'':>16}θ: {row.statistic}; {row.criterion}; resampled by paragraph ({n}); {row.note}")
    print(f"{args.out}: {len(found)} findings for {args.model} ({args.population}): {summary_line(found)}")


def cmd_study_power(args) -> None:
    """the paragraphs a study needs for a target half-width of the paired differences the findings test, from
    a run's own variances (Markdown and CSV)"""
    from xmrc.io import write_csv, write_text
    from xmrc.paper.power import power_table, run_differences
    from xmrc.tables import markdown_table

    differences, paragraphs = run_differences(args.results, args.model)
    table = power_table(differences, paragraphs, args.half_width, args.available)
    write_csv(table, args.out, float_format="%.3f")
    if args.markdown:
        write_text(markdown_table(table.set_index("difference").round(2)) + "\n", args.markdown)
    for row in table.itertuples():
        print(
            f"{row.difference}: sd between {row.sd_between:.1f}, within {row.sd_within:.1f}; "
            f"{row.paragraphs_for_target_1_item} paragraphs (one item each) for ±{args.half_width:g}"
        )


def register(command) -> None:
    p = command("study-power", cmd_study_power)
    p.add_argument("--results", required=True, help="a run's results directory (results/<run>)")
    p.add_argument("--model", required=True, help="the model's name as the tables print it")
    p.add_argument("--half-width", type=float, default=3.0, help="target 95%% half-width in F1 points")
    p.add_argument("--available", type=int, default=240, help="paragraphs the dataset has (XQuAD: 240)")
    p.add_argument("--out", required=True, help="CSV of the calculation")
    p.add_argument("--markdown", help="also as a Markdown table")

    p = command("paper-findings", cmd_paper_findings)
    p.add_argument("--results", required=True, help="a run's results directory (results/<run>)")
    p.add_argument("--model", required=True, help="the model's name as the tables print it")
    p.add_argument("--out", required=True, help="CSV of the findings")
    p.add_argument("--markdown", help="also as a Markdown table")
    p.add_argument("--scenarios", help="Markdown of Table 2's columns with intervals, every model and setting")
    p.add_argument(
        "--population",
        choices=["base", "post-trained"],
        default="base",
        help="the model's population: each finding is tested only for the models the paper makes it for",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="family-wise error rate under Holm (default 0.05)")
    p.add_argument("--resamples", type=int, default=10000, help="paragraph-bootstrap resamples (default 10000)")
    p.add_argument("--seed", type=int, default=0)

    p = command("paper-comparison", cmd_paper_comparison)
    p.add_argument(
        "--tables",
        nargs="*",
        default=[],
        help="our tables (results/<run>/tables/<name>.csv) that hold the paper's cells; a table not "
        "given is one the run did not produce",
    )
    p.add_argument("--registry", required=True, help="model registry YAML (paper_name maps our models)")
    p.add_argument("--out-dir", required=True, help="directory of paper_comparison.{csv,md}")
    p.add_argument("--figure", required=True, help="scatter PNG, paper vs ours")
