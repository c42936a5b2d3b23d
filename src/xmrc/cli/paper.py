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


def register(command) -> None:
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
