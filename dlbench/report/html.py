"""The self-contained HTML page: inline CSS, figures as base64 PNG data URIs, no script, no
external resource, so it opens offline and can be mailed or attached to a CI run as one file."""

from __future__ import annotations

import base64
import json
from html import escape
from typing import Any

from dlbench.analysis.parity import failed as parity_failed
from dlbench.report.table import (
    UNTRAINED,
    best_worst,
    cell_rows,
    energy_notes,
    fairness_statement,
    figure_text,
    fmt_bytes,
    fmt_co2,
    fmt_energy,
    fmt_rate,
    fmt_time,
    fmt_usd,
    fmt_watts,
    has_energy,
    invalid_notes,
    parity_text,
    summary_rows,
    untrained,
    visible_columns,
    winner_sentences,
)

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 color:#1d2330;margin:0;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:24px 28px 60px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 10px;border-bottom:1px solid #e3e6eb;
 padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.meta{color:#5b6475;font-size:13px}
.summary{background:#eef5ee;border-left:4px solid #3b8a4a;padding:10px 14px;margin:16px 0}
.summary li{margin:2px 0}
.warn{background:#fff7e0;border-left:4px solid #d69e00;padding:8px 14px;margin:12px 0}
.warn li{margin:2px 0}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px;display:block;overflow-x:auto;
 max-width:100%}
th,td{border:1px solid #dfe3e8;padding:4px 8px;vertical-align:top}
th{background:#f0f2f5;text-align:left;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.best{background:#dff3e2;color:#17602a;font-weight:600}
td.worst{background:#fbe3e3;color:#9b1c1c}
td.invalid{background:#f3f3f3;color:#7a8394;text-decoration:line-through}
td.invalid .why{text-decoration:none;display:inline-block;color:#b3261e;font-size:11px;
 white-space:normal;max-width:220px}
.ok{color:#17602a;font-weight:600}.bad{color:#b3261e;font-weight:700}.muted{color:#7a8394}
figure{margin:14px 0 26px}figure img{max-width:100%;border:1px solid #e3e6eb}
figcaption{color:#4a5262;font-size:13px;margin-top:4px}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}
code{background:#f0f2f5;padding:0 3px;border-radius:3px}
.kv td:first-child{color:#4a5262;white-space:nowrap}.kv td{overflow-wrap:anywhere}
"""


def _e(x: Any) -> str:
    return escape("-" if x is None else str(x))


def _kv_table(items: list[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in items)
    return f'<table class="kv">{rows}</table>'


def _summary_table(rows: list[dict[str, Any]]) -> str:
    columns = visible_columns(rows)
    head = "".join(
        f"<th>{_e(c.label)}<br><span class='muted'>{_e(c.unit)}, {c.better} is better</span></th>"
        for c in columns
    )
    out = [f"<table><tr><th>backend</th><th>device</th>{head}<th>parity</th></tr>"]
    marks = {c.key: best_worst(rows, c) for c in columns}
    for r in rows:
        tds = []
        for c in columns:
            v = r.get(c.key)
            best, worst = marks[c.key]
            cls = "num"
            if v is not None and best is not None and v == best:
                cls += " best"
            elif v is not None and worst is not None and v == worst:
                cls += " worst"
            text = figure_text(r, c)  # value, ± 95% interval, ~ noisy, INVALID, untrained
            if c.key == "throughput" and r.get("throughput_bs"):
                text = text.replace(c.fmt(v), f"{c.fmt(v)} (bs {r['throughput_bs']})", 1)
            if c.key == "energy_per_sample" and r.get("energy_bs"):
                text += f" ({r.get('energy_scenario')}, bs {r['energy_bs']})"
            why = r.get(f"{c.key}_invalid")
            if why and v is not None:
                cls = "num invalid"
                text_html = f'{_e(text)}<br><span class="why">{_e(why)}</span>'
            else:
                text_html = _e(text)
            tds.append(f'<td class="{cls}">{text_html}</td>')
        parity = r.get("parity")
        pcls = (
            "muted"
            if parity is None
            else ("ok" if parity.get("ok") else ("bad" if parity_failed(parity) else "muted"))
        )
        name = _e(r["backend"])
        if r.get("failed"):
            name += f' <span class="bad">(failed: {_e(", ".join(r["failed"]))})</span>'
        out.append(
            f"<tr><td>{name}</td><td>{_e(r['device'])}</td>{''.join(tds)}"
            f'<td class="{pcls}">{_e(parity_text(parity))}</td></tr>'
        )
    out.append("</table>")
    out.append(
        '<p class="meta">Green: best in its column; red: worst. <code>±</code>: half-width of '
        "the figure's 95% interval; <code>~</code>: noisy (its own cell's IQR above 10% of the "
        "median); <b>INVALID</b>: the cell failed its validity rule (reason below the value), "
        "never best or worst, left out of the winner lines.</p>"
    )
    return "".join(out)


def _parity_table(doc: dict[str, Any]) -> str:
    out = [
        "<table><tr><th>backend</th><th>device</th><th>status</th><th>max abs diff</th>"
        "<th>max rel diff</th><th>argmax agreement</th><th>tolerance</th><th>build</th></tr>"
    ]
    for backend, per_device in (doc.get("backends") or {}).items():
        for device, info in per_device.items():
            p = info.get("parity")
            if info.get("status") == "failed":
                status = f'<span class="bad">failed: {_e(info.get("error"))}</span>'
            elif p is None:
                status = '<span class="muted">reference / not checked</span>'
            elif p.get("ok"):
                status = '<span class="ok">ok</span>'
            elif not parity_failed(p):
                status = f'<span class="muted">not informative</span> {_e(p.get("reason") or "")}'
            else:
                status = f'<span class="bad">MISMATCH</span> {_e(p.get("reason") or "")}'
            p = p or {}

            def num(v: Any, fmt: str = ".2e") -> str:
                return "-" if v is None else format(v, fmt)

            agree = p.get("argmax_agreement")
            out.append(
                f"<tr><td>{_e(backend)}</td><td>{_e(device)}</td><td>{status}</td>"
                f'<td class="num">{num(p.get("max_abs_diff"))}</td>'
                f'<td class="num">{num(p.get("max_rel_diff"))}</td>'
                f'<td class="num">{"-" if agree is None else f"{agree * 100:.1f}%"}</td>'
                f'<td class="num">{num(p.get("tolerance"), ".0e")}</td>'
                f'<td class="num">{_e(fmt_time(info.get("build_time_s")))}</td></tr>'
            )
    out.append("</table>")
    return "".join(out)


def _energy_tds(r: dict[str, Any]) -> str:
    note = r.get("energy_note")
    jps = fmt_energy(r.get("joules_per_sample"))
    if r.get("energy_net"):
        jps += " net"
    return (
        f'<td class="num">{_e(jps)}</td>'
        f'<td class="num">{_e(fmt_watts(r.get("watts")))}</td>'
        f'<td class="num">{_e(fmt_usd(r.get("usd_per_million_samples")))}</td>'
        f'<td class="num">{_e(fmt_co2(r.get("co2_g_per_million_samples")))}</td>'
        f'<td class="muted">{_e(note or "")}</td>'
    )


def _cells_table(doc: dict[str, Any]) -> str:
    energy = has_energy(doc)
    energy_head = (
        "<th>energy/sample</th><th>power</th><th>cost/1M</th><th>CO2/1M</th><th>energy note</th>"
        if energy
        else ""
    )
    out = [
        "<table><tr><th>cell</th><th>status</th><th>n</th><th>median</th><th>p90</th>"
        "<th>p99</th><th>IQR</th><th>95% CI of median</th><th>throughput</th><th>peak RSS</th>"
        f"<th>metrics</th><th>note</th>{energy_head}</tr>"
    ]
    for r in cell_rows(doc):
        status = r["status"]
        scls = {"ok": "ok", "failed": "bad", "invalid": "bad"}.get(status, "muted")
        status = "INVALID" if status == "invalid" else status
        ci = (
            f"{fmt_time(r['ci95_low_s'])} - {fmt_time(r['ci95_high_s'])}"
            if r["ci95_low_s"] is not None
            else "-"
        )
        noisy = " ~" if r["noisy"] else ""
        out.append(
            f"<tr><td>{_e(r['id'])}</td><td class='{scls}'>{_e(status)}</td>"
            f'<td class="num">{_e(r["n"])}</td>'
            f'<td class="num">{_e(fmt_time(r["median_s"]))}{noisy}</td>'
            f'<td class="num">{_e(fmt_time(r["p90_s"]))}</td>'
            f'<td class="num">{_e(fmt_time(r["p99_s"]))}</td>'
            f'<td class="num">{_e(fmt_time(r["iqr_s"]))}</td>'
            f'<td class="num">{_e(ci)}</td>'
            f'<td class="num">{_e(fmt_rate(r["throughput_per_s"]))}</td>'
            f'<td class="num">{_e(fmt_bytes(r["peak_rss_bytes"]))}</td>'
            f"<td>{_e(r['metrics'] or '')}</td><td>{_e(r['note'] or '')}</td>"
            f"{_energy_tds(r) if energy else ''}</tr>"
        )
    out.append("</table>")
    return "".join(out)


def _energy_section(doc: dict[str, Any]) -> str:
    """Which meters and domains measured energy, per backend and device, and the limits."""
    out = [
        '<p class="meta">Energy read around each measured loop (never inside a timed call). '
        "RAPL covers the CPU package(s) and DRAM, not the whole machine; NVML covers the GPU "
        "board. Net figures subtract the idle baseline. Cost comes from the price per hour and "
        "the measured throughput; CO2 from the energy and the grid's carbon intensity.</p>",
        "<table><tr><th>cell</th><th>energy</th><th>seconds</th><th>meters</th>"
        "<th>domains</th><th>baseline</th></tr>",
    ]
    for cell in doc.get("cells") or []:
        e = cell.get("energy")
        if not isinstance(e, dict) or cell.get("status") == "failed":
            continue
        meters = "; ".join(
            f"{name}: " + ("ok" if m.get("available") else f"unavailable ({m.get('reason')})")
            for name, m in (e.get("meters") or {}).items()
        )
        domains = ", ".join(
            f"{d} {fmt_energy(v.get('joules'))}"
            + ("" if v.get("summed", True) else " (not summed)")
            + (f" [{v['method']}]" if v.get("method") not in (None, "counter") else "")
            for d, v in (e.get("domains") or {}).items()
        )
        base = e.get("baseline") or {}
        btxt = f"{fmt_watts(base.get('watts'))} over {base.get('seconds')} s" if base else "-"
        total = fmt_energy(e.get("joules")) if e.get("available") else f"none: {e.get('reason')}"
        secs = e.get("seconds")
        out.append(
            f"<tr><td>{_e(cell['id'])}</td><td>{_e(total)}</td>"
            f'<td class="num">{_e("-" if secs is None else f"{secs:.3g}")}</td>'
            f"<td>{_e(meters or '-')}</td><td>{_e(domains or '-')}</td><td>{_e(btxt)}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _settings(doc: dict[str, Any]) -> str:
    cfg = dict(doc.get("config") or {})
    # the values actually used: the stop rule with its defaults, the backends that ran
    try:
        from dlbench.execution.measure import StopRule

        cfg["stop_rule"] = StopRule.from_dict(cfg.get("stop_rule") or {}).to_dict()
    except Exception:  # an older or hand-edited file: show what it says
        pass
    if cfg.get("backends") is None and doc.get("backends"):
        cfg["backends"] = f"{', '.join(doc['backends'])} (not given: every installed one)"
    items = [(k, json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in cfg.items()]
    parts = [
        "<h3>Benchmark config (the values used, defaults filled in)</h3>",
        _kv_table(items),
        "<h3>Per backend</h3>",
    ]
    keys: list[str] = []
    entries = []
    for backend, per_device in (doc.get("backends") or {}).items():
        for device, info in per_device.items():
            settings = info.get("settings") or {}
            versions = info.get("versions") or {}
            entries.append((f"{backend}/{device}", settings, versions))
            keys += [k for k in settings if k not in keys]
    if entries:
        head = "".join(f"<th>{_e(k)}</th>" for k in keys)
        rows = []
        for who, settings, versions in entries:
            vtext = ", ".join(f"{k} {v}" for k, v in versions.items())
            tds = "".join(
                f"<td>{_e(json.dumps(v) if isinstance(v, (dict, list)) else v)}</td>"
                for v in (settings.get(k) for k in keys)
            )
            rows.append(f"<tr><td>{_e(who)}</td><td>{_e(vtext)}</td>{tds}</tr>")
        parts.append(
            f"<table><tr><th>backend</th><th>versions</th>{head}</tr>{''.join(rows)}</table>"
        )
    return "".join(parts)


def _environment(doc: dict[str, Any]) -> str:
    env = doc.get("environment") or {}
    cpu = env.get("cpu") or {}
    items: list[tuple[str, Any]] = [
        ("OS", (env.get("os") or {}).get("platform")),
        ("host", env.get("hostname")),
        (
            "CPU",
            f"{cpu.get('model')} ({cpu.get('physical_cores')} physical / "
            f"{cpu.get('logical_cores')} logical cores, {cpu.get('usable_cores')} usable)",
        ),
        ("CPU flags", " ".join(cpu.get("flags") or [])),
    ]
    mem = env.get("memory") or {}
    if mem.get("total_bytes"):
        items.append(("memory", fmt_bytes(mem["total_bytes"])))
    py = env.get("python") or {}
    items.append(("Python", f"{py.get('version')} {py.get('implementation') or ''}".strip()))
    blas = env.get("blas") or {}
    if blas:
        items.append(("BLAS", f"{blas.get('name')} {blas.get('version')}"))
    for gpu in env.get("gpus") or []:
        items.append((f"GPU {gpu.get('index')}", f"{gpu.get('name')}, driver {gpu.get('driver')}"))
    if not env.get("gpus"):
        items.append(("GPU", "none"))
    for name, version in (env.get("packages") or {}).items():
        items.append((name, version))
    for name, value in (env.get("env") or {}).items():
        items.append((f"${name}", value))
    dl = env.get("dlbench") or {}
    items.append(("dlbench", f"{dl.get('version')} (git {dl.get('git_commit') or 'n/a'})"))
    return _kv_table(items)


def render(doc: dict[str, Any], figures: list[tuple[Any, bytes]]) -> str:
    """The report page for ``doc``; ``figures`` pairs each :class:`FigureOut` with its PNG."""
    model, dataset = doc.get("model") or {}, doc.get("dataset") or {}
    title = f"dlbench report: {model.get('name')} on {dataset.get('name')}/{dataset.get('split')}"
    rows = summary_rows(doc)
    sentences = winner_sentences(rows)
    n_cells = len(doc.get("cells") or [])
    n_failed = sum(1 for c in doc.get("cells") or [] if c.get("status") == "failed")
    n_invalid = sum(1 for c in doc.get("cells") or [] if c.get("status") == "invalid")
    stats = model.get("stats") or {}
    meta = (
        f"run <code>{_e(doc.get('run_id'))}</code> &middot; created {_e(doc.get('created'))} "
        f"&middot; status {_e(doc.get('status'))} &middot; {n_cells} cells ({n_failed} failed, "
        f"{n_invalid} INVALID) "
        f"&middot; model fingerprint <code>{_e(model.get('fingerprint'))}</code>"
    )
    if stats.get("params") is not None:
        meta += f" &middot; {stats['params']:,} parameters"
    cfg = doc.get("config") or {}
    meta += (
        f"<br>timing mode <b>{_e(cfg.get('timing_mode'))}</b> &middot; precision "
        f"{_e(cfg.get('precision'))} &middot; {_e(cfg.get('intra_op_threads'))} intra-op / "
        f"{_e(cfg.get('inter_op_threads'))} inter-op threads &middot; dataset "
        f"{_e(dataset.get('name'))} ({'synthetic' if dataset.get('synthetic') else 'real data'})"
    )
    if untrained(doc):
        title += f": {UNTRAINED}"
        meta += f"<br><b>Weights: {UNTRAINED}</b>: accuracy is a timing-only figure, not a result"
    body = [f"<h1>{_e(title)}</h1>", f'<p class="meta">{meta}</p>']
    if sentences:
        items = "".join(f"<li>{_e(s)}</li>" for s in sentences)
        body.append(f'<div class="summary"><b>In short</b><ul>{items}</ul></div>')
    items = "".join(f"<li>{_e(f)}</li>" for f in fairness_statement(doc))
    body.append(f'<div class="summary"><b>Fairness</b><ul>{items}</ul></div>')
    invalid = invalid_notes(rows)
    if invalid:
        items = "".join(f"<li>{_e(n)}</li>" for n in invalid)
        body.append(f'<div class="warn"><b>INVALID figures</b><ul>{items}</ul></div>')
    warnings = doc.get("warnings") or []
    if warnings:
        items = "".join(f"<li>{_e(w)}</li>" for w in warnings)
        body.append(f'<div class="warn"><b>Warnings</b><ul>{items}</ul></div>')
    body.append("<h2>Summary</h2>")
    body.append(_summary_table(rows))
    from dlbench.report.detection import html_section

    body.append(html_section(doc))  # a detector: 12 COCO stats, AP difference, stage times
    from dlbench.report.training import run_training_section

    body.append(run_training_section(doc))  # training cells: step times, losses, agreement
    notes = energy_notes(doc)
    if notes:
        items = "".join(f"<li>{_e(n)}</li>" for n in notes)
        body.append(f'<div class="warn"><b>Energy</b><ul>{items}</ul></div>')
    body.append("<h2>Figures</h2>")
    if not figures:
        body.append('<p class="muted">No timed cells: nothing to draw.</p>')
    for fig, png in figures:
        data = base64.b64encode(png).decode("ascii")
        body.append(
            f'<figure id="fig-{_e(fig.name)}"><h3>{_e(fig.title)}</h3>'
            f'<img alt="{_e(fig.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(fig.caption)}</figcaption></figure>"
        )
    body.append("<h2>Parity</h2>")
    body.append(
        '<p class="meta">Each backend\'s outputs on a fixed batch against the float64 NumPy '
        "reference, before any timing. A mismatch means its timings compare a different "
        "computation.</p>"
    )
    body.append(_parity_table(doc))
    body.append("<h2>All cells</h2>")
    body.append(_cells_table(doc))
    if has_energy(doc):
        body.append("<h2>Energy and cost</h2>")
        body.append(_energy_section(doc))
    body.append("<h2>Settings</h2>")
    body.append(_settings(doc))
    body.append("<h2>Environment</h2>")
    body.append(_environment(doc))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )
