"""The report's figures, drawn with matplotlib's object-oriented API on the Agg canvas.

No ``pyplot``: figures are plain :class:`matplotlib.figure.Figure` objects, so nothing needs a
display and no global state leaks between reports. Each backend keeps one colour in every figure.

* ``latency``: distribution of the raw per-call times per backend (violin + box), one panel per
  device;
* ``throughput``: samples/s against batch size, one panel per device;
* ``pareto``: accuracy against latency, with the Pareto front (faster *and* more accurate);
* ``server``: p99 latency (queueing included) against offered load, one line per backend;
* ``memory``: peak resident memory per backend and device.

Colours are fixed per backend (:func:`backend_colour`), so two reports read alike; INVALID
cells are crossed out in red; an accuracy of untrained weights gets no Pareto chart.

A figure whose data the run does not have (no accuracy scenario, say) is left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlbench.errors import MissingFrameworkError
from dlbench.report.table import fmt_bytes, summary_rows, untrained

PALETTE = (
    "#4C72B0",
    "#DD8452",
    "#55A868",
    "#C44E52",
    "#8172B3",
    "#937860",
    "#DA8BC3",
    "#8C8C8C",
    "#CCB974",
    "#64B5CD",
)


@dataclass
class FigureOut:
    """A drawn figure: ``name`` is the PNG's stem, ``panels`` the number of axes with data."""

    name: str
    title: str
    caption: str
    figure: Any
    panels: int


def _require_matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise MissingFrameworkError(
            "Expected matplotlib for the report's figures. Received: it is not installed. "
            "Install it with: pip install 'dlbench[report]'"
        ) from None
    return matplotlib


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    return fig


def _lighter(colour: str, amount: float = 0.45) -> str:
    """``colour`` (``#rrggbb``) blended towards white by ``amount``."""
    rgb = [int(colour[k : k + 2], 16) for k in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in rgb)


def backend_colour(name: str) -> str:
    """The colour of backend ``name``, the same in every report whatever else a run holds
    (issue 22): its place among every registered backend (installed or not); a via-ONNX row
    (``source>runtime``) a lighter shade of its source's; an unknown name by a stable hash."""
    import zlib

    from dlbench.registry import VIA
    from dlbench.registry import backends as registry

    source, via, _ = name.partition(VIA)
    if via:
        return _lighter(backend_colour(source))
    try:
        known = sorted(registry.names())
    except Exception:  # a broken plugin must not stop a report
        known = []
    if name in known:
        return PALETTE[known.index(name) % len(PALETTE)]
    return PALETTE[zlib.crc32(name.encode("utf-8")) % len(PALETTE)]


def backend_colours(doc: dict[str, Any]) -> dict[str, str]:
    names = sorted({c["backend"] for c in doc.get("cells") or []} | set(doc.get("backends") or {}))
    return {name: backend_colour(name) for name in names}


def _devices(doc: dict[str, Any]) -> list[str]:
    seen: list[str] = []
    for c in doc.get("cells") or []:
        if c["device"] not in seen:
            seen.append(c["device"])
    return seen


def _timed(cell: dict[str, Any]) -> bool:
    timing = cell.get("timing") or {}
    return cell.get("status") != "failed" and bool(timing.get("samples_s"))


def latency_series(doc: dict[str, Any], device: str) -> tuple[list[dict[str, Any]], str]:
    """Per backend on ``device``: the latency cell's samples, or (no latency scenario) the
    smallest-batch throughput cell's. Returns the series and what they are."""
    cells = [c for c in doc.get("cells") or [] if c["device"] == device and _timed(c)]
    lat = [c for c in cells if c["scenario"] == "latency"]
    what = "single-sample latency (batch 1)"
    if not lat:
        tput = [c for c in cells if c["scenario"] == "throughput"]
        if not tput:
            return [], what
        bs = min(c["batch_size"] for c in tput)
        lat = [c for c in tput if c["batch_size"] == bs]
        what = f"time per call at batch {bs}"
    series = []
    for c in lat:
        stats = c["timing"].get("stats") or {}
        series.append(
            {
                "backend": c["backend"],
                "samples": np.asarray(c["timing"]["samples_s"], dtype=np.float64),
                "median": stats.get("median"),
                "noisy": bool(stats.get("noisy")),
                "invalid": c.get("status") == "invalid",
            }
        )
    return series, what


def _time_unit(values: np.ndarray) -> tuple[float, str]:
    m = float(np.median(values)) if values.size else 1.0
    if m < 1e-3:
        return 1e6, "µs"
    if m < 1:
        return 1e3, "ms"
    return 1.0, "s"


def _log_ticks(ax: Any, lo: float, hi: float) -> None:
    """Ticks 1-2-5 per decade on an axis that holds log10 values, labelled in plain numbers."""
    from matplotlib.ticker import FixedLocator, FuncFormatter

    ticks = [
        math.log10(m * 10.0**k)
        for k in range(math.floor(lo) - 1, math.ceil(hi) + 1)
        for m in (1, 2, 5)
        if lo <= math.log10(m * 10.0**k) <= hi
    ]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{10**y:g}"))


def _latency_panel(ax: Any, device: str, series: list[dict], what: str, colours: dict) -> None:
    scale, unit = _time_unit(np.concatenate([s["samples"] for s in series]))
    data = [s["samples"] * scale for s in series]
    pos = np.arange(1, len(series) + 1)
    medians = np.array([np.median(d) for d in data])
    # Real runs have rare calls 100x the median (scheduler, GC): on a linear axis they flatten
    # every violin to a line. With a heavy tail (or backends far apart) the distributions are
    # drawn in log space, where every call stays visible.
    p999 = max(float(np.percentile(d, 99.9)) for d in data)
    log = p999 / max(float(medians.min()), 1e-30) > 8
    plot = [np.log10(np.maximum(d, 1e-30)) for d in data] if log else data
    parts = ax.violinplot(plot, positions=pos, widths=0.8, showextrema=False)
    for body, s in zip(parts["bodies"], series):
        body.set_facecolor(colours[s["backend"]])
        body.set_edgecolor(colours[s["backend"]])
        body.set_alpha(0.35)
    ax.boxplot(
        plot,
        positions=pos,
        widths=0.16,
        showfliers=False,
        patch_artist=True,
        boxprops={"facecolor": "white", "edgecolor": "#333333"},
        medianprops={"color": "#111111", "linewidth": 1.6},
        whiskerprops={"color": "#333333"},
        capprops={"color": "#333333"},
    )
    if log:
        lo = min(float(p.min()) for p in plot)
        hi = max(float(p.max()) for p in plot)
        pad = (hi - lo) * 0.04
        ax.set_ylim(lo - pad, hi + pad)
        _log_ticks(ax, lo - pad, hi + pad)
    else:
        ax.set_ylim(bottom=0)
    for x, s, med in zip(pos, series, medians):
        flag = " ~noisy" if s["noisy"] else ""
        flag += " INVALID" if s["invalid"] else ""
        ax.annotate(
            f"{med:.3g} {unit}{flag}",
            (x, math.log10(med) if log else med),
            xytext=(12, 0),
            textcoords="offset points",
            ha="left",
            va="center",
            fontsize=7.5,
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8},
        )
    ax.set_xticks(pos)
    ax.set_xticklabels([f"{s['backend']}\nn={s['samples'].size}" for s in series], fontsize=8.5)
    ax.set_ylabel(f"time per call ({unit}){', log scale' if log else ''}")
    ax.set_title(f"{device}: {what}", fontsize=10)
    ax.grid(axis="y", alpha=0.3)


def latency_figure(doc: dict[str, Any], colours: dict[str, str]) -> FigureOut | None:
    panels = [(d, *latency_series(doc, d)) for d in _devices(doc)]
    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    width = max(5.0, 1.4 * max(len(p[1]) for p in panels) + 1.5) * len(panels)
    fig = _new_figure(width, 4.4)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (device, series, what) in zip(axes, panels):
        _latency_panel(ax, device, series, what, colours)
    fig.suptitle("Latency distribution per backend (raw samples)", fontsize=11)
    return FigureOut(
        "latency",
        "Latency distribution",
        "Every measured call, per backend: violin = distribution, box = quartiles (whiskers "
        "1.5 IQR), label = median. Heavy tails switch the axis to a log scale so every call "
        "stays visible. Lower is better.",
        fig,
        len(panels),
    )


def _throughput_points(doc: dict[str, Any], device: str) -> dict[str, list[tuple]]:
    by_backend: dict[str, list[tuple]] = {}
    for c in doc.get("cells") or []:
        if c["device"] != device or c["scenario"] != "throughput" or not _timed(c):
            continue
        t = c["timing"]
        tput = t.get("throughput")
        stats = t.get("stats") or {}
        if tput is None:
            continue
        med, lo, hi = stats.get("median"), stats.get("ci95_low"), stats.get("ci95_high")
        # The CI of the median per-call time, carried over to the throughput's scale.
        err_lo = tput - tput * med / hi if med and hi else 0.0
        err_hi = tput * med / lo - tput if med and lo else 0.0
        by_backend.setdefault(c["backend"], []).append(
            (
                c["batch_size"],
                tput,
                max(err_lo, 0.0),
                max(err_hi, 0.0),
                c.get("status") == "invalid",
            )
        )
    return {b: sorted(v) for b, v in by_backend.items()}


def throughput_figure(doc: dict[str, Any], colours: dict[str, str]) -> FigureOut | None:
    panels = [(d, _throughput_points(doc, d)) for d in _devices(doc)]
    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    fig = _new_figure(5.6 * len(panels), 4.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (device, series) in zip(axes, panels):
        sizes = sorted({p[0] for pts in series.values() for p in pts})
        for backend, pts in sorted(series.items()):
            bs, tput, lo, hi, bad = (np.array(v, dtype=float) for v in zip(*pts))
            ax.errorbar(
                bs,
                tput,
                yerr=[lo, hi],
                marker="o",
                ms=5,
                capsize=3,
                label=backend,
                color=colours[backend],
            )
            bad = bad.astype(bool)
            if bad.any():  # INVALID cells: crossed out and labelled, never a normal point
                ax.scatter(bs[bad], tput[bad], marker="x", s=90, color="#C00000", zorder=4)
                for x, y in zip(bs[bad], tput[bad]):
                    ax.annotate(
                        "INVALID",
                        (x, y),
                        xytext=(4, -12),
                        textcoords="offset points",
                        fontsize=7.5,
                        color="#C00000",
                    )
        if len(sizes) > 1:
            ax.set_xscale("log", base=2)
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(s) for s in sizes])
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("samples per second (log scale)")
        ax.set_title(f"{device}: throughput vs batch size", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return FigureOut(
        "throughput",
        "Throughput vs batch size",
        "Samples per second over the measured loop at each batch size; error bars carry the 95% "
        "confidence interval of the median call time; a red cross marks an INVALID cell. "
        "Higher is better.",
        fig,
        len(panels),
    )


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both lower x and higher y."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best_y = [], -math.inf
    for i in order:
        if points[i][1] > best_y:
            front.append(i)
            best_y = points[i][1]
    return front


def pareto_figure(doc: dict[str, Any], colours: dict[str, str]) -> FigureOut | None:
    if untrained(doc):  # an accuracy of random weights is no axis to trade speed against
        return None
    rows = [
        r
        for r in summary_rows(doc)
        if r.get("accuracy") is not None
        and not r.get("accuracy_invalid")
        and not r.get("latency_median_invalid")
    ]
    xs = []
    for r in rows:
        x = r.get("latency_median")
        if x is None:  # no latency scenario: time per sample at the best throughput
            x = 1.0 / r["throughput"] if r.get("throughput") else None
        xs.append(x)
    pts = [(x, r) for x, r in zip(xs, rows) if x is not None]
    if not pts:
        return None
    scale, unit = _time_unit(np.array([p[0] for p in pts]))
    xy = [(x * scale, r["accuracy"] * 100) for x, r in pts]
    front = pareto_front(xy)
    fig = _new_figure(6.4, 4.4)
    ax = fig.subplots()
    # Stagger the labels of points that are close in x and equal-ish in y (typical: identical
    # accuracy across backends, since they all run the same weights).
    offsets = [(6, 6), (6, -13), (6, 19), (6, -26)]
    order = sorted(range(len(xy)), key=lambda i: xy[i][0])
    slot = {i: offsets[k % len(offsets)] for k, i in enumerate(order)}
    crowded = len(xy) > 4  # many series (--via-onnx): a legend, not labels on top of each other
    for i, ((x, y), (_, r)) in enumerate(zip(xy, pts)):
        on_front = i in front
        ax.scatter(
            [x],
            [y],
            s=90 if on_front else 50,
            color=colours[r["backend"]],
            edgecolor="black" if on_front else "none",
            linewidth=1.2,
            zorder=3,
            label=r["label"],
        )
        if crowded:
            continue
        ax.annotate(
            r["label"],
            (x, y),
            xytext=slot[i],
            textcoords="offset points",
            fontsize=8.5,
            arrowprops={"arrowstyle": "-", "color": "#9aa1ad", "lw": 0.6, "shrinkA": 0},
        )
    fx = [xy[i] for i in front]
    if len(fx) > 1:
        ax.step(
            [p[0] for p in fx],
            [p[1] for p in fx],
            where="post",
            color="#333333",
            lw=1,
            ls="--",
            label="Pareto front",
        )
    xs_ = [p[0] for p in xy]
    ys = [p[1] for p in xy]
    pad = max(0.5, (max(ys) - min(ys)) * 0.3)
    ax.set_ylim(min(ys) - pad, min(100.0, max(ys) + pad))
    lo, hi = min(xs_), max(xs_)
    if hi / max(lo, 1e-30) > 20:
        ax.set_xscale("log")
        ax.set_xlim(lo / 1.5, hi * 2.0)  # multiplicative margins: a log axis has no zero
    else:
        xpad = max((hi - lo) * 0.25, hi * 0.1)
        ax.set_xlim(max(0.0, lo - xpad), hi + xpad * 1.5)
    ax.set_xlabel(f"latency p50 per sample ({unit}) - lower is better")
    ax.set_ylabel("accuracy (%) - higher is better")
    ax.set_title("Accuracy vs latency (outlined: on the Pareto front)", fontsize=10)
    ax.grid(alpha=0.3)
    if crowded:
        ax.legend(fontsize=7.5, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return FigureOut(
        "pareto",
        "Accuracy vs latency",
        "Each backend's accuracy against its median single-sample latency. Outlined points are on "
        "the Pareto front: no other backend is both faster and more accurate.",
        fig,
        1,
    )


def memory_figure(doc: dict[str, Any], colours: dict[str, str]) -> FigureOut | None:
    rows = [r for r in summary_rows(doc) if r.get("peak_rss_bytes")]
    if not rows:
        return None
    fig = _new_figure(max(5.0, 1.1 * len(rows) + 2.5), 4.0)
    ax = fig.subplots()
    mib = [r["peak_rss_bytes"] / 2**20 for r in rows]
    pos = np.arange(len(rows))
    bars = ax.bar(pos, mib, color=[colours[r["backend"]] for r in rows], width=0.6)
    for bar, r in zip(bars, rows):
        ax.annotate(
            fmt_bytes(r["peak_rss_bytes"]),
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            fontsize=8.5,
        )
    ax.set_xticks(pos)
    crowded = len(rows) > 4  # long via-ONNX names would overlap: slanted labels
    ax.set_xticklabels(
        [r["label"] for r in rows],
        fontsize=9 if not crowded else 8,
        rotation=30 if crowded else 0,
        ha="right" if crowded else "center",
    )
    ax.set_ylabel("peak resident memory (MiB)")
    ax.set_ylim(0, max(mib) * 1.15)
    ax.set_title("Peak memory per backend (worker process RSS)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return FigureOut(
        "memory",
        "Memory per backend",
        "Peak resident set size of each backend's worker process over all its cells (framework, "
        "model and buffers). Lower is better.",
        fig,
        1,
    )


def server_points(doc: dict[str, Any], device: str) -> dict[str, list[dict[str, Any]]]:
    """Per backend on ``device``: ``{"offered", "achieved", "p99_s", "ok"}`` of every offered
    rate its server cell drove (the common sweep, or the one run at ``--server-rate``)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for c in doc.get("cells") or []:
        if c["device"] != device or c["scenario"] != "server" or c.get("status") == "failed":
            continue
        server = c.get("server") or {}
        sweep = server.get("sweep") or []
        pts = [
            {
                "offered": p.get("offered_rate"),
                "achieved": p.get("achieved_rate"),
                "p99_s": p.get("p99_s"),
                "ok": bool(p.get("ok")),
            }
            for p in sweep
        ]
        if not pts and server.get("target_rate") is not None:
            pts = [
                {
                    "offered": server.get("target_rate"),
                    "achieved": server.get("achieved_rate"),
                    "p99_s": server.get("p99_latency_s"),
                    "ok": c.get("status") == "ok",
                }
            ]
        pts = [p for p in pts if p["offered"] and p["p99_s"]]
        if pts:
            out[c["backend"]] = sorted(pts, key=lambda p: p["offered"])
    return out


def server_figure(doc: dict[str, Any], colours: dict[str, str]) -> FigureOut | None:
    panels = [(d, server_points(doc, d)) for d in _devices(doc)]
    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    fig = _new_figure(5.6 * len(panels), 4.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (device, series) in zip(axes, panels):
        p99s = np.array([p["p99_s"] for pts in series.values() for p in pts])
        scale, unit = _time_unit(p99s)
        for backend, pts in sorted(series.items()):
            x = np.array([p["offered"] for p in pts])
            y = np.array([p["p99_s"] * scale for p in pts])
            ok = np.array([p["ok"] for p in pts])
            ax.plot(x, y, marker="o", ms=5, label=backend, color=colours[backend])
            if (~ok).any():  # overloaded or over the bound: INVALID points
                ax.scatter(x[~ok], y[~ok], marker="x", s=90, color="#C00000", zorder=4)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("offered load (queries/s, log scale)")
        ax.set_ylabel(f"p99 latency incl. queueing ({unit}, log scale)")
        ax.set_title(f"{device}: p99 latency vs offered load", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return FigureOut(
        "server",
        "Server: p99 latency vs offered load",
        "Poisson arrivals at each offered rate, the same rates for every backend; p99 runs from "
        "arrival to completion, so queueing counts. A red cross marks an INVALID point "
        "(overloaded: fewer completions than arrivals, or over the p99 bound). Lower is better.",
        fig,
        len(panels),
    )


def build_figures(doc: dict[str, Any]) -> list[FigureOut]:
    """Every figure the result document has data for, in report order."""
    _require_matplotlib()
    colours = backend_colours(doc)
    out = []
    for make in (latency_figure, throughput_figure, server_figure, pareto_figure, memory_figure):
        fig = make(doc, colours)
        if fig is not None:
            out.append(fig)
    from dlbench.report.training import run_training_figures

    out.extend(run_training_figures(doc, colours))  # learning curves, step losses and times
    return out


def png_bytes(fig: FigureOut) -> bytes:
    """The figure as PNG bytes (Agg)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig.figure)
    buf = io.BytesIO()
    fig.figure.savefig(buf, format="png", facecolor="white")
    return buf.getvalue()


__all__ = [
    "FigureOut",
    "build_figures",
    "pareto_front",
    "png_bytes",
]
