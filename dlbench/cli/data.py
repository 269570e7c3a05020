"""``dlbench data check``: data-quality checks of a dataset, as tables and JSON."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from dlbench.cli.args import EXIT_USAGE, make_console
from dlbench.data.check import SCHEMA, Report, check
from dlbench.errors import DlbenchError


def add_parser(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="dataset tools")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    check = data_sub.add_parser(
        "check", help="data-quality checks (balance, duplicates, leakage, ...)"
    )
    check.add_argument("name", help="dataset name (dlbench list datasets)")
    check.add_argument(
        "--root", "--dataset-root", dest="root", help="where the dataset's files are"
    )
    check.add_argument("--split", help="check only this split (default: all it has)")
    check.add_argument("--json", dest="json_out", help="write the JSON report here")


def command(args: argparse.Namespace) -> int:
    if args.data_command != "check":
        print(
            "usage: dlbench data check NAME [--root DIR] [--split S] [--json FILE]", file=sys.stderr
        )
        return EXIT_USAGE
    return cli_main(args.name, args.root, args.split, args.json_out, make_console())


def cli_main(
    name: str, root: str | None, split: str | None, json_out: str | None, console: Any = None
) -> int:
    """Run :func:`check`, print a table, write the JSON report if asked.

    Returns:
        0 when no error-level issue was found, 1 otherwise (including a dataset that does not
        load).
    """
    if console is None:
        from rich.console import Console

        console = Console()
    try:
        report = check(name, root=root, split=split)
    except DlbenchError as e:
        console.print(f"[bold red]error[/]: could not check {name!r}: {e}")
        if json_out:
            doc = {"schema": SCHEMA, "dataset": name, "ok": False, "error": str(e)}
            Path(json_out).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        return 1
    render(report, console)
    if json_out:
        report.to_json(json_out)
        console.print(f"JSON report written to {json_out}")
    return 0 if report.ok else 1


def render(report: Report, console: Any) -> None:
    """Print ``report`` as rich tables."""
    from rich.table import Table

    stats = Table(title=f"{report.dataset}: splits")
    for col in ("split", "samples", "classes", "smallest class", "largest class", "imbalance"):
        stats.add_column(col, justify="left" if col == "split" else "right")
    for s, st in report.stats.items():
        ratio = st.get("imbalance_ratio")
        stats.add_row(
            s,
            str(st.get("samples", "")),
            str(st.get("classes", "")),
            str(st.get("min_class_count", "")),
            str(st.get("max_class_count", "")),
            "" if ratio is None else ("inf" if not math.isfinite(ratio) else f"{ratio:.2f}"),
        )
    console.print(stats)
    table = Table(title=f"{report.dataset}: data check")
    for col in ("level", "split", "check", "count", "details"):
        table.add_column(col, justify="right" if col == "count" else "left")
    colour = {"error": "bold red", "warning": "yellow", "info": "dim"}
    for i in report.sorted_issues():
        table.add_row(
            f"[{colour[i.level]}]{i.level}[/]",
            i.split,
            i.check,
            str(i.count) if i.count else "",
            i.message,
        )
    if not report.issues:
        table.add_row("[green]ok[/]", "", "", "", "no problems found")
    console.print(table)
    verdict = "[green]passed[/]" if report.ok else "[bold red]failed[/]"
    console.print(
        f"{report.dataset}: {verdict} ({len(report.errors)} errors, "
        f"{len(report.warnings)} warnings)"
    )
