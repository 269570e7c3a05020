"""``dlbench report``: HTML report, PNG figures, Markdown and CSV tables of a result."""

from __future__ import annotations

import argparse

from dlbench.cli.args import EXIT_OK, make_console


def add_parser(sub: argparse._SubParsersAction) -> None:
    rep = sub.add_parser("report", help="HTML report, PNG figures, Markdown and CSV tables")
    rep.add_argument("results", help="a result file from dlbench run")
    rep.add_argument("--out", help="output folder (default <results>-report next to the file)")


def command(args: argparse.Namespace) -> int:
    from dlbench.report import write_report

    files = write_report(args.results, args.out)
    console = make_console()
    console.print(f"Report: [cyan]{files.html}[/] (self-contained, opens offline)")
    console.print(f"Figures: {', '.join(str(p) for p in files.figures.values())}")
    console.print(f"Tables: {files.markdown}, {files.summary_csv}, {files.cells_csv}")
    return EXIT_OK
