"""``dlbench report``: HTML report, PNG figures, Markdown and CSV tables of a result."""

from __future__ import annotations

import argparse

from dlbench.cli.args import EXIT_OK, make_console


def add_parser(sub: argparse._SubParsersAction) -> None:
    rep = sub.add_parser("report", help="HTML report, PNG figures, Markdown and CSV tables")
    rep.add_argument("results", help="a result file from dlbench run")
    rep.add_argument("--out", help="output folder (default <results>-report next to the file)")
    rep.add_argument(
        "--no-summary",
        dest="summary",
        action="store_false",
        help="do not print the summary table and winner lines in the terminal",
    )


def command(args: argparse.Namespace) -> int:
    from dlbench.report import load_results, write_report

    doc = load_results(args.results)
    files = write_report(args.results, args.out)
    console = make_console()
    if args.summary:  # the same table, marks and winner lines as at the end of dlbench run
        from dlbench.cli.console import print_summary

        print_summary(doc, console)
    console.print(f"Report: [cyan]{files.html}[/] (self-contained, opens offline)")
    console.print(f"Figures: {', '.join(str(p) for p in files.figures.values())}")
    console.print(f"Tables: {files.markdown}, {files.summary_csv}, {files.cells_csv}")
    return EXIT_OK
