"""The speed / size / accuracy trade-off of each precision, against the float32 row of the same
backend: "int8 on onnxruntime: 2.1x faster, 3.9x smaller, -0.3 points".

Each reduced-precision row (``onnxruntime@int8``) is compared with its own backend's float32 row
on the same device, never with another backend's: the ratio says what the precision buys on
that runtime. Latency is the median of the latency scenario (else time per sample at the best
throughput); size is the model's weight bytes (``weight_bytes``: int8 weights are 1 byte); the
accuracy delta is in points of the accuracy scenario. A ratio whose two figures are INVALID or
missing is left out (``None``) and says so.

:func:`precision_figure` draws accuracy against latency over every backend x precision, marker
area proportional to the size, with the Pareto front (no other point is both faster and more
accurate). Framework-free; matplotlib only for the figure.

Example:
    >>> rows = [
    ...     {"backend": "ort", "device": "cpu", "precision": "float32", "latency_median": 2e-3,
    ...      "weight_bytes": 400, "accuracy": 0.970},
    ...     {"backend": "ort@int8", "device": "cpu", "precision": "int8", "latency_median": 1e-3,
    ...      "weight_bytes": 100, "accuracy": 0.967},
    ... ]
    >>> trade_off_sentences(trade_offs(rows))
    ['int8 on ort: 2.00x faster, 4.00x smaller, -0.30 points']
"""

from __future__ import annotations

from typing import Any

from dlbench.execution.precision import BASELINE, PRECISIONS, split_row
from dlbench.report.table import fmt_bytes, fmt_time, summary_rows


def precision_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary rows (:func:`dlbench.report.table.summary_rows`) with ``weight_bytes``,
    ``model_bytes`` (the serialised model, where the backend reports it) and ``base`` (the
    backend without its precision) added."""
    rows = summary_rows(doc)
    for r in rows:
        info = ((doc.get("backends") or {}).get(r["backend"]) or {}).get(r["device"]) or {}
        r["weight_bytes"] = info.get("weight_bytes")
        r["model_bytes"] = (info.get("settings") or {}).get("model_bytes")
        r["base"], r["precision"] = split_row(r["backend"])
    return rows


def _time_per_sample(row: dict[str, Any]) -> float | None:
    if row.get("latency_median") is not None and not row.get("latency_median_invalid"):
        return float(row["latency_median"])
    if row.get("throughput") and not row.get("throughput_invalid"):
        return 1.0 / float(row["throughput"])
    return None


def trade_offs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per reduced-precision row that ran: ``backend`` (the base backend),
    ``device``, ``precision``, ``speedup`` (float32 time / its time), ``size_ratio`` (float32
    bytes / its bytes), ``accuracy_delta_points``, ``latency``, ``weight_bytes``, ``accuracy``,
    and ``missing`` (why a figure is None)."""
    base = {
        (r.get("base") or split_row(r["backend"])[0], r["device"]): r
        for r in rows
        if (r.get("precision") or BASELINE) == BASELINE
    }
    out = []
    for r in rows:
        precision = r.get("precision") or split_row(r["backend"])[1]
        if precision == BASELINE or r.get("skipped") and _time_per_sample(r) is None:
            continue
        name = r.get("base") or split_row(r["backend"])[0]
        ref = base.get((name, r["device"]))
        rec: dict[str, Any] = {
            "backend": name,
            "device": r["device"],
            "precision": precision,
            "latency": _time_per_sample(r),
            "weight_bytes": r.get("weight_bytes"),
            "accuracy": r.get("accuracy") if not r.get("accuracy_invalid") else None,
            "speedup": None,
            "size_ratio": None,
            "accuracy_delta_points": None,
            "missing": [],
        }
        if ref is None:
            rec["missing"].append(f"no {BASELINE} row of {name} on {r['device']}")
            out.append(rec)
            continue
        t0, t1 = _time_per_sample(ref), rec["latency"]
        if t0 and t1:
            rec["speedup"] = t0 / t1
        else:
            rec["missing"].append("latency")
        b0, b1 = ref.get("weight_bytes"), rec["weight_bytes"]
        if b0 and b1:
            rec["size_ratio"] = b0 / b1
        else:
            rec["missing"].append("size")
        a0 = ref.get("accuracy") if not ref.get("accuracy_invalid") else None
        if a0 is not None and rec["accuracy"] is not None:
            rec["accuracy_delta_points"] = (rec["accuracy"] - a0) * 100.0
        else:
            rec["missing"].append("accuracy")
        out.append(rec)
    order = {p: i for i, p in enumerate(PRECISIONS)}
    return sorted(out, key=lambda t: (t["backend"], t["device"], order.get(t["precision"], 99)))


def trade_off_sentence(t: dict[str, Any]) -> str:
    """``"int8 on onnxruntime: 2.10x faster, 3.90x smaller, -0.30 points"``."""
    parts = []
    s = t.get("speedup")
    if s is not None:
        parts.append(f"{s:.2f}x faster" if s >= 1 else f"{1 / s:.2f}x slower")
    if t.get("size_ratio") is not None:
        r = t["size_ratio"]
        parts.append(f"{r:.2f}x smaller" if r >= 1 else f"{1 / r:.2f}x larger")
    d = t.get("accuracy_delta_points")
    if d is not None:
        parts.append(f"{d:+.2f} points")
    where = "" if t["device"] == "cpu" else f" ({t['device']})"
    text = ", ".join(parts) if parts else "no figure to compare"
    if t.get("missing") and parts:
        text += f" (no {', '.join(t['missing'])} figure)"
    return f"{t['precision']} on {t['backend']}{where}: {text}"


def trade_off_sentences(records: list[dict[str, Any]]) -> list[str]:
    return [trade_off_sentence(t) for t in records]


def precision_summary(doc: dict[str, Any]) -> dict[str, Any]:
    """For the result document: the trade-offs and their sentences, and the cells skipped
    because a backend cannot run a precision (with the reason)."""
    records = trade_offs(precision_rows(doc))
    skipped = sorted(
        {
            (c["backend"], c.get("precision") or BASELINE, c.get("skip_reason") or "")
            for c in doc.get("cells") or []
            if c.get("status") == "skipped"
        }
    )
    return {
        "trade_offs": records,
        "sentences": trade_off_sentences(records),
        "skipped": [{"backend": b, "precision": p, "reason": why} for b, p, why in skipped],
    }


def markdown_table(doc: dict[str, Any]) -> str:
    """A Markdown table, one line per backend x precision (float32 first): latency, size,
    peak resident memory of its worker, accuracy and, for the reduced precisions, the ratios to float32; skipped rows say why."""
    rows = precision_rows(doc)
    records = {(t["backend"], t["device"], t["precision"]): t for t in trade_offs(rows)}
    order = {p: i for i, p in enumerate(PRECISIONS)}
    rows.sort(key=lambda r: (r["base"], r["device"], order.get(r["precision"], 99)))
    devices = {r["device"] for r in rows}
    lines = [
        "| backend | precision | latency p50 | weights | peak RSS | accuracy | vs float32 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        who = r["base"] if len(devices) <= 1 else f"{r['base']}/{r['device']}"
        if r.get("skipped") and _time_per_sample(r) is None and r.get("accuracy") is None:
            lines.append(
                f"| {who} | {r['precision']} | - | - | - | - | skipped: {r.get('skip_reason')} |"
            )
            continue
        t = _time_per_sample(r)
        acc = r.get("accuracy")
        rec = records.get((r["base"], r["device"], r["precision"]))
        vs = "baseline" if r["precision"] == BASELINE else ""
        if rec is not None:
            vs = trade_off_sentence(rec).split(": ", 1)[1]
        lines.append(
            f"| {who} | {r['precision']} | {fmt_time(t) if t else '-'} | "
            f"{fmt_bytes(r.get('weight_bytes')) if r.get('weight_bytes') else '-'} | "
            f"{fmt_bytes(r.get('peak_rss_bytes')) if r.get('peak_rss_bytes') else '-'} | "
            f"{f'{acc * 100:.2f}%' if acc is not None else '-'} | {vs} |"
        )
    return "\n".join(lines)


MARKERS = {"float32": "o", "bfloat16": "s", "float16": "D", "int8": "^"}


def precision_figure(doc: dict[str, Any]) -> Any:
    """Accuracy against latency over every backend x precision: colour per backend, marker per
    precision, marker area proportional to the weight bytes, the Pareto front dashed. None when
    no row has both figures."""
    from dlbench.report.figures import (
        FigureOut,
        _new_figure,
        _require_matplotlib,
        backend_colour,
        pareto_front,
    )

    _require_matplotlib()
    rows = [
        r
        for r in precision_rows(doc)
        if _time_per_sample(r) is not None
        and r.get("accuracy") is not None
        and not r.get("accuracy_invalid")
    ]
    if not rows:
        return None
    xy = [(_time_per_sample(r) * 1e3, r["accuracy"] * 100) for r in rows]
    front = set(pareto_front(xy))
    biggest = max((r.get("weight_bytes") or 1) for r in rows)
    fig = _new_figure(7.2, 4.6)
    ax = fig.subplots()
    for i, ((x, y), r) in enumerate(zip(xy, rows)):
        size = 40 + 260 * (r.get("weight_bytes") or biggest) / biggest
        ax.scatter(
            [x],
            [y],
            s=size,
            marker=MARKERS.get(r["precision"], "o"),
            color=backend_colour(r["base"]),
            edgecolor="black" if i in front else "none",
            linewidth=1.2,
            alpha=0.85,
            zorder=3,
        )
        ax.annotate(r["backend"], (x, y), xytext=(6, 5), textcoords="offset points", fontsize=7.5)
    pts = sorted((xy[i] for i in front), key=lambda p: p[0])
    if len(pts) > 1:
        ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", color="#333", lw=1, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("latency p50 per sample (ms, log) - lower is better")
    ax.set_ylabel("accuracy (%) - higher is better")
    ax.set_title(
        "Accuracy vs latency vs size (marker: precision; area: weights; outlined: Pareto front)",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    handles = [
        ax.scatter([], [], marker=m, color="#777", label=p)
        for p, m in MARKERS.items()
        if any(r["precision"] == p for r in rows)
    ]
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    return FigureOut(
        "precision",
        "Accuracy vs latency vs size per precision",
        "Every backend at every precision it ran: accuracy against median single-sample "
        "latency, marker area proportional to the weight bytes. Outlined points are on the "
        "Pareto front (no other point is both faster and more accurate).",
        fig,
        1,
    )


__all__ = [
    "markdown_table",
    "precision_figure",
    "precision_rows",
    "precision_summary",
    "trade_off_sentence",
    "trade_off_sentences",
    "trade_offs",
]
