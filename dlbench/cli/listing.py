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
        from rich import box

        from dlbench import zoo
        from dlbench.analysis.weights import weights_info

        rows = zoo.describe()
        table = Table(
            "model",
            "input shape",
            "params",
            "weights",
            box=box.SIMPLE_HEAD,
            caption="other datasets re-shape the model: a different, untrained network "
            "(refused for trained weights without --reshape-model)",
        )
        for row in rows:
            shape = "x".join(str(d) for d in row["input_shape"] or ()) or "-"
            params = f"{row['params']:,}" if row["params"] is not None else "-"
            table.add_row(row["name"], shape, params, _weights_text(zoo, row["name"], weights_info))
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


def _weights_text(zoo, name: str, weights_info) -> str:
    """``trained: digits 96.9%`` (its test accuracy) or ``random (untrained)``."""
    try:
        info = weights_info(zoo.get(name))
    except Exception as exc:  # a broken third-party model must not break the listing
        return f"unknown ({type(exc).__name__})"
    if info["trained"]:
        acc = info.get("test_accuracy")
        extra = f" {acc * 100:.1f}%" if isinstance(acc, (int, float)) else ""
        return f"trained: {info.get('dataset') or 'unknown dataset'}{extra}"
    return "random (untrained)" if info["trained"] is False else "unknown"
