"""``dlbench list``: backends, models, datasets, metrics or scenarios."""

from __future__ import annotations

import argparse

from dlbench.cli.args import EXIT_OK, make_console


def add_parser(sub: argparse._SubParsersAction) -> None:
    lst = sub.add_parser("list", help="list backends, models, datasets, metrics or scenarios")
    lst.add_argument(
        "what",
        nargs="?",
        default="backends",
        choices=["backends", "models", "datasets", "metrics", "scenarios"],
    )


def command(args: argparse.Namespace) -> int:
    from rich.table import Table

    from dlbench import registry

    console = make_console()
    what = args.what
    if what == "scenarios":
        from dlbench.execution.scenarios import SCENARIOS

        table = Table("scenario", "what it measures")
        for name, scenario in SCENARIOS.items():
            table.add_row(name, scenario.summary)
        console.print(table)
        return EXIT_OK
    if what == "models":
        from dlbench import zoo

        rows = zoo.describe()
        table = Table("model", "input shape", "params")
        for row in rows:
            table.add_row(row["name"], str(tuple(row["input_shape"])), f"{row['params']:,}")
        console.print(table)
        return EXIT_OK
    reg = {
        "backends": registry.backends,
        "datasets": registry.datasets,
        "metrics": registry.metrics,
    }[what]
    table = Table(what[:-1], "installed", "from", "install with")
    for name in reg.names():
        entry = reg.entry(name)
        missing = entry.missing()
        hint = f"pip install 'dlbench[{entry.extra}]'" if missing and entry.extra else ""
        table.add_row(name, "no" if missing else "yes", entry.origin, hint)
    console.print(table)
    return EXIT_OK
