"""Markdown and CSV exports of the summary table and of every cell."""

from __future__ import annotations

import csv
import io
from typing import Any

from dlbench.report.table import (
    CELL_FIELDS,
    COLUMNS,
    best_worst,
    cell_rows,
    parity_text,
    summary_rows,
)

SUMMARY_FIELDS = (
    "backend",
    "device",
    "latency_p50_s",
    "latency_p90_s",
    "latency_p99_s",
    "latency_ci95_low_s",
    "latency_ci95_high_s",
    "throughput_per_s",
    "throughput_batch_size",
    "peak_rss_bytes",
    "accuracy",
    "parity_ok",
    "parity_max_abs_diff",
    "build_time_s",
    "failed",
)


def summary_records(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary table as flat records in SI units (the CSV columns)."""
    out = []
    for r in summary_rows(doc):
        ci = r.get("latency_ci") or (None, None)
        parity = r.get("parity") or {}
        out.append(
            {
                "backend": r["backend"],
                "device": r["device"],
                "latency_p50_s": r.get("latency_median"),
                "latency_p90_s": r.get("latency_p90"),
                "latency_p99_s": r.get("latency_p99"),
                "latency_ci95_low_s": ci[0],
                "latency_ci95_high_s": ci[1],
                "throughput_per_s": r.get("throughput"),
                "throughput_batch_size": r.get("throughput_bs"),
                "peak_rss_bytes": r.get("peak_rss_bytes"),
                "accuracy": r.get("accuracy"),
                "parity_ok": parity.get("ok") if r.get("parity") is not None else None,
                "parity_max_abs_diff": parity.get("max_abs_diff"),
                "build_time_s": r.get("build_time_s"),
                "failed": ",".join(r.get("failed") or []),
            }
        )
    return out


def _csv(records: list[dict[str, Any]], fields: tuple[str, ...]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    for rec in records:
        writer.writerow({k: "" if rec.get(k) is None else rec[k] for k in fields})
    return buf.getvalue()


def summary_csv(doc: dict[str, Any]) -> str:
    """The summary table as CSV (one row per backend and device, SI units)."""
    return _csv(summary_records(doc), SUMMARY_FIELDS)


def cells_csv(doc: dict[str, Any]) -> str:
    """Every cell as CSV (see :data:`dlbench.report.table.CELL_FIELDS`)."""
    return _csv(cell_rows(doc), CELL_FIELDS)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def summary_markdown(doc: dict[str, Any]) -> str:
    """The summary table as a GitHub-flavoured Markdown table; the best value of each column is
    in bold. Units are in the cells (``µs``, ``ms``, ``/s``, ``MiB``)."""
    rows = summary_rows(doc)
    header = ["backend", "device"] + [c.label for c in COLUMNS] + ["parity"]
    align = [":--", ":--"] + ["--:"] * len(COLUMNS) + [":--"]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    best = {c.key: best_worst(rows, c)[0] for c in COLUMNS}
    for r in rows:
        cells = [r["backend"], r["device"]]
        for c in COLUMNS:
            text = c.fmt(r.get(c.key))
            if c.key == "throughput" and r.get("throughput_bs"):
                text += f" (bs {r['throughput_bs']})"
            if best[c.key] is not None and r.get(c.key) == best[c.key]:
                text = f"**{text}**"
            cells.append(text)
        cells.append(parity_text(r.get("parity")))
        if r.get("failed"):
            cells[0] += f" (failed: {', '.join(r['failed'])})"
        lines.append("| " + " | ".join(_md_escape(str(c)) for c in cells) + " |")
    return "\n".join(lines) + "\n"
