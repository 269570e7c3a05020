"""Markdown and CSV exports of the summary table and of every cell."""

from __future__ import annotations

import csv
import io
from typing import Any

from dlbench.report.table import (
    UNTRAINED,
    best_worst,
    cell_fields,
    cell_rows,
    fairness_statement,
    figure_text,
    invalid_notes,
    parity_text,
    summary_rows,
    untrained,
    visible_columns,
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
#: Extra summary columns when some backend has an energy figure (issue 19).
ENERGY_SUMMARY_FIELDS = (
    "energy_j_per_sample",
    "energy_batch_size",
    "energy_net",
    "power_w",
    "usd_per_million_samples",
    "co2_g_per_million_samples",
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
                "energy_j_per_sample": r.get("energy_per_sample"),
                "energy_batch_size": r.get("energy_bs"),
                "energy_net": r.get("energy_net"),
                "power_w": r.get("power_watts"),
                "usd_per_million_samples": r.get("cost_per_million"),
                "co2_g_per_million_samples": r.get("co2_per_million"),
            }
        )
    return out


def summary_fields(records: list[dict[str, Any]]) -> tuple[str, ...]:
    """:data:`SUMMARY_FIELDS`, plus the energy fields when some record has one."""
    if any(rec.get(k) is not None for rec in records for k in ENERGY_SUMMARY_FIELDS):
        return SUMMARY_FIELDS + ENERGY_SUMMARY_FIELDS
    return SUMMARY_FIELDS


def _csv(records: list[dict[str, Any]], fields: tuple[str, ...]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    for rec in records:
        writer.writerow({k: "" if rec.get(k) is None else rec[k] for k in fields})
    return buf.getvalue()


def summary_csv(doc: dict[str, Any]) -> str:
    """The summary table as CSV (one row per backend and device, SI units)."""
    records = summary_records(doc)
    return _csv(records, summary_fields(records))


def cells_csv(doc: dict[str, Any]) -> str:
    """Every cell as CSV (see :data:`dlbench.report.table.CELL_FIELDS`)."""
    return _csv(cell_rows(doc), cell_fields(doc))


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def summary_markdown(doc: dict[str, Any]) -> str:
    """The summary table as a GitHub-flavoured Markdown table; the best value of each column is
    in bold. Units are in the cells (``µs``, ``ms``, ``/s``, ``MiB``)."""
    rows = summary_rows(doc)
    columns = visible_columns(rows)
    header = ["backend", "device"] + [c.label for c in columns] + ["parity"]
    align = [":--", ":--"] + ["--:"] * len(columns) + [":--"]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    best = {c.key: best_worst(rows, c)[0] for c in columns}
    for r in rows:
        cells = [r["backend"], r["device"]]
        for c in columns:
            text = figure_text(r, c)  # value, ± 95% interval, ~ noisy, INVALID, untrained
            if c.key == "throughput" and r.get("throughput_bs"):
                v = c.fmt(r.get(c.key))
                text = text.replace(v, f"{v} (bs {r['throughput_bs']})", 1)
            if c.key == "energy_per_sample" and r.get("energy_bs"):
                text += f" (bs {r['energy_bs']})"
            if best[c.key] is not None and r.get(c.key) == best[c.key]:
                text = f"**{text}**"
            cells.append(text)
        cells.append(parity_text(r.get("parity")))
        if r.get("failed"):
            cells[0] += f" (failed: {', '.join(r['failed'])})"
        lines.append("| " + " | ".join(_md_escape(str(c)) for c in cells) + " |")
    notes = [
        "±: half-width of the 95% interval; ~: noisy (IQR above 10% of the median); INVALID: "
        "failed its validity rule, never best (the reasons follow)."
    ]
    if untrained(doc):
        notes.insert(0, f"Weights: {UNTRAINED}: accuracy is a timing-only figure.")
    notes += invalid_notes(rows)
    notes += fairness_statement(doc)
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {_md_escape(n)}" for n in notes) + "\n"
