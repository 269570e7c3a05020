"""Terminal output: the progress bar over cells and the results table."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dlbench.analysis.parity import failed as parity_failed
from dlbench.report.table import (  # noqa: F401 - fmt_*, summary_rows: kept importable here
    COLUMNS,
    INVALID_MARK,
    NOISY_MARK,
    SERVER_COLUMNS,
    TRAINING_COLUMNS,
    UNTRAINED,
    best_worst,
    energy_notes,
    figure_flags,
    figure_text,
    fmt_bytes,
    fmt_time,
    interval_text,
    invalid_cells,
    parity_text,
    summary_rows,
    untrained,
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
    state: dict[str, Any] = {"done": 0, "spent": 0.0}

    def eta() -> str:
        left = state.get("total", 0) - state["done"]
        if not state["done"] or left <= 0:
            return ""
        seconds = state["spent"] / state["done"] * left
        return f" · ETA ~{_duration(seconds)}"

    def on_event(kind: str, payload: dict[str, Any]) -> None:
        if kind == "plan":
            state["total"] = len(payload["todo"])
            state["task"] = progress.add_task("cells", total=state["total"], current="")
        elif kind == "worker":
            progress.update(
                state["task"], current=f"starting {payload['backend']} on {payload['device']}"
            )
        elif kind == "start":  # the cell now running, not the last one finished
            state["started"] = time.monotonic()
            progress.update(state["task"], current=f"running {payload['id']}{eta()}")
        elif kind == "cell":
            status = payload["status"]
            colour = {"ok": "green", "invalid": "yellow", "failed": "red"}.get(status, "dim")
            msg = (
                f"[{colour}]{status.upper() if status == 'invalid' else status}[/] {payload['id']}"
            )
            if status == "failed":
                msg += f": {payload['error']}"
            elif status == "skipped":  # a precision or a training its backend cannot run
                msg += f": {payload.get('skip_reason')}"
            elif status == "invalid":
                msg += ": " + "; ".join((payload.get("validity") or {}).get("reasons") or [])
            progress.console.print(msg, highlight=False)
            if state.get("started") is not None:
                state["spent"] += time.monotonic() - state.pop("started")
            state["done"] += 1
            progress.update(state["task"], advance=1, current=f"done {payload['id']}{eta()}")
        elif kind == "warning":
            progress.console.print(f"[bold yellow]warning:[/] {payload['message']}")

    with progress:
        yield on_event


def _parity_cell(parity: dict[str, Any] | None, wide: bool) -> str:
    """The parity verdict, whole words only (narrow: ``ok``, ``FAIL``, ``weak``, ``-``)."""
    text = parity_text(parity)
    if not wide:
        text = {"not checked": "-", "not informative": "weak", "MISMATCH": "FAIL"}.get(
            text, text.split(" ")[0]
        )
    if parity is None:
        return f"[dim]{text}[/]"
    if parity.get("ok"):
        return f"[green]{text}[/]"
    if not parity_failed(parity):  # agreed, but the reference cannot tell right from wrong
        return f"[yellow]{text}[/]"
    return f"[bold red]{text}[/]"


def _figure_cell(
    r: dict[str, Any], col: Any, marks: dict[str, Any], interval: bool, wide: bool
) -> str:
    v = r.get(col.key)
    flags = figure_flags(r, col.key)
    text = figure_text(r, col, interval=interval)
    if col.key == "throughput" and r.get("throughput_bs") and wide:
        text = text.replace(col.fmt(v), f"{col.fmt(v)} (bs {r['throughput_bs']})", 1)
    text = text.replace(f" {NOISY_MARK}", " [yellow]~[/]")
    text = text.replace(f" {INVALID_MARK}", " [bold red]INVALID[/]")
    best, worst = marks[col.key]
    if flags["invalid"]:
        return f"[dim]{text}[/]"
    if v is not None and best is not None and v == best:
        return f"[bold green]{text}[/]"
    if v is not None and worst is not None and v == worst:
        return f"[red]{text}[/]"
    return text


def _summary_table(
    rows: list[dict[str, Any]], columns: list[Any], title: str, *, interval: bool, wide: bool
) -> Table:
    from rich import box

    table = Table(
        title=title,
        caption="↓ lower is better, ↑ higher is better; green best, red worst per column",
        box=box.HEAVY_HEAD if wide else box.SIMPLE_HEAD,
    )
    show_device = len({r["device"] for r in rows}) > 1
    table.add_column("backend", no_wrap=True)
    if show_device:
        table.add_column("device", no_wrap=True)
    for col in columns:
        arrow = "↓" if col.better == "lower" else "↑"
        header = f"{col.label} {arrow}\n[dim]{col.unit}[/]" if wide else f"{col.short} {arrow}"
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("parity", no_wrap=True)
    marks = {c.key: best_worst(rows, c) for c in columns}
    for r in rows:
        cells = [_figure_cell(r, col, marks, interval, wide) for col in columns]
        backend = r["backend"] + (
            " [red](failed: " + ", ".join(r["failed"]) + ")[/]" if r.get("failed") else ""
        )
        table.add_row(
            backend,
            *([r["device"]] if show_device else []),
            *cells,
            _parity_cell(r.get("parity"), wide),
        )
    return table


def _fits(console: Console, renderable: Any) -> bool:
    from rich.measure import Measurement

    unbounded = console.options.update(width=100_000, max_width=100_000)
    return Measurement.get(console, unbounded, renderable).maximum <= console.width


def _duration(seconds: float) -> str:
    """``45s``, ``3m05s``, ``1h02m``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def print_summary(doc: dict[str, Any], console: Console) -> None:
    """The results table (units in the header, best value of each column green, worst red, a
    ``±`` 95% interval, ``~`` noisy and ``INVALID`` marks on each figure), a sentence naming
    the winner of each metric (or a tie within noise), then the run's warnings.

    Columns without a value in any row are left out. Narrow terminals (CI logs are often 80
    columns) get short headers and, when the intervals do not fit, the table without them
    followed by the intervals stacked one backend a line; nothing is ever cut.
    """
    rows = summary_rows(doc)
    model, dataset = doc.get("model") or {}, doc.get("dataset") or {}
    title = f"{model.get('name')} on {dataset.get('name')}/{dataset.get('split')}"
    if untrained(doc):
        title += f": {UNTRAINED}"
    wide = console.width >= 120
    columns = [c for c in visible_columns(rows) if any(r.get(c.key) is not None for r in rows)]
    if not wide:  # energy/cost/CO2 columns would not fit whole; their sentences still print
        columns = [
            c
            for c in columns
            if c in COLUMNS + SERVER_COLUMNS + TRAINING_COLUMNS and c.key != "build_time_s"
        ]
    table = _summary_table(rows, columns, title, interval=True, wide=wide)
    stacked = False
    if not _fits(console, table):
        table = _summary_table(rows, columns, title, interval=False, wide=wide)
        stacked = True
    if not _fits(console, table):  # still too wide: one block per backend, nothing cut
        console.print(f"[bold]{title}[/]", highlight=False)
        for r in rows:
            marks = {c.key: best_worst(rows, c) for c in columns}
            figures = [
                f"{c.short or c.label} {_figure_cell(r, c, marks, True, False)}"
                for c in columns
                if r.get(c.key) is not None
            ]
            console.print(
                f"[bold]{r['label']}[/]: "
                + ", ".join(figures)
                + f", parity {_parity_cell(r.get('parity'), False)}",
                highlight=False,
            )
    else:
        console.print(table)
        if stacked:
            console.print("[dim]95% intervals (±, relative):[/]", highlight=False)
            for r in rows:
                parts = []
                for c in columns:
                    rel = interval_text(r.get(c.key), figure_flags(r, c.key)["ci"])
                    if rel:
                        parts.append(f"{c.short} {rel}")
                if parts:
                    console.print(f"  {r['label']}: {', '.join(parts)}", highlight=False)
    if any(figure_flags(r, c.key)["noisy"] for r in rows for c in columns):
        console.print(
            "[dim][yellow]~[/] noisy: its own cell's IQR is above 10% of the median[/]",
            highlight=False,
        )
    if not stacked:
        console.print("[dim]±: half-width of the 95% interval, relative[/]", highlight=False)
    if not wide and any(not (r.get("parity") or {}).get("ok") for r in rows):
        console.print(
            "[dim]parity: FAIL mismatch, weak = agrees but not informative, - not checked[/]",
            highlight=False,
        )
    from dlbench.report.training import agreement_lines

    for line in agreement_lines(doc):  # training cells: each backend's losses vs the reference
        console.print(line, highlight=False)
    for note in invalid_cells(doc):
        console.print(f"[bold red]{note}[/]", highlight=False)
    cells = doc.get("cells") or []
    count = {
        k: sum(1 for c in cells if c.get("status") == k)
        for k in ("ok", "invalid", "failed", "skipped")
    }
    colour = "bold red" if count["invalid"] or count["failed"] else "green"
    skipped = f", {count['skipped']} skipped" if count["skipped"] else ""
    console.print(
        f"[{colour}]{len(cells)} cells: {count['ok']} ok, {count['invalid']} INVALID, "
        f"{count['failed']} failed{skipped}[/]",
        highlight=False,
    )
    for sentence in winner_sentences(rows):
        console.print(f"[bold]{sentence}[/]", highlight=False)
    for note in energy_notes(doc):
        console.print(f"[dim]{note}[/]", highlight=False)
    for w in doc.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}")
