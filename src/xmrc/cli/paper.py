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
    """the paper's findings a base model's run can test, each with the paper's numbers, ours with bootstrap
    intervals, and a verdict (CSV and Markdown)"""
    from xmrc.bootstrap import BootstrapSettings
    from xmrc.io import write_csv, write_text
    from xmrc.paper.findings import check_findings, run_scenarios

    settings = BootstrapSettings(resamples=args.resamples, seed=args.seed)
    found = check_findings(args.results, args.model, settings)
    write_csv(found, args.out)
    if args.markdown:
        write_text(found.to_markdown(index=False) + "\n", args.markdown)
    if args.scenarios:
        write_text(run_scenarios(args.results, settings).to_markdown(index=False) + "\n", args.scenarios)
    counts = found["verdict"].value_counts().to_dict()
    print(f"{args.out}: {len(found)} findings for {args.model}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))


def register(command) -> None:
    p = command("paper-findings", cmd_paper_findings)
    p.add_argument("--results", required=True, help="a run's results directory (results/<run>)")
    p.add_argument("--model", required=True, help="the model's name as the tables print it")
    p.add_argument("--out", required=True, help="CSV of the findings")
    p.add_argument("--markdown", help="also as a Markdown table")
    p.add_argument("--scenarios", help="Markdown of Table 2's columns with intervals, every model and setting")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
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
