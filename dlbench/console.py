"""Terminal output: the progress bar over cells and the results table."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


def fmt_time(seconds: float | None) -> str:
    """A duration with a sensible unit: ``812 µs``, ``3.41 ms``, ``1.20 s``."""
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


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


def summary_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per backend and device, from the cells of a result document."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for backend, per_device in doc.get("backends", {}).items():
        for device, info in per_device.items():
            rows[(backend, device)] = {
                "backend": backend,
                "device": device,
                "parity": info.get("parity"),
                "build_time_s": info.get("build_time_s"),
                "status": info.get("status"),
                "error": info.get("error"),
            }
    for cell in doc.get("cells", []):
        row = rows.setdefault(
            (cell["backend"], cell["device"]),
            {"backend": cell["backend"], "device": cell["device"]},
        )
        if cell["status"] == "failed":
            row.setdefault("failed", []).append(cell["scenario"])
            continue
        timing = cell.get("timing") or {}
        stats = timing.get("stats") or {}
        mem = (cell.get("memory") or {}).get("peak_rss_bytes")
        if mem is not None:
            row["peak_rss_bytes"] = max(row.get("peak_rss_bytes") or 0, mem)
        if cell["scenario"] == "latency":
            row["latency_median"] = stats.get("median")
            row["latency_p99"] = stats.get("p99")
            row["latency_noisy"] = stats.get("noisy")
        elif cell["scenario"] == "throughput":
            tput = timing.get("throughput")
            if tput is not None and tput > (row.get("throughput") or 0):
                row["throughput"] = tput
                row["throughput_bs"] = cell["batch_size"]
        elif cell["scenario"] == "accuracy":
            row["accuracy"] = (cell.get("metrics") or {}).get("accuracy")
    return list(rows.values())


def print_summary(doc: dict[str, Any], console: Console) -> None:
    rows = summary_rows(doc)
    table = Table(
        title=f"{doc['model'].get('name')} on {doc['dataset'].get('name')}/{doc['dataset'].get('split')}"
    )
    for col in (
        "backend",
        "device",
        "latency p50",
        "latency p99",
        "throughput",
        "peak RSS",
        "accuracy",
        "parity",
        "build",
    ):
        table.add_column(col, justify="left" if col in ("backend", "device", "parity") else "right")

    def best(key: str, lowest: bool) -> float | None:
        vals = [r[key] for r in rows if r.get(key) is not None]
        if len(vals) < 2:
            return None
        return min(vals) if lowest else max(vals)

    best_lat, best_p99 = best("latency_median", True), best("latency_p99", True)
    best_tput, best_mem = best("throughput", False), best("peak_rss_bytes", True)

    def mark(text: str, value: Any, target: Any) -> str:
        return f"[bold green]{text}[/]" if target is not None and value == target else text

    for r in rows:
        parity = r.get("parity")
        if parity is None:
            ptxt = "-"
        elif parity.get("ok"):
            ptxt = f"[green]ok[/] ({parity.get('max_abs_diff'):.1e})"
        else:
            ptxt = "[bold red]MISMATCH[/]"
        lat = fmt_time(r.get("latency_median")) + (
            " [yellow]~[/]" if r.get("latency_noisy") else ""
        )
        tput = f"{r['throughput']:,.0f}/s (bs {r['throughput_bs']})" if r.get("throughput") else "-"
        acc = f"{r['accuracy'] * 100:.2f}%" if r.get("accuracy") is not None else "-"
        backend = r["backend"] + (
            " [red](failed: " + ", ".join(r["failed"]) + ")[/]" if r.get("failed") else ""
        )
        table.add_row(
            backend,
            r["device"],
            mark(lat, r.get("latency_median"), best_lat),
            mark(fmt_time(r.get("latency_p99")), r.get("latency_p99"), best_p99),
            mark(tput, r.get("throughput"), best_tput),
            mark(fmt_bytes(r.get("peak_rss_bytes")), r.get("peak_rss_bytes"), best_mem),
            acc,
            ptxt,
            fmt_time(r.get("build_time_s")),
        )
    console.print(table)
    winners = []
    for key, label, lowest in (
        ("latency_median", "lowest latency", True),
        ("throughput", "highest throughput", False),
    ):
        vals = [(r[key], r["backend"]) for r in rows if r.get(key) is not None]
        if len(vals) >= 2:
            vals.sort(reverse=not lowest)
            ratio = vals[1][0] / vals[0][0] if lowest else vals[0][0] / vals[1][0]
            winners.append(f"{label}: [bold]{vals[0][1]}[/] ({ratio:.2f}x ahead of {vals[1][1]})")
    if winners:
        console.print("; ".join(winners) + ".")
    for w in doc.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}")
