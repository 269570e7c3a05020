"""The terminal view of a training result: one row per backend, fold means ± std, agreement."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from dlbench.train.runner import fold_metrics, summarize_folds


def _fmt(stat: dict[str, Any], scale: float = 1.0, fmt: str = "{:.2f}", pct: bool = False) -> str:
    m, s = stat.get("mean"), stat.get("std")
    if m is None:
        return "-"
    k = 100.0 if pct else scale
    text = fmt.format(m * k) + ("%" if pct else "")
    if s is not None:
        text += " ± " + fmt.format(s * k)
    return text


def print_training(doc: dict[str, Any], console: Console) -> None:
    """A table per run (rows: backends) plus the cross-framework agreement and warnings."""
    cfg = doc["config"]["train"]
    folds = doc["plan"]["folds"]
    title = (
        f"Training {doc['model']['name']} on {doc['config']['dataset']}: {cfg['optimizer']} "
        f"lr {cfg['lr']:g} ({cfg['schedule']}), {cfg['epochs']} epochs, batch {cfg['batch_size']}"
        + (f", {folds}-fold CV (mean ± std)" if folds > 1 else "")
    )
    target = cfg.get("target_accuracy")
    table = Table(title=title, title_justify="left")
    for col in (
        "backend",
        "step ms (median)",
        "step ms (p99)",
        "samples/s",
        "s/epoch",
        f"time to {100 * target:.0f}% (s)" if target else "time to target",
        "train loss / acc",
        "val loss / acc",
        "test acc",
        "peak RSS MiB",
        "diagnosis",
    ):
        table.add_column(col, overflow="fold")
    for b, info in doc["backends"].items():
        if info.get("status") != "ok" or not info.get("runs"):
            table.add_row(b, f"[red]failed[/]: {info.get('error') or 'no result'}")
            continue
        s = info.get("summary") or summarize_folds(info["runs"])
        tta = _fmt(s["time_to_accuracy_s"])
        if target and s["folds_reaching_target"] < len(info["runs"]):
            tta = (
                "not reached"
                if s["folds_reaching_target"] == 0
                else f"{tta} ({s['folds_reaching_target']}/{len(info['runs'])} folds)"
            )
        diag = "; ".join(
            dict.fromkeys(r["diagnosis"]["text"] for r in info["runs"])
            if len(info["runs"]) == 1
            else [f"fold {r['fold'] + 1}: {r['diagnosis']['label']}" for r in info["runs"]]
        )
        table.add_row(
            b,
            _fmt(s["step_time_median_s"], 1e3),
            _fmt(s["step_time_p99_s"], 1e3),
            _fmt(s["samples_per_s"], fmt="{:.0f}"),
            _fmt(s["epoch_time_s"]),
            tta,
            f"{_fmt(s['train_loss'], fmt='{:.3f}')} / {_fmt(s['train_accuracy'], pct=True, fmt='{:.1f}')}",
            f"{_fmt(s['val_loss'], fmt='{:.3f}')} / {_fmt(s['val_accuracy'], pct=True, fmt='{:.1f}')}",
            _fmt(s["test_accuracy"], pct=True, fmt="{:.1f}"),
            _fmt(s["peak_rss_bytes"], 1 / 2**20, fmt="{:.0f}"),
            diag,
        )
    console.print(table)
    agree = doc.get("agreement") or {}
    for b, a in (agree.get("backends") or {}).items():
        d, acc = a.get("max_abs_loss_diff_first_steps"), a.get("test_accuracy_diff_pp")
        console.print(
            f"{b} vs {agree['reference']}: per-step loss max |diff| "
            f"{d:.2e} over the first {agree['steps']} steps "
            f"({a.get('max_abs_loss_diff'):.2e} over all), final test accuracy differs by "
            f"{acc:.2f} points"
            if d is not None and acc is not None
            else f"{b} vs {agree['reference']}: no comparable steps"
        )
    for w in doc.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}")


__all__ = ["fold_metrics", "print_training"]
