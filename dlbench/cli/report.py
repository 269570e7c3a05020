"""``dlbench report``: HTML report, PNG figures, Markdown and CSV tables of a result."""

from __future__ import annotations

import argparse

from dlbench.cli.args import EXIT_OK, make_console


def add_parser(sub: argparse._SubParsersAction) -> None:
    rep = sub.add_parser(
        "report",
        help="HTML report, PNG figures, Markdown and CSV tables (of dlbench run or dlbench train)",
    )
    rep.add_argument(
        "results",
        help="a result file from dlbench run, or from dlbench train (learning curves, step times)",
    )
    rep.add_argument("--out", help="output folder (default <results>-report next to the file)")
    rep.add_argument(
        "--no-summary",
        dest="summary",
        action="store_false",
        help="do not print the summary table and winner lines in the terminal",
    )


def command(args: argparse.Namespace) -> int:
    from dlbench.report import load_results, write_report

    training = _training_document(args.results)
    if training is not None:  # a `dlbench train` result: learning curves and step times
        return _training_report(training, args)
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


def _training_document(path: str) -> dict | None:
    """The document at ``path`` when it is a training result (``dlbench train``), else None."""
    import json
    from pathlib import Path

    from dlbench.execution import results

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # load_results says what is wrong with it
    if isinstance(doc, dict) and doc.get("schema") == results.TRAIN_SCHEMA_NAME:
        return doc
    return None


def _training_report(doc: dict, args: argparse.Namespace) -> int:
    from dlbench.report import default_out_dir
    from dlbench.report.training import write_training_report

    out = args.out or default_out_dir(args.results)
    files = write_training_report(doc, out)
    console = make_console()
    if args.summary:
        from dlbench.cli.train import print_training

        print_training(doc, console)
    console.print(f"Report: [cyan]{files.html}[/] (self-contained, opens offline)")
    console.print(f"Figures: {', '.join(str(p) for p in files.figures.values())}")
    return EXIT_OK
