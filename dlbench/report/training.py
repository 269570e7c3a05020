"""The report of a training result (``dlbench train``): learning curves, step times, a summary.

``dlbench report train-….json`` writes ``index.html`` (self-contained, figures inline) and one
PNG per figure: the learning curves (loss and accuracy per epoch, per backend) and the step
figure (the loss of every step and the distribution of step times). Each backend keeps the
colour it has in every benchmark report. Framework-free; matplotlib only when drawing.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlbench.report.figures import (
    FigureOut,
    _new_figure,
    _require_matplotlib,
    backend_colours,
    png_bytes,
)
from dlbench.report.html import CSS, _e, _kv_table
from dlbench.report.table import fmt_rate, fmt_time


@dataclass
class TrainingReportFiles:
    """What :func:`write_training_report` wrote."""

    out_dir: Path
    html: Path
    figures: dict[str, Path] = field(default_factory=dict)


def is_training(doc: dict[str, Any]) -> bool:
    from dlbench.execution import results

    return doc.get("schema") == results.TRAIN_SCHEMA_NAME


def _runs(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {
        b: info["runs"]
        for b, info in (doc.get("backends") or {}).items()
        if info.get("status") == "ok" and info.get("runs")
    }


def learning_curves_figure(doc: dict[str, Any], colours: dict[str, str]) -> FigureOut | None:
    """Loss (left) and accuracy (right) per epoch: train solid, validation dashed, test dotted;
    one colour per backend, every fold drawn."""
    runs = _runs(doc)
    if not any(r.get("curves") for rs in runs.values() for r in rs):
        return None
    fig = _new_figure(10.5, 4.0)
    ax_loss, ax_acc = fig.subplots(1, 2)
    styles = {"train": "-", "val": "--", "test": ":"}
    for backend, rs in sorted(runs.items()):
        for k, r in enumerate(rs):
            curves = r.get("curves") or {}
            for split, ls in styles.items():
                label = f"{backend} {split}" if k == 0 else None
                for ax, key, scale in ((ax_loss, "loss", 1.0), (ax_acc, "accuracy", 100.0)):
                    ys = [v for v in curves.get(f"{split}_{key}") or [] if v is not None]
                    if ys:
                        xs = np.arange(1, len(ys) + 1)
                        ax.plot(
                            xs,
                            np.asarray(ys) * scale,
                            ls=ls,
                            marker="o",
                            ms=3,
                            color=colours[backend],
                            label=label,
                        )
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss (lower is better)")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=7.5, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return FigureOut(
        "learning_curves",
        "Learning curves",
        "Loss and accuracy after each epoch: train (solid), validation (dashed), test (dotted); "
        "one colour per backend, every fold drawn.",
        fig,
        2,
    )


def steps_figure(doc: dict[str, Any], colours: dict[str, str]) -> FigureOut | None:
    """The loss of every step (left) and the distribution of step times (right)."""
    runs = _runs(doc)
    series = {
        b: (
            np.concatenate([np.asarray(r.get("step_losses") or [], float) for r in rs]),
            np.concatenate(
                [
                    np.asarray(
                        (r.get("step_times_s") or [])[int(r.get("warmup_steps") or 0) :], float
                    )
                    for r in rs
                ]
            ),
        )
        for b, rs in sorted(runs.items())
    }
    series = {b: v for b, v in series.items() if v[1].size}
    if not series:
        return None
    fig = _new_figure(10.5, 4.0)
    ax_loss, ax_time = fig.subplots(1, 2)
    for b, (losses, _) in series.items():
        if losses.size:
            ax_loss.plot(np.arange(1, losses.size + 1), losses, lw=0.9, color=colours[b], label=b)
    ax_loss.set_xlabel("step (folds one after the other)")
    ax_loss.set_ylabel("training loss of the step")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend(fontsize=8)
    names = list(series)
    times_ms = [series[b][1] * 1e3 for b in names]
    box = ax_time.boxplot(times_ms, showfliers=True, patch_artist=True)
    for patch, b in zip(box["boxes"], names):
        patch.set_facecolor(colours[b])
        patch.set_alpha(0.6)
    ax_time.set_xticks(np.arange(1, len(names) + 1))
    ax_time.set_xticklabels(names, rotation=30 if len(names) > 3 else 0, fontsize=8.5)
    everything = np.concatenate(times_ms)
    if everything.max() > 10 * np.median(everything):
        ax_time.set_yscale("log")
    ax_time.set_ylabel("time per training step (ms)")
    ax_time.grid(axis="y", alpha=0.3)
    return FigureOut(
        "steps",
        "Training steps",
        "Left: the loss of every step. Right: the time of every measured step (box: quartiles, "
        "whiskers 1.5 IQR, dots beyond); the first steps (compilation, warm-up) are left out.",
        fig,
        2,
    )


def _summary_table(doc: dict[str, Any]) -> str:
    head = (
        "<tr><th>backend</th><th>step p50</th><th>step p99</th><th>samples/s</th>"
        "<th>s/epoch</th><th>time to target</th><th>epochs to target</th>"
        "<th>peak RSS</th><th>train acc</th><th>val acc</th><th>test acc</th>"
        "<th>diagnosis</th></tr>"
    )
    out = [f"<table>{head}"]
    for b, info in (doc.get("backends") or {}).items():
        if info.get("status") != "ok" or not info.get("runs"):
            out.append(
                f"<tr><td>{_e(b)}</td><td class='bad' colspan='11'>failed: "
                f"{_e(info.get('error') or 'no result')}</td></tr>"
            )
            continue
        runs = info["runs"]

        def mean(key: str, runs: list[dict[str, Any]] = runs) -> float | None:
            vals = [r.get(key) for r in runs if isinstance(r.get(key), (int, float))]
            return float(np.mean(vals)) if vals else None

        def final(key: str, runs: list[dict[str, Any]] = runs) -> str:
            vals = [(r.get("final") or {}).get(key) for r in runs]
            vals = [v for v in vals if isinstance(v, (int, float))]
            return f"{np.mean(vals) * 100:.1f}%" if vals else "-"

        st = [r.get("step_time") or {} for r in runs]
        p50 = float(np.mean([s["median"] for s in st if s.get("median") is not None] or [np.nan]))
        p99 = float(np.mean([s["p99"] for s in st if s.get("p99") is not None] or [np.nan]))
        diag = "; ".join(dict.fromkeys((r.get("diagnosis") or {}).get("text", "") for r in runs))
        # time to accuracy (DAWNBench): training seconds (evaluations excluded) until the test
        # accuracy first reaches the target; "not reached" when no run did
        tta, eta, rss = (
            mean("time_to_accuracy_s"),
            mean("epochs_to_accuracy"),
            mean("peak_rss_bytes"),
        )
        target = next((r.get("target_accuracy") for r in runs if r.get("target_accuracy")), None)
        reached = sum(r.get("time_to_accuracy_s") is not None for r in runs)
        tta_s = "-" if target is None else "not reached" if tta is None else fmt_time(tta)
        if target is not None and tta is not None and reached < len(runs):
            tta_s += f" ({reached}/{len(runs)} runs)"
        eta_s = "-" if eta is None else f"{eta:.1f}"
        rss_s = "-" if rss is None else f"{rss / 2**20:.0f} MiB"
        out.append(
            f"<tr><td>{_e(b)}</td><td class='num'>{_e(fmt_time(p50))}</td>"
            f"<td class='num'>{_e(fmt_time(p99))}</td>"
            f"<td class='num'>{_e(fmt_rate(mean('samples_per_s')))}</td>"
            f"<td class='num'>{_e(fmt_time(mean('epoch_time_s')))}</td>"
            f"<td class='num'>{_e(tta_s)}</td><td class='num'>{_e(eta_s)}</td>"
            f"<td class='num'>{_e(rss_s)}</td>"
            f"<td class='num'>{final('train_accuracy')}</td>"
            f"<td class='num'>{final('val_accuracy')}</td>"
            f"<td class='num'>{final('test_accuracy')}</td><td>{_e(diag)}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def render(doc: dict[str, Any], figures: list[tuple[FigureOut, bytes]]) -> str:
    """The training report page; ``figures`` pairs each figure with its PNG."""
    cfg = doc.get("config") or {}
    train = cfg.get("train") or {}
    title = (
        f"dlbench training report: {(doc.get('model') or {}).get('name')} on {cfg.get('dataset')}"
    )
    meta = (
        f"run <code>{_e(doc.get('run_id'))}</code> &middot; created {_e(doc.get('created'))} "
        f"&middot; {_e(train.get('optimizer'))} lr {_e(train.get('lr'))} "
        f"({_e(train.get('schedule'))}), {_e(train.get('epochs'))} epochs, batch "
        f"{_e(train.get('batch_size'))}, {_e((doc.get('plan') or {}).get('folds'))} fold(s)"
    )
    body = [f"<h1>{_e(title)}</h1>", f'<p class="meta">{meta}</p>']
    warnings = doc.get("warnings") or []
    if warnings:
        items = "".join(f"<li>{_e(w)}</li>" for w in warnings)
        body.append(f'<div class="warn"><b>Warnings</b><ul>{items}</ul></div>')
    body += ["<h2>Summary</h2>", _summary_table(doc)]
    agree = doc.get("agreement") or {}
    lines = []
    for b, a in (agree.get("backends") or {}).items():
        d, acc = a.get("max_abs_loss_diff_first_steps"), a.get("test_accuracy_diff_pp")
        if d is not None and acc is not None:
            lines.append(
                f"{b} vs {agree.get('reference')}: per-step loss max |diff| {d:.2e} over the "
                f"first {agree.get('steps')} steps; final test accuracy differs by {acc:.2f} "
                "points"
            )
    if lines:
        items = "".join(f"<li>{_e(x)}</li>" for x in lines)
        body.append(f'<div class="summary"><b>Agreement</b><ul>{items}</ul></div>')
    body.append("<h2>Figures</h2>")
    for fig, png in figures:
        data = base64.b64encode(png).decode("ascii")
        body.append(
            f'<figure id="fig-{_e(fig.name)}"><h3>{_e(fig.title)}</h3>'
            f'<img alt="{_e(fig.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(fig.caption)}</figcaption></figure>"
        )
    body.append("<h2>Settings</h2>")
    items = [(k, json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in cfg.items()]
    body.append(_kv_table(items))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def write_training_report(doc: dict[str, Any], out_dir: str | Path) -> TrainingReportFiles:
    """Write ``index.html`` and one PNG per figure of a training document into ``out_dir``."""
    _require_matplotlib()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    colours = backend_colours({"backends": doc.get("backends") or {}, "cells": []})
    files = TrainingReportFiles(out_dir=out, html=out / "index.html")
    pngs = []
    for make in (learning_curves_figure, steps_figure):
        fig = make(doc, colours)
        if fig is None:
            continue
        png = png_bytes(fig)
        path = out / f"{fig.name}.png"
        path.write_bytes(png)
        files.figures[fig.name] = path
        pngs.append((fig, png))
    files.html.write_text(render(doc, pngs), encoding="utf-8")
    for fig, _ in pngs:
        fig.figure.clear()
    return files


# -- training cells of a benchmark run (``dlbench run --scenario training``) ------------------


def training_cells(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The training cells of a run document that trained (ok or INVALID)."""
    return [
        c
        for c in doc.get("cells") or []
        if c.get("scenario") == "training"
        and c.get("status") in ("ok", "invalid")
        and isinstance(c.get("training"), dict)
    ]


def _cell_label(cell: dict[str, Any], cells: list[dict[str, Any]]) -> str:
    """The backend, with the batch size, device and precision when the cells differ in them."""
    label = cell["backend"]
    if len({c["device"] for c in cells}) > 1:
        label += f"/{cell['device']}"
    if len({c["batch_size"] for c in cells}) > 1:
        label += f" bs{cell['batch_size']}"
    if len({c.get("precision") or "float32" for c in cells}) > 1:
        label += f" {cell.get('precision') or 'float32'}"
    return label


def as_training_document(doc: dict[str, Any]) -> dict[str, Any] | None:
    """A run document's training cells in the shape of a ``dlbench train`` document (one run
    per cell), so its figures are drawn by the same code; None without training cells."""
    cells = training_cells(doc)
    if not cells:
        return None
    backends: dict[str, Any] = {}
    for c in cells:
        backends.setdefault(_cell_label(c, cells), {"status": "ok", "runs": []})["runs"].append(
            c["training"]
        )
    return {"backends": backends}


def run_training_figures(doc: dict[str, Any], colours: dict[str, str]) -> list[FigureOut]:
    """The learning curves and the step figure of a run's training cells (each label in its
    backend's colour)."""
    from dlbench.report.figures import backend_colour

    tdoc = as_training_document(doc)
    if tdoc is None:
        return []
    by_label = {
        label: colours.get(label.split("/")[0].split(" ")[0]) or backend_colour(label)
        for label in tdoc["backends"]
    }
    out = []
    for make in (learning_curves_figure, steps_figure):
        fig = make(tdoc, by_label)
        if fig is not None:
            fig.name = f"training_{fig.name}"
            out.append(fig)
    return out


def agreement_lines(doc: dict[str, Any]) -> list[str]:
    """One sentence per compared group of training cells: each backend's largest step-loss
    difference from the reference over the first steps, and whether it is within tolerance."""
    summary = doc.get("training") or {}
    out = []
    for g in summary.get("groups") or []:
        parts = []
        for b, a in (g.get("backends") or {}).items():
            d = a.get("max_abs_loss_diff")
            verdict = "ok" if a.get("ok") else "DISAGREES"
            parts.append(f"{b} {d:.1e} {verdict}" if d is not None else f"{b} {a.get('reason')}")
        if not parts:
            continue
        where = f"{g['device']}, batch {g['batch_size']}, {g['precision']}"
        n = max((a.get("steps") or 0 for a in g["backends"].values()), default=0)
        out.append(
            f"Training step-loss agreement ({where}; max |diff| from {g['reference']} over the "
            f"first {n or summary.get('steps')} steps, tolerance {g['tolerance']:g}): "
            + ", ".join(parts)
            + "."
        )
    return out


def run_training_section(doc: dict[str, Any]) -> str:
    """The HTML section of a run's training cells: one row per cell (step time, samples/s,
    first step, losses, accuracies, time to target, agreement), and the agreement sentences."""
    cells = training_cells(doc)
    skipped = [
        c for c in doc.get("cells") or [] if c.get("scenario") == "training" and c not in cells
    ]
    if not cells and not skipped:
        return ""
    head = (
        "<tr><th>cell</th><th>steps</th><th>step p50</th><th>step p90</th><th>samples/s</th>"
        "<th>first step</th><th>first loss</th><th>final loss</th><th>train acc</th>"
        "<th>val acc</th><th>test acc</th><th>time to target</th><th>loss agreement</th></tr>"
    )
    out = [
        "<h2>Training</h2>",
        '<p class="meta">Each training cell trained the same model from the same initial weights '
        "on the same batches (the plan's fingerprint is checked). Step times leave out the "
        "warm-up steps; the first (compiling) step is shown apart; evaluations are outside every "
        "time. Agreement: each backend's per-step losses against the reference backend's.</p>",
        f"<table>{head}",
    ]

    def pct(v: Any) -> str:
        return f"{v * 100:.1f}%" if isinstance(v, (int, float)) else "-"

    for c in cells:
        t, timing = c["training"], c.get("timing") or {}
        stats = timing.get("stats") or {}
        losses = [x for x in t.get("step_losses") or [] if x is not None]
        final = t.get("final") or {}
        target = t.get("target_accuracy")
        tta = t.get("time_to_accuracy_s")
        tta_s = "-" if target is None else "not reached" if tta is None else fmt_time(tta)
        a = t.get("agreement") or {}
        if a.get("is_reference"):
            agree, cls = "reference", "muted"
        elif a:
            d = a.get("max_abs_loss_diff")
            agree = (f"{d:.1e} " if d is not None else "") + (
                "ok" if a.get("ok") else f"DISAGREES: {a.get('reason')}"
            )
            cls = "ok" if a.get("ok") else "bad"
        else:
            agree, cls = "not compared", "muted"
        row_cls = " class='invalid'" if c.get("status") == "invalid" else ""
        out.append(
            f"<tr{row_cls}><td>{_e(c['id'])}</td><td class='num'>{_e(t.get('steps'))}</td>"
            f"<td class='num'>{_e(fmt_time(stats.get('median')))}</td>"
            f"<td class='num'>{_e(fmt_time(stats.get('p90')))}</td>"
            f"<td class='num'>{_e(fmt_rate(timing.get('throughput')))}</td>"
            f"<td class='num'>{_e(fmt_time(t.get('first_step_s')))}</td>"
            f"<td class='num'>{_e(f'{losses[0]:.4g}' if losses else '-')}</td>"
            f"<td class='num'>{_e(f'{losses[-1]:.4g}' if losses else '-')}</td>"
            f"<td class='num'>{pct(final.get('train_accuracy'))}</td>"
            f"<td class='num'>{pct(final.get('val_accuracy'))}</td>"
            f"<td class='num'>{pct(final.get('test_accuracy'))}</td>"
            f"<td class='num'>{_e(tta_s)}</td><td class='{cls}'>{_e(agree)}</td></tr>"
        )
    for c in skipped:
        why = c.get("skip_reason") or c.get("error") or c.get("status")
        out.append(
            f"<tr><td>{_e(c['id'])}</td><td class='muted' colspan='12'>"
            f"{_e(c.get('status'))}: {_e(why)}</td></tr>"
        )
    out.append("</table>")
    lines = agreement_lines(doc)
    if lines:
        out.append("<ul>" + "".join(f"<li>{_e(s)}</li>" for s in lines) + "</ul>")
    return "".join(out)
