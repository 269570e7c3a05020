"""The numbers every view shares: one summary row per backend and device, one row per cell.

Framework-free and matplotlib-free: the terminal table (:mod:`dlbench.cli.console`), the HTML report
and the Markdown/CSV exports all read these rows, so they always agree. Each :class:`Column`
says whether lower or higher is better, which is how best and worst are picked and coloured.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dlbench.execution.precision import PRECISIONS, cell_precision, row_name, split_row


def fmt_time(seconds: float | None) -> str:
    """A duration with a sensible unit: ``812 µs``, ``3.41 ms``, ``1.20 s``."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def fmt_bytes(n: float | None) -> str:
    """A size in binary units: ``512 B``, ``12.0 KiB``, ``410.3 MiB``."""
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def fmt_rate(per_s: float | None) -> str:
    """Samples per second: ``12,345/s``, ``1.23M/s``."""
    if per_s is None or not math.isfinite(per_s):
        return "-"
    if per_s >= 1e6:
        return f"{per_s / 1e6:.3g}M/s"
    return f"{per_s:,.0f}/s" if per_s >= 100 else f"{per_s:.3g}/s"


def fmt_pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def fmt_energy(joules: float | None) -> str:
    """Energy with a sensible unit: ``812 µJ``, ``3.41 mJ``, ``1.20 J``, ``4.5 kJ``."""
    if joules is None or not math.isfinite(joules):
        return "-"
    a = abs(joules)
    if a < 1e-3:
        return f"{joules * 1e6:.3g} µJ"
    if a < 1:
        return f"{joules * 1e3:.3g} mJ"
    if a < 1e3:
        return f"{joules:.3g} J"
    return f"{joules / 1e3:.3g} kJ"


def fmt_watts(watts: float | None) -> str:
    """Average power: ``12.3 W``, ``850 mW``."""
    if watts is None or not math.isfinite(watts):
        return "-"
    return f"{watts * 1e3:.3g} mW" if abs(watts) < 1 else f"{watts:.3g} W"


def fmt_usd(usd: float | None) -> str:
    """A cost in US dollars: ``$0.0123``, ``$4.56``, ``$1,234``."""
    if usd is None or not math.isfinite(usd):
        return "-"
    return f"${usd:,.0f}" if usd >= 1000 else f"${usd:.3g}"


def fmt_co2(grams: float | None) -> str:
    """Mass of CO2: ``12.3 mg``, ``4.56 g``, ``1.2 kg``."""
    if grams is None or not math.isfinite(grams):
        return "-"
    if abs(grams) < 1:
        return f"{grams * 1e3:.3g} mg"
    return f"{grams:.3g} g" if abs(grams) < 1000 else f"{grams / 1e3:.3g} kg"


@dataclass(frozen=True)
class Column:
    """A numeric column of the summary table."""

    key: str
    label: str
    unit: str
    better: str  # "lower" or "higher"
    fmt: Callable[[float | None], str]
    #: Short name used in the winner sentence ("lowest latency p50").
    metric: str
    #: Header in narrow terminals.
    short: str = ""


COLUMNS: tuple[Column, ...] = (
    Column(
        "latency_median", "latency p50", "time/sample", "lower", fmt_time, "latency (p50)", "p50"
    ),
    Column(
        "latency_p99", "latency p99", "time/sample", "lower", fmt_time, "tail latency (p99)", "p99"
    ),
    Column("throughput", "throughput", "samples/s", "higher", fmt_rate, "throughput", "samples/s"),
    Column("peak_rss_bytes", "peak RSS", "bytes", "lower", fmt_bytes, "memory (peak RSS)", "RSS"),
    Column("accuracy", "accuracy", "%", "higher", fmt_pct, "accuracy", "acc"),
    Column("build_time_s", "build", "s", "lower", fmt_time, "build time", "build"),
)

#: Energy and cost columns: shown only when some cell of the document carries an ``energy``
#: record with that figure (issue 19), so tables of runs without energy do not change.
ENERGY_COLUMNS: tuple[Column, ...] = (
    Column(
        "energy_per_sample",
        "energy",
        "J/sample",
        "lower",
        fmt_energy,
        "energy per sample",
        "J/smp",
    ),
    Column("power_watts", "power", "W", "lower", fmt_watts, "average power", "W"),
    Column(
        "cost_per_million",
        "cost",
        "USD/1M samples",
        "lower",
        fmt_usd,
        "cost per million samples",
        "$/1M",
    ),
    Column(
        "co2_per_million",
        "CO2",
        "g/1M samples",
        "lower",
        fmt_co2,
        "CO2 per million samples",
        "gCO2/1M",
    ),
)


def fmt_ap(x: float | None) -> str:
    """A COCO AP/AR in [0, 1] to four places (``-1``: undefined, as pycocotools says)."""
    if x is None or not math.isfinite(x):
        return "-"
    return "undefined" if x < 0 else f"{x:.4f}"


#: A detector's columns (issue 12): COCO AP and AP50 of its accuracy cell, the median time per
#: image of each stage (decode + letterbox, model, post-processing, end to end) and the
#: end-to-end images per second; shown only when some row has them.
DETECTION_COLUMNS: tuple[Column, ...] = (
    Column("AP", "AP", "COCO AP@[.5:.95]", "higher", fmt_ap, "AP", "AP"),
    Column("AP50", "AP50", "COCO AP@.5", "higher", fmt_ap, "AP50", "AP50"),
    Column("pre_median", "pre-process p50", "time/image", "lower", fmt_time, "pre-process", "pre"),
    Column("model_median", "model p50", "time/image", "lower", fmt_time, "model time", "model"),
    Column(
        "post_median", "post-process p50", "time/image", "lower", fmt_time, "post-process", "post"
    ),
    Column("e2e_median", "end to end p50", "time/image", "lower", fmt_time, "end to end", "e2e"),
    Column(
        "pipeline_throughput",
        "pipeline",
        "images/s",
        "higher",
        fmt_rate,
        "end-to-end throughput",
        "img/s",
    ),
)


def fmt_loss(x: float | None) -> str:
    """A training loss to four significant digits."""
    return "-" if x is None or not math.isfinite(x) else f"{x:.4g}"


#: A training run's columns (``--scenario training``): the step time (p50, p90) and samples/s
#: of its training cell, the loss of its last step and the time to the target accuracy; shown
#: only when some row has them.
TRAINING_COLUMNS: tuple[Column, ...] = (
    Column(
        "train_step_median",
        "train step p50",
        "time/step",
        "lower",
        fmt_time,
        "step time (p50)",
        "step p50",
    ),
    Column(
        "train_step_p90",
        "train step p90",
        "time/step",
        "lower",
        fmt_time,
        "step time (p90)",
        "step p90",
    ),
    Column(
        "train_throughput",
        "train samples/s",
        "samples/s",
        "higher",
        fmt_rate,
        "training throughput",
        "train/s",
    ),
    Column("train_final_loss", "final loss", "loss", "lower", fmt_loss, "final loss", "loss"),
    Column("train_tta", "time to target", "s", "lower", fmt_time, "time to target accuracy", "tta"),
)
#: Training columns that name no winner (a final loss is a check of agreement, not a race; a
#: p90 repeats the p50's verdict).
NO_WINNER_KEYS = ("train_final_loss", "train_step_p90")


def visible_columns(rows: list[dict[str, Any]]) -> tuple[Column, ...]:
    """:data:`COLUMNS`, plus each server, energy, detection and training column that has a
    value in some row."""
    extra = tuple(
        c
        for c in (*SERVER_COLUMNS, *ENERGY_COLUMNS, *DETECTION_COLUMNS, *TRAINING_COLUMNS)
        if any(r.get(c.key) is not None for r in rows)
    )
    return COLUMNS + extra


def _energy_figures(energy: dict[str, Any]) -> dict[str, Any]:
    """The numbers of one cell's ``energy`` record (``None`` where absent)."""
    cost, co2 = energy.get("cost") or {}, energy.get("co2") or {}
    return {
        "joules_per_sample": energy.get("joules_per_sample"),
        "watts": energy.get("watts"),
        "joules": energy.get("joules"),
        "net": energy.get("net"),
        "usd_per_million": cost.get("usd_per_million_samples"),
        "co2_g_per_million": co2.get("g_per_million_samples"),
    }


def energy_reason(energy: dict[str, Any] | None) -> str | None:
    """Why a cell's energy record has no energy per sample (``None`` when it has one)."""
    if not energy or energy.get("joules_per_sample") is not None:
        return None
    return energy.get("reason") or "energy not measured"


def energy_notes(doc: dict[str, Any]) -> list[str]:
    """One line per distinct reason why cells lack energy, naming how many cells it covers."""
    reasons: dict[str, list[str]] = {}
    timed = [c for c in doc.get("cells") or [] if c.get("scenario") in ENERGY_SCENARIOS]
    for cell in timed:
        if cell.get("status") == "failed":
            continue
        why = energy_reason(cell.get("energy"))
        if why:
            reasons.setdefault(why, []).append(cell["id"])
    n_energy = sum(1 for c in timed if c.get("energy"))
    out = []
    for why, ids in reasons.items():
        who = "any timed cell" if len(ids) == n_energy else f"{len(ids)} timed cell(s)"
        out.append(f"No energy figure for {who}: {why}")
    return out


#: Scenarios whose measured loop energy is read around (the others record why it is not).
ENERGY_SCENARIOS = ("latency", "throughput")


def _update_energy(row: dict[str, Any], cell: dict[str, Any]) -> None:
    energy = cell.get("energy")
    if not isinstance(energy, dict):
        return
    f = _energy_figures(energy)
    jps = f["joules_per_sample"]
    if jps is not None and (row.get("energy_per_sample") is None or jps < row["energy_per_sample"]):
        row["energy_per_sample"] = jps
        row["power_watts"] = f["watts"]
        row["energy_bs"] = cell["batch_size"]
        row["energy_scenario"] = cell["scenario"]
        row["energy_net"] = f["net"]
    for key, fig in (
        ("cost_per_million", "usd_per_million"),
        ("co2_per_million", "co2_g_per_million"),
    ):
        v = f[fig]
        if v is not None and (row.get(key) is None or v < row[key]):
            row[key] = v


def summary_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per backend and device, from the cells of a result document.

    Keys: ``backend, device, label, status, error, parity, build_time_s, failed, invalid,
    latency_median, latency_p90, latency_p99, latency_ci, latency_noisy, throughput,
    throughput_bs, peak_rss_bytes, accuracy``; with energy records also ``energy_per_sample``
    (the lowest over the backend's cells), ``power_watts``, ``energy_bs``, ``energy_scenario``,
    ``energy_net`` (of that cell), ``cost_per_million``, ``co2_per_million`` (lowest).
    Missing values are absent or ``None``.
    """
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for backend, per_device in (doc.get("backends") or {}).items():
        for device, info in per_device.items():
            rows[(backend, device)] = {
                "backend": backend,
                "device": device,
                "parity": info.get("parity"),
                "build_time_s": info.get("build_time_s"),
                "status": info.get("status"),
                "error": info.get("error"),
            }
    for cell in doc.get("cells") or []:
        name = row_name(cell["backend"], cell_precision(cell))  # onnxruntime@int8: its own row
        row = rows.setdefault(
            (name, cell["device"]),
            {"backend": name, "device": cell["device"]},
        )
        if cell.get("status") == "skipped":  # its backend cannot do its precision here
            row.setdefault("skipped", []).append(cell["scenario"])
            row["skip_reason"] = cell.get("skip_reason")
            continue
        if cell.get("status") == "failed":
            row.setdefault("failed", []).append(cell["scenario"])
            continue
        invalid = cell.get("status") == "invalid"
        if invalid:
            row.setdefault("invalid", []).append(cell["scenario"])
        _update_energy(row, cell)
        timing = cell.get("timing") or {}
        stats = timing.get("stats") or {}
        mem = (cell.get("memory") or {}).get("peak_rss_bytes")
        if mem is not None:
            row["peak_rss_bytes"] = max(row.get("peak_rss_bytes") or 0, mem)
        why = invalid_reason(cell) if invalid else None
        if cell["scenario"] == "latency" and stats:
            row["latency_median"] = stats.get("median")
            row["latency_p90"] = stats.get("p90")
            row["latency_p99"] = stats.get("p99")
            row["latency_ci"] = (stats.get("ci95_low"), stats.get("ci95_high"))
            row["latency_p99_ci"] = _p99_ci(timing)
            row["latency_noisy"] = row["latency_p99_noisy"] = bool(stats.get("noisy"))
            row["latency_median_invalid"] = row["latency_p99_invalid"] = why
        elif cell["scenario"] == "throughput":
            tput = timing.get("throughput")
            if tput is None:
                continue
            # the best valid batch size; an INVALID one only when no batch size is valid
            held_invalid = row.get("throughput_invalid") is not None
            better = tput > (row.get("throughput") or 0)
            if (
                row.get("throughput") is None
                or (held_invalid and not invalid)
                or (better and (invalid == held_invalid))
            ):
                row["throughput"] = tput
                row["throughput_bs"] = cell["batch_size"]
                row["throughput_ci"] = throughput_ci(timing)
                row["throughput_noisy"] = bool(stats.get("noisy"))
                row["throughput_invalid"] = why
        elif cell["scenario"] == "accuracy" and "AP" in (cell.get("metrics") or {}):
            from dlbench.report.detection import update_row

            update_row(row, cell, why)
        elif cell["scenario"] == "accuracy":
            acc = (cell.get("metrics") or {}).get("accuracy")
            if acc is not None:
                row["accuracy"] = acc
                n = cell.get("evaluated_samples")
                row["accuracy_ci"] = wilson_ci(acc * n, n) if n else None
                row["accuracy_invalid"] = why
                row["accuracy_untrained"] = untrained(doc)
        elif cell["scenario"] == "server":
            _update_server(row, cell, why)
        elif cell["scenario"] == "training":
            _update_training(row, cell, why)
    _common_server_rate(list(rows.values()))
    devices = {r["device"] for r in rows.values()}
    for r in rows.values():
        r["label"] = r["backend"] if len(devices) <= 1 else f"{r['backend']}/{r['device']}"
        r["precision"] = split_row(r["backend"])[1]
    return list(rows.values())


def _update_training(row: dict[str, Any], cell: dict[str, Any], why: str | None) -> None:
    """A training cell's figures in its backend's row: of the batch size with the highest
    training throughput (a valid cell over an INVALID one)."""
    timing = cell.get("timing") or {}
    stats = timing.get("stats") or {}
    tput = timing.get("throughput")
    held = row.get("train_throughput")
    held_invalid = row.get("train_throughput_invalid") is not None
    invalid = why is not None
    if held is not None and not (
        (held_invalid and not invalid) or ((tput or 0) > held and invalid == held_invalid)
    ):
        return
    train = cell.get("training") or {}
    losses = [x for x in train.get("step_losses") or [] if x is not None]
    row.update(
        train_step_median=stats.get("median"),
        train_step_p90=stats.get("p90"),
        train_step_ci=(stats.get("ci95_low"), stats.get("ci95_high")) if stats else None,
        train_step_noisy=bool(stats.get("noisy")),
        train_throughput=tput,
        train_throughput_ci=throughput_ci(timing) if timing else None,
        train_throughput_noisy=bool(stats.get("noisy")),
        train_final_loss=losses[-1] if losses else None,
        train_tta=train.get("time_to_accuracy_s"),
        train_bs=cell["batch_size"],
        train_first_step_s=train.get("first_step_s"),
        train_agreement=train.get("agreement"),
    )
    for key in ("train_step_median", "train_step_p90", "train_throughput", "train_final_loss"):
        row[f"{key}_invalid"] = why
    row["train_tta_invalid"] = why


def best_worst(rows: list[dict[str, Any]], column: Column) -> tuple[Any, Any]:
    """The best and worst valid value of ``column`` (``None`` for both with fewer than two);
    INVALID figures are never best or worst, and a server row's offered and achieved rates (the
    load it was driven at) are neither. With rows of several precisions, only the float32 rows
    are ranked (a reduced-precision row is compared with its own backend's float32 row, by
    :mod:`dlbench.report.precision`, never with the others)."""
    if column.key in ("server_offered", "server_rate"):
        return None, None
    if len({r.get("precision") or "float32" for r in rows}) > 1:
        rows = [r for r in rows if (r.get("precision") or "float32") == "float32"]
    vals = [
        r[column.key]
        for r in rows
        if r.get(column.key) is not None and not r.get(f"{column.key}_invalid")
    ]
    if len(vals) < 2 or min(vals) == max(vals):
        return None, None
    lo, hi = min(vals), max(vals)
    return (lo, hi) if column.better == "lower" else (hi, lo)


#: Row key of each column's 95% interval (the latency p50 keeps its historical name).
CI_KEYS = {
    "latency_median": "latency_ci",
    "latency_p99": "latency_p99_ci",
    "throughput": "throughput_ci",
    "accuracy": "accuracy_ci",
    "server_p99": "server_p99_ci",
    "server_p50": "server_p50_ci",
    "train_step_median": "train_step_ci",
    "train_throughput": "train_throughput_ci",
}
#: Row key of each column's noise flag (its own cell's IQR above 10% of the median).
NOISY_KEYS = {
    "latency_median": "latency_noisy",
    "latency_p99": "latency_p99_noisy",
    "throughput": "throughput_noisy",
    "server_p99": "server_noisy",
    "server_p50": "server_noisy",
    "train_step_median": "train_step_noisy",
    "train_step_p90": "train_step_noisy",
    "train_throughput": "train_throughput_noisy",
}
#: The mark of a noisy figure and of an INVALID one, in every view.
NOISY_MARK = "~"
INVALID_MARK = "INVALID"
UNTRAINED = "untrained (random weights)"


def untrained(doc: dict[str, Any]) -> bool:
    """Whether the run's model is known to carry untrained (seeded random) weights."""
    weights = (doc.get("model") or {}).get("weights") or {}
    return weights.get("trained") is False


def invalid_reason(cell: dict[str, Any]) -> str:
    """Why an INVALID cell is invalid, in one line."""
    reasons = (cell.get("validity") or {}).get("reasons") or []
    return "; ".join(reasons) or "invalid (no reason recorded)"


def _p99_ci(timing: dict[str, Any]) -> tuple[float, float] | None:
    stats = timing.get("stats") or {}
    if stats.get("p99_ci95_low") is not None:
        return (stats["p99_ci95_low"], stats["p99_ci95_high"])
    samples = timing.get("samples_s")
    if not samples:
        return None
    import numpy as np

    from dlbench.analysis.stats import quantile_ci

    return quantile_ci(np.sort(np.asarray(samples, dtype=np.float64)), 0.99)


def throughput_ci(timing: dict[str, Any]) -> tuple[float, float] | None:
    """95% interval of a throughput figure: the measured samples/s scaled by the median's own
    interval (``throughput * median / ci_high`` to ``throughput * median / ci_low``)."""
    stats = timing.get("stats") or {}
    tput, med = timing.get("throughput"), stats.get("median")
    lo, hi = stats.get("ci95_low"), stats.get("ci95_high")
    if not tput or not med or not lo or not hi:
        return None
    return (tput * med / hi, tput * med / lo)


def wilson_ci(successes: float, n: int) -> tuple[float, float]:
    from dlbench.analysis.stats import wilson_ci as wilson

    return wilson(successes, n)


def _update_server(row: dict[str, Any], cell: dict[str, Any], why: str | None) -> None:
    server = cell.get("server") or {}
    stats = (cell.get("timing") or {}).get("stats") or {}
    row["server_rate"] = server.get("achieved_rate")
    row["server_offered"] = server.get("target_rate")
    row["server_p50"] = stats.get("median")
    row["server_p99"] = server.get("p99_latency_s") or stats.get("p99")
    row["server_p99_ci"] = _p99_ci(cell.get("timing") or {})
    row["server_p50_ci"] = (
        (stats["ci95_low"], stats["ci95_high"]) if stats.get("ci95_low") is not None else None
    )
    row["server_noisy"] = bool(stats.get("noisy"))
    row["server_p99_invalid"] = row["server_p50_invalid"] = why
    search = server.get("search") or {}
    row["server_max_rate"] = search.get("max_rate") if search else server.get("max_sustained_rate")
    row["server_max_rate_how"] = "under the p99 bound" if search else "sustained in the sweep"
    row["server_sweep"] = server.get("sweep")
    row["server_service_s"] = server.get("service_time_median_s")


def _common_server_rate(rows: list[dict[str, Any]]) -> None:
    """Put every server row at the highest offered rate of the common sweep that all of them
    sustained, so their p50/p99 measure the same load (``server_common`` says which)."""
    sweeps = [r for r in rows if r.get("server_sweep")]
    if len(sweeps) < 2:
        return
    common = set.intersection(
        *({p["offered_rate"] for p in r["server_sweep"] if p.get("ok")} for r in sweeps)
    )
    if not common:
        for r in sweeps:
            r["server_common"] = None
        return
    rate = max(common)
    for r in sweeps:
        p = next(p for p in r["server_sweep"] if p["offered_rate"] == rate)
        r["server_common"] = rate
        r["server_offered"] = rate
        r["server_rate"] = p.get("achieved_rate")
        r["server_p50"] = p.get("p50_s")
        r["server_p99"] = p.get("p99_s")
        r["server_p99_ci"] = tuple(p["p99_ci95"]) if p.get("p99_ci95") else None
        r["server_p50_ci"] = tuple(p["p50_ci95"]) if p.get("p50_ci95") else None
        r["server_noisy"] = bool(p.get("noisy"))
        r["server_p99_invalid"] = r["server_p50_invalid"] = None  # the point kept up


def figure_flags(row: dict[str, Any], key: str) -> dict[str, Any]:
    """What every view shows next to a figure: its ``ci`` (95% interval or ``None``), whether
    it is ``noisy``, why it is ``invalid`` (``None`` when valid), whether it is ``untrained``."""
    ci = row.get(CI_KEYS.get(key, ""), None)
    if ci is not None and (None in ci or not all(math.isfinite(v) for v in ci)):
        ci = None
    return {
        "ci": ci,
        "noisy": bool(row.get(NOISY_KEYS.get(key, ""), False)),
        "invalid": row.get(f"{key}_invalid"),
        "untrained": key == "accuracy" and bool(row.get("accuracy_untrained")),
    }


def interval_text(value: float | None, ci: tuple[float, float] | None) -> str:
    """The 95% interval as a relative half-width: ``±1.2%`` (``""`` when unknown)."""
    if value is None or not ci or not value:
        return ""
    half = max(abs(ci[1] - value), abs(value - ci[0])) / abs(value)
    return f"±{half * 100:.2g}%" if half < 0.1 else f"±{half * 100:.0f}%"


def figure_text(row: dict[str, Any], column: Column, *, interval: bool = True) -> str:
    """A figure as every view prints it: value, ``±`` interval, ``~`` when noisy, ``INVALID``
    when its cell is, ``(untrained)`` for an accuracy of random weights."""
    v = row.get(column.key)
    text = column.fmt(v)
    if v is None:
        return text
    f = figure_flags(row, column.key)
    if interval and f["ci"]:
        rel = interval_text(v, f["ci"])
        text += f" {rel}" if rel else ""
    if f["noisy"]:
        text += f" {NOISY_MARK}"
    if f["untrained"]:
        text += " (untrained)"
    if f["invalid"]:
        text += f" {INVALID_MARK}"
    return text


def fairness_statement(doc: dict[str, Any]) -> list[str]:
    """What every backend was held to, and what was checked: shown even without warnings."""
    cfg = doc.get("config") or {}
    model = doc.get("model") or {}
    backends = doc.get("backends") or {}
    infos = [i for per in backends.values() for i in per.values()]
    with_parity = [i for i in infos if i.get("parity") is not None]
    parity_ok = sum(1 for i in with_parity if (i.get("parity") or {}).get("ok"))
    in_force = [i for i in infos if (i.get("settings") or {}).get("intra_op_threads_in_force")]
    not_in_force = [i for i in infos if (i.get("settings") or {}).get("not_in_force")]
    rule = cfg.get("stop_rule") or {}
    rule_text = ", ".join(f"{k}={v}" for k, v in sorted(rule.items())) or "the defaults"
    held = (
        f"Held equal for every backend: the same model (fingerprint {model.get('fingerprint')}), "
        f"the same input batches, {cfg.get('intra_op_threads')} intra-op / "
        f"{cfg.get('inter_op_threads')} inter-op threads, precision {cfg.get('precision')}, "
        f"timing mode {cfg.get('timing_mode')}, the stop rule ({rule_text}), one fresh worker "
        "process per backend and device"
        + (f", memory allocator {cfg['allocator']}" if cfg.get("allocator") else "")
        + "."
    )
    checked = (
        f"Checked: outputs against the float64 NumPy reference before timing ({parity_ok} of "
        f"{len(with_parity)} backend(s) agree); threads in force reported by "
        f"{len(in_force)} of {len(infos)} backend(s)"
        + (f", {len(not_in_force)} with a setting NOT in force" if not_in_force else "")
        + "; every timed figure carries its own 95% interval and noise mark, and a winner is "
        "named only when the intervals separate."
    )
    out = [held, checked]
    machine = [
        c.get("machine") for c in doc.get("cells") or [] if isinstance(c.get("machine"), dict)
    ]
    if machine:
        loads = [
            m[w]["loadavg"][0]
            for m in machine
            for w in ("before", "after")
            if (m.get(w) or {}).get("loadavg")
        ]
        if loads:
            out.append(
                f"Machine load (1-minute average) around the cells: {min(loads):.2f} to "
                f"{max(loads):.2f} on {machine[0]['before'].get('usable_cores')} usable core(s)."
            )
    return out


def invalid_cells(doc: dict[str, Any]) -> list[str]:
    """One line per INVALID cell of the document, with its reason."""
    return [
        f"INVALID {c['id']}: {invalid_reason(c)}"
        for c in doc.get("cells") or []
        if c.get("status") == "invalid"
    ]


def invalid_notes(rows: list[dict[str, Any]]) -> list[str]:
    """One line per INVALID figure: which, and why (the reason next to the value)."""
    out = []
    for r in rows:
        for col in (*COLUMNS, *SERVER_COLUMNS, *TRAINING_COLUMNS):
            why = r.get(f"{col.key}_invalid")
            if why and r.get(col.key) is not None:
                out.append(f"INVALID {r['label']} {col.label}: {why}")
    return out


#: Columns of a server run (``--scenario server``): the rate reached and the latency under it.
SERVER_COLUMNS: tuple[Column, ...] = (
    Column(
        "server_offered", "offered rate", "queries/s", "higher", fmt_rate, "offered rate", "offered"
    ),
    Column(
        "server_rate", "achieved rate", "queries/s", "higher", fmt_rate, "achieved rate", "achieved"
    ),
    Column(
        "server_p50", "server p50", "time/query", "lower", fmt_time, "server p50 latency", "srv p50"
    ),
    Column(
        "server_p99", "server p99", "time/query", "lower", fmt_time, "server p99 latency", "srv p99"
    ),
    Column(
        "server_max_rate", "max rate", "queries/s", "higher", fmt_rate, "sustained rate", "max/s"
    ),
)

#: Relative margin a figure without an interval must win by to be named a winner.
NO_INTERVAL_MARGIN = 0.05


def winner_sentences(rows: list[dict[str, Any]]) -> list[str]:
    """A short plain-text sentence per metric naming the winner and its margin.

    A winner is named only when its 95% interval separates from every other backend's; the
    backends whose intervals overlap the best one's are a "tie within noise". Figures without
    an interval (memory, energy) need a margin of :data:`NO_INTERVAL_MARGIN`. INVALID figures
    take no part (a sentence says which were left out); an accuracy of untrained weights is a
    timing-only figure, never a result. Rows of different precisions are never ranked against
    each other: each precision gets its own sentences, prefixed ``At int8:`` (plain text: the
    console reads square brackets as markup).
    """
    from dlbench.report.detection import ap_sentences

    precisions = sorted({r.get("precision") or "float32" for r in rows}, key=_precision_order)
    if len(precisions) > 1:
        return [
            f"At {p}: {sentence}"
            for p in precisions
            for sentence in winner_sentences(
                [r for r in rows if (r.get("precision") or "float32") == p]
            )
        ]

    out = ap_sentences(rows)
    for col in visible_columns(rows):
        if col.key in ("AP", "AP50", "pre_median"):  # one sentence on AP below; same decode
            continue
        if col.key in ("build_time_s", "power_watts", "server_offered", "server_rate"):
            continue
        if col.key in NO_WINNER_KEYS:
            continue
        if col.key == "accuracy" and any(r.get("accuracy_untrained") for r in rows):
            if any(r.get("accuracy") is not None for r in rows):
                out.append(
                    f"Accuracy not compared: the model is {UNTRAINED}, so its accuracy is a "
                    "timing-only figure."
                )
            continue
        left_out = [
            r["label"] for r in rows if r.get(col.key) is not None and r.get(f"{col.key}_invalid")
        ]
        vals = [
            (r[col.key], r)
            for r in rows
            if r.get(col.key) is not None and not r.get(f"{col.key}_invalid")
        ]
        excluded = f" (INVALID, left out: {', '.join(left_out)})" if left_out else ""
        if len(vals) < 2:
            if left_out and vals:
                out.append(
                    f"No {col.metric} winner: only {vals[0][1]['label']} is valid{excluded}."
                )
            continue
        vals.sort(key=lambda v: v[0], reverse=col.better == "higher")
        (v1, r1), (v2, r2) = vals[0], vals[1]
        adjective = (
            "Best" if col.key == "accuracy" else ("Lowest" if col.better == "lower" else "Highest")
        )
        if col.key == "peak_rss_bytes" or col in ENERGY_COLUMNS:
            adjective = "Least"
        ci1 = figure_flags(r1, col.key)["ci"]
        with_ci = ci1 is not None and all(figure_flags(r, col.key)["ci"] for _, r in vals)
        if with_ci:
            from dlbench.analysis.stats import intervals_separate

            tied = [r1] + [
                r
                for _, r in vals[1:]
                if not intervals_separate(ci1, figure_flags(r, col.key)["ci"])
            ]
        elif col.key == "accuracy":
            tied = [r for v, r in vals if v == v1]
        else:
            tied = [r for v, r in vals if _ratio(v1, v, col) < 1 + NO_INTERVAL_MARGIN]
        if len(tied) == len(vals):
            if all(v == v1 for v, _ in vals):
                out.append(f"All tie on {col.metric} at {col.fmt(v1)}{excluded}.")
            else:
                how = "95% intervals overlap" if with_ci else f"within {NO_INTERVAL_MARGIN:.0%}"
                span = f"{col.fmt(vals[0][0])} to {col.fmt(vals[-1][0])}"
                out.append(f"All tie within noise on {col.metric} ({span}; {how}){excluded}.")
            continue
        if len(tied) > 1:
            names = ", ".join(f"{r['label']} ({col.fmt(r[col.key])})" for r in tied)
            how = "95% intervals overlap" if with_ci else f"within {NO_INTERVAL_MARGIN:.0%}"
            if not with_ci and all(r[col.key] == v1 for r in tied):
                out.append(
                    f"{adjective} {col.metric}: {', '.join(r['label'] for r in tied)} tie at "
                    f"{col.fmt(v1)}{excluded}."
                )
            else:
                out.append(
                    f"{adjective} {col.metric}: tie within noise between {names}; {how}{excluded}."
                )
            continue
        if col.key == "accuracy":
            out.append(
                f"{adjective} {col.metric}: {r1['label']} at {col.fmt(v1)}, "
                f"{(v1 - v2) * 100:.2f} points above {r2['label']}{excluded}."
            )
            continue
        ratio = _ratio(v1, v2, col)
        extra = f" at batch {r1['throughput_bs']}" if col.key == "throughput" else ""
        if col.key in ("train_step_median", "train_throughput"):
            extra = f" at batch {r1['train_bs']}"
        if col.key == "server_p99" and r1.get("server_common"):
            extra = f" at {fmt_rate(r1['server_common'])} offered to every backend"
        if col.key == "energy_per_sample" and r1.get("energy_bs") is not None:
            extra = f" ({r1.get('energy_scenario')}, batch {r1['energy_bs']})"
        ci_txt = ""
        if with_ci:
            ci2 = figure_flags(r2, col.key)["ci"]
            ci_txt = (
                f" (95% CI [{col.fmt(ci1[0])}, {col.fmt(ci1[1])}] vs "
                f"[{col.fmt(ci2[0])}, {col.fmt(ci2[1])}])"
            )
        out.append(
            f"{adjective} {col.metric}: {r1['label']} at {col.fmt(v1)}{extra}, "
            f"{ratio:.2f}x better than {r2['label']} ({col.fmt(v2)}){ci_txt}{excluded}."
        )
    return out


def _precision_order(precision: str) -> int:
    return PRECISIONS.index(precision) if precision in PRECISIONS else len(PRECISIONS)


def _ratio(v1: float, v2: float, col: Column) -> float:
    """How many times better ``v1`` is than ``v2`` (>= 1 when ``v1`` is the better one)."""
    if not v1 or not v2:
        return math.inf
    return v2 / v1 if col.better == "lower" else v1 / v2


def parity_text(parity: dict[str, Any] | None) -> str:
    if parity is None:  # the worker never got as far as the parity batch
        return "not checked"
    from dlbench.analysis.parity import status

    if parity.get("ok"):
        d = parity.get("max_abs_diff")
        return "ok" + (f" ({d:.1e})" if d is not None else "")
    return "not informative" if status(parity) == "not informative" else "MISMATCH"


#: Columns of the per-cell CSV export, in order.
CELL_FIELDS = (
    "id",
    "backend",
    "device",
    "scenario",
    "batch_size",
    "status",
    "n",
    "median_s",
    "p90_s",
    "p99_s",
    "mean_s",
    "iqr_s",
    "ci95_low_s",
    "ci95_high_s",
    "noisy",
    "throughput_per_s",
    "peak_rss_bytes",
    "metrics",
    "note",
)

#: Extra per-cell columns when some cell carries an ``energy`` record.
ENERGY_CELL_FIELDS = (
    "energy_j",
    "joules_per_sample",
    "energy_net",
    "watts",
    "usd_per_million_samples",
    "co2_g_per_million_samples",
    "energy_note",
)


def has_energy(doc: dict[str, Any]) -> bool:
    """Whether some cell carries an ``energy`` record."""
    return any(isinstance(c.get("energy"), dict) for c in doc.get("cells") or [])


def cell_fields(doc: dict[str, Any]) -> tuple[str, ...]:
    """:data:`CELL_FIELDS`, plus :data:`ENERGY_CELL_FIELDS` when the document has energy."""
    return CELL_FIELDS + (ENERGY_CELL_FIELDS if has_energy(doc) else ())


def cell_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per cell (see :data:`CELL_FIELDS`), numbers in SI units."""
    out = []
    for cell in doc.get("cells") or []:
        timing = cell.get("timing") or {}
        stats = timing.get("stats") or {}
        metrics = {
            k: v
            for k, v in (cell.get("metrics") or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        reasons = (cell.get("validity") or {}).get("reasons") or []
        row: dict[str, Any] = {}
        energy = cell.get("energy")
        if isinstance(energy, dict):
            f = _energy_figures(energy)
            row = {
                "energy_j": f["joules"],
                "joules_per_sample": f["joules_per_sample"],
                "energy_net": f["net"],
                "watts": f["watts"],
                "usd_per_million_samples": f["usd_per_million"],
                "co2_g_per_million_samples": f["co2_g_per_million"],
                "energy_note": energy_reason(energy) if cell.get("status") != "failed" else None,
            }
        out.append(
            {
                "id": cell["id"],
                "backend": cell["backend"],
                "device": cell["device"],
                "scenario": cell["scenario"],
                "batch_size": cell["batch_size"],
                "status": cell.get("status"),
                "n": stats.get("n"),
                "median_s": stats.get("median"),
                "p90_s": stats.get("p90"),
                "p99_s": stats.get("p99"),
                "mean_s": stats.get("mean"),
                "iqr_s": stats.get("iqr"),
                "ci95_low_s": stats.get("ci95_low"),
                "ci95_high_s": stats.get("ci95_high"),
                "noisy": stats.get("noisy"),
                "throughput_per_s": timing.get("throughput"),
                "peak_rss_bytes": (cell.get("memory") or {}).get("peak_rss_bytes"),
                "metrics": "; ".join(f"{k}={v:.6g}" for k, v in metrics.items()),
                "note": cell.get("error") or "; ".join(reasons),
            }
            | row
        )
    return out
