"""Terminal output: the progress bar over cells and the results table."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dlbench.analysis.parity import failed as parity_failed
from dlbench.report.table import (  # noqa: F401 - fmt_*, summary_rows: kept importable here
    COLUMNS,
    best_worst,
    energy_notes,
    fmt_bytes,
    fmt_time,
    parity_text,
    summary_rows,
    visible_columns,
    winner_sentences,
)


@contextlib.contextmanager
def progress_callback(console: Console, *, enabled: bool = True) -> Iterator[Any]:
    """A callback for :func:`dlbench.run` that drives a rich progress bar over cells."""
    if not enabled:

        def quiet(kind: str, payload: dict[str, Any]) -> None:
            if kind == "warning":
                console.print(f"[yellow]warning:[/] {payload['message']}")

        yield quiet
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}"),
        console=console,
        transient=False,
    )
    state: dict[str, Any] = {}

    def on_event(kind: str, payload: dict[str, Any]) -> None:
        if kind == "plan":
            state["task"] = progress.add_task("cells", total=len(payload["todo"]), current="")
        elif kind == "worker":
            progress.update(
                state["task"], current=f"starting {payload['backend']} on {payload['device']}"
            )
        elif kind == "cell":
            status = payload["status"]
            colour = {"ok": "green", "invalid": "yellow", "failed": "red"}[status]
            msg = f"[{colour}]{status}[/] {payload['id']}"
            if status == "failed":
                msg += f": {payload['error']}"
            progress.console.print(msg)
            progress.update(state["task"], advance=1, current=payload["id"])
        elif kind == "warning":
            progress.console.print(f"[bold yellow]warning:[/] {payload['message']}")

    with progress:
        yield on_event


def print_summary(doc: dict[str, Any], console: Console) -> None:
    """The results table (units in the header, best value of each column green, worst red), a
    sentence naming the winner of each metric, then the run's warnings."""
    rows = summary_rows(doc)
    model, dataset = doc.get("model") or {}, doc.get("dataset") or {}
    table = Table(
        title=f"{model.get('name')} on {dataset.get('name')}/{dataset.get('split')}",
        caption="↓ lower is better, ↑ higher is better; green best, red worst per column",
    )
    # Narrow terminals (CI logs are often 80 columns) keep the columns that matter most.
    wide = console.width >= 120
    show_device = len({r["device"] for r in rows}) > 1
    all_columns = visible_columns(rows)  # COLUMNS, plus energy/cost/CO2 when measured
    # Narrow: energy/cost/CO2 columns would not fit whole; their winner sentences still print.
    columns = [c for c in all_columns if wide or c in COLUMNS and c.key != "build_time_s"]
    table.add_column("backend", no_wrap=True)
    if show_device:
        table.add_column("device", no_wrap=True)
    for col in columns:
        arrow = "↓" if col.better == "lower" else "↑"
        header = f"{col.label} {arrow}\n[dim]{col.unit}[/]" if wide else f"{col.short} {arrow}"
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("parity", no_wrap=True)
    marks = {c.key: best_worst(rows, c) for c in all_columns}
    for r in rows:
        cells = []
        for col in columns:
            v = r.get(col.key)
            text = col.fmt(v)
            if col.key == "throughput" and r.get("throughput_bs") and wide:
                text += f" (bs {r['throughput_bs']})"
            if col.key == "latency_median" and r.get("latency_noisy"):
                text += " [yellow]~[/]"
            best, worst = marks[col.key]
            if v is not None and best is not None and v == best:
                text = f"[bold green]{text}[/]"
            elif v is not None and worst is not None and v == worst:
                text = f"[red]{text}[/]"
            cells.append(text)
        parity = r.get("parity")
        ptxt = parity_text(parity) if wide else parity_text(parity).split(" ")[0][:4]
        if parity is None:
            ptxt = f"[dim]{ptxt}[/]"
        elif parity.get("ok"):
            ptxt = f"[green]{ptxt}[/]"
        elif not parity_failed(parity):  # agreed, but the reference cannot tell right from wrong
            ptxt = f"[yellow]{ptxt}[/]"
        else:
            ptxt = f"[bold red]{ptxt}[/]"
        backend = r["backend"] + (
            " [red](failed: " + ", ".join(r["failed"]) + ")[/]" if r.get("failed") else ""
        )
        table.add_row(backend, *([r["device"]] if show_device else []), *cells, ptxt)
    console.print(table)
    if any(r.get("latency_noisy") for r in rows):
        console.print("[dim][yellow]~[/] noisy: IQR above 10% of the median[/]")
    for sentence in winner_sentences(rows):
        console.print(f"[bold]{sentence}[/]", highlight=False)
    for note in energy_notes(doc):
        console.print(f"[dim]{note}[/]", highlight=False)
    for w in doc.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}")
