"""A detector's figures in every view: the 12 COCO stats per backend, the largest AP difference
between backends, and the per-image timing split (pre-process, model, post-process, end to end).

The accuracy cell of a detector (:mod:`dlbench.execution.scenarios.detection`) carries the
stats in ``metrics`` and the raw per-image samples of each stage in ``stages``; this module reads
them for the summary table (:func:`update_row`), the winner sentences (:func:`ap_sentences`), the
result document's ``detection`` section (:func:`detection_summary`), the terminal
(:func:`detection_lines`) and the HTML report (:func:`html_section`). Framework-free.

Example:
    >>> doc = {"cells": [
    ...     {"backend": "torch", "device": "cpu", "scenario": "accuracy", "status": "ok",
    ...      "metrics": {"AP": 0.61, "AP50": 0.9}},
    ...     {"backend": "jax", "device": "cpu", "scenario": "accuracy", "status": "ok",
    ...      "metrics": {"AP": 0.6103, "AP50": 0.9}}]}
    >>> s = detection_summary(doc)
    >>> round(s["max_ap_diff"], 6), s["max_ap_diff_between"]
    (0.0003, ['jax', 'torch'])
"""

from __future__ import annotations

import html
from typing import Any

STAT_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
STAGES = ("preprocess", "model", "postprocess", "end_to_end")
#: summary-row key of each stage's median
STAGE_KEYS = {
    "preprocess": "pre_median",
    "model": "model_median",
    "postprocess": "post_median",
    "end_to_end": "e2e_median",
}


def _detection_cells(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        c
        for c in doc.get("cells") or []
        if c.get("scenario") == "accuracy"
        and c.get("status") != "failed"
        and "AP" in (c.get("metrics") or {})
    ]


def _label(cell: dict[str, Any], devices: set[str]) -> str:
    return cell["backend"] if len(devices) <= 1 else f"{cell['backend']}/{cell['device']}"


def update_row(row: dict[str, Any], cell: dict[str, Any], why: str | None) -> None:
    """A summary row's detection figures from its accuracy cell (``why``: INVALID reason)."""
    m = cell.get("metrics") or {}
    row["AP"], row["AP50"] = m.get("AP"), m.get("AP50")
    row["coco"] = {k: m.get(k) for k in STAT_KEYS}
    for stage, key in STAGE_KEYS.items():
        stats = ((cell.get("stages") or {}).get(stage) or {}).get("stats") or {}
        row[key] = stats.get("median")
        row[f"{key}_invalid"] = why
        if stats:
            row[key.replace("median", "p99")] = stats.get("p99")
    row["pipeline_throughput"] = (cell.get("pipeline") or {}).get("throughput")
    row["AP_invalid"] = row["AP50_invalid"] = row["pipeline_throughput_invalid"] = why
    row["postprocess_mode"] = ((cell.get("pipeline") or {}).get("postprocess") or {}).get("mode")


def detection_summary(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The ``detection`` section of a result: per backend the 12 COCO stats, the images
    evaluated, the post-processing used and each stage's median/p90/p99 per image; the largest
    AP difference between backends and which two it is between. None without a detector cell.
    """
    cells = _detection_cells(doc)
    if not cells:
        return None
    devices = {c["device"] for c in cells}
    per: dict[str, Any] = {}
    for c in cells:
        m = c.get("metrics") or {}
        stages = {}
        for s in STAGES:
            st = ((c.get("stages") or {}).get(s) or {}).get("stats") or {}
            if st:
                stages[s] = {k: st.get(k) for k in ("median", "p90", "p99", "mean", "n")}
        per[_label(c, devices)] = {
            "stats": {k: m.get(k) for k in STAT_KEYS},
            "evaluated_images": c.get("evaluated_samples"),
            "valid": c.get("status") == "ok",
            "postprocess": ((c.get("pipeline") or {}).get("postprocess") or {}).get("mode"),
            "throughput": (c.get("pipeline") or {}).get("throughput"),
            "stages": stages,
        }
    aps = sorted(
        (v["stats"]["AP"], k)
        for k, v in per.items()
        if isinstance(v["stats"].get("AP"), (int, float))
    )
    out: dict[str, Any] = {"backends": per, "max_ap_diff": None, "max_ap_diff_between": None}
    if len(aps) >= 2:
        out["max_ap_diff"] = aps[-1][0] - aps[0][0]
        out["max_ap_diff_between"] = sorted([aps[0][1], aps[-1][1]])
    return out


def ap_sentences(rows: list[dict[str, Any]]) -> list[str]:
    """One sentence: the AP of every backend (or their common value) and the largest
    difference between two backends."""
    vals = [(r["AP"], r["label"]) for r in rows if isinstance(r.get("AP"), (int, float))]
    if not vals:
        return []
    vals.sort()
    if len(vals) == 1:
        return [f"COCO AP {vals[0][0]:.4f} ({vals[0][1]} only)."]
    diff = vals[-1][0] - vals[0][0]
    return [
        f"COCO AP from {vals[0][0]:.4f} ({vals[0][1]}) to {vals[-1][0]:.4f} ({vals[-1][1]}): "
        f"largest difference between backends {diff:.4f}."
    ]


def _fmt_stat(v: Any) -> str:
    if not isinstance(v, (int, float)):
        return "-"
    return "undef" if v < 0 else f"{v:.4f}"


def _fmt_ms(v: Any) -> str:
    return "-" if not isinstance(v, (int, float)) else f"{v * 1e3:.2f}"


def detection_lines(doc: dict[str, Any]) -> list[str]:
    """Plain-text lines for the terminal: the 12 COCO stats per backend, the largest AP
    difference, then the stage percentiles per image (milliseconds)."""
    s = doc.get("detection") or detection_summary(doc)
    if not s:
        return []
    names = list(s["backends"])
    width = max(12, *(len(n) for n in names))
    lines = ["COCO stats per backend:"]
    for keys in (STAT_KEYS[:6], STAT_KEYS[6:]):  # two blocks: fits 80 columns
        lines.append(" " * width + " " + " ".join(f"{k:>7}" for k in keys))
        for n in names:
            st = s["backends"][n]["stats"]
            lines.append(f"{n:<{width}} " + " ".join(f"{_fmt_stat(st.get(k)):>7}" for k in keys))
    if s.get("max_ap_diff") is not None:
        a, b = s["max_ap_diff_between"]
        lines.append(f"largest AP difference between backends: {s['max_ap_diff']:.4f} ({a} vs {b})")
    lines.append("time per image, ms (p50 / p90 / p99):")
    for n in names:
        b = s["backends"][n]
        parts = []
        for stage in STAGES:
            st = b["stages"].get(stage) or {}
            parts.append(
                f"{stage} {_fmt_ms(st.get('median'))}/{_fmt_ms(st.get('p90'))}/"
                f"{_fmt_ms(st.get('p99'))}"
            )
        tput = b.get("throughput")
        tail = f", {tput:.1f} images/s" if isinstance(tput, (int, float)) else ""
        lines.append(f"  {n} ({b.get('postprocess')} post-processing): " + ", ".join(parts) + tail)
    return lines


def html_section(doc: dict[str, Any]) -> str:
    """The HTML report's detection section ("" without a detector cell)."""
    s = doc.get("detection") or detection_summary(doc)
    if not s:
        return ""
    e = html.escape
    head = "".join(f"<th>{k}</th>" for k in STAT_KEYS)
    body = []
    for n, b in s["backends"].items():
        tds = "".join(f"<td>{_fmt_stat(b['stats'].get(k))}</td>" for k in STAT_KEYS)
        body.append(
            f"<tr><td>{e(n)}</td><td>{e(str(b.get('postprocess')))}</td>"
            f"<td>{e(str(b.get('evaluated_images')))}</td>{tds}</tr>"
        )
    out = [
        "<h2>Detection</h2>",
        "<table><tr><th>backend</th><th>post-process</th><th>images</th>"
        f"{head}</tr>{''.join(body)}</table>",
    ]
    if s.get("max_ap_diff") is not None:
        a, b = s["max_ap_diff_between"]
        out.append(
            f"<p>Largest AP difference between backends: <b>{s['max_ap_diff']:.4f}</b> "
            f"({e(a)} vs {e(b)}).</p>"
        )
    rows = []
    for n, b in s["backends"].items():
        tds = ""
        for stage in STAGES:
            st = b["stages"].get(stage) or {}
            tds += "".join(f"<td>{_fmt_ms(st.get(k))}</td>" for k in ("median", "p90", "p99"))
        tput = b.get("throughput")
        tds += f"<td>{tput:.1f}</td>" if isinstance(tput, (int, float)) else "<td>-</td>"
        rows.append(f"<tr><td>{e(n)}</td>{tds}</tr>")
    sub = "".join(f'<th colspan="3">{s_} (ms: p50, p90, p99)</th>' for s_ in STAGES)
    out.append(
        "<h3>Time per image by stage</h3><table>"
        f"<tr><th>backend</th>{sub}<th>images/s</th></tr>{''.join(rows)}</table>"
        '<p class="muted">pre-process: JPEG decode + letterbox; model: host NumPy in to host '
        "NumPy out; post-process: decode + top-k + NMS; one image at a time.</p>"
    )
    return "".join(out)
