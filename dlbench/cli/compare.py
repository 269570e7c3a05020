"""``dlbench compare``: two result files cell by cell.

Exit codes: 0 when no cell regressed (cells whose change is "inconclusive: noisy", within
their own noise, are listed but do not fail); 1 on a regression; 2 on bad input or runs that
are not comparable.
"""

from __future__ import annotations

import argparse
from typing import Any

from dlbench.analysis.compare import CellChange, Comparison
from dlbench.cli.args import EXIT_FAILED, EXIT_OK, make_console


def add_parser(sub: argparse._SubParsersAction) -> None:
    cmp_ = sub.add_parser(
        "compare",
        help="compare two result files (exit 1 on a regression; 0 when a change is only "
        "'inconclusive: noisy')",
        description="Compare two result files cell by cell. A regression needs a significant "
        "change (Mann-Whitney U and a bootstrap interval of the median ratio) larger than both "
        "the threshold and the cell's own noise (half its IQR); a significant change within "
        "the noise is 'inconclusive: noisy'. Exit 0: no regression; 1: a regression; 2: bad "
        "input or runs that are not comparable.",
    )
    cmp_.add_argument("a", help="baseline result file")
    cmp_.add_argument("b", help="result file to check against the baseline")
    cmp_.add_argument("--threshold", default="5%", help="smallest change that counts (default 5%%)")
    cmp_.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    cmp_.add_argument(
        "--energy-threshold",
        default="10%",
        help="smallest change of energy per sample that counts, when both runs measured energy "
        "(default 10%%)",
    )
    cmp_.add_argument("--force", action="store_true", help="compare runs that are not comparable")
    cmp_.add_argument("--json", dest="json_out", help="also write the comparison as JSON here")


def command(args: argparse.Namespace) -> int:
    from dlbench.analysis import compare

    result = compare.compare(
        args.a,
        args.b,
        threshold=compare.parse_threshold(args.threshold),
        alpha=args.alpha,
        force=args.force,
        energy_threshold=compare.parse_threshold(args.energy_threshold),
    )
    print_comparison(result, make_console())
    if args.json_out:
        from dlbench.execution.results import write_atomic

        write_atomic(args.json_out, result.to_dict())
    return EXIT_FAILED if result.regressions else EXIT_OK


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:+.1f}%"


def _coloured_change(c: CellChange, key: str, *, higher_is_better: bool = False) -> str:
    """The relative change of statistic ``key``, red/green when the cell is flagged."""
    ch = (c.stats.get(key) or {}).get("change")
    text = _pct(ch)
    if ch is None or c.verdict not in ("regression", "improvement"):
        return text
    worse = ch < 0 if higher_is_better else ch > 0
    return f"[{'red' if worse else 'green'}]{text}[/]"


def _energy_change(c: CellChange, threshold: float) -> str:
    """The relative change of energy per sample, red/green beyond the energy threshold."""
    ch = (c.stats.get("joules_per_sample") or {}).get("change")
    text = _pct(ch)
    if ch is None or abs(ch) <= threshold:
        return text
    return f"[{'red' if ch > 0 else 'green'}]{text}[/]"


_STYLE = {
    "regression": "bold red",
    "improvement": "bold green",
    "within threshold": "yellow",
    "inconclusive: noisy": "yellow",
    "unchanged": "dim",
    "failed": "red",
}


def _verdict(c: CellChange) -> str:
    text = f"[{_STYLE.get(c.verdict, 'dim')}]{c.verdict}[/]"
    if c.ratio_ci:
        text += f" [dim](x{c.ratio:.3f}, CI {c.ratio_ci[0]:.3f}-{c.ratio_ci[1]:.3f})[/]"
    return text


def _details(c: CellChange) -> list[str]:
    """What a cell's row cannot hold: accuracy changes and notes, one string each."""
    out = [f"{k} {m['a']:.4g}->{m['b']:.4g}" for k, m in c.metrics.items() if k == "accuracy"]
    return out + list(c.notes)


def _noise(c: CellChange) -> str:
    return "-" if c.noise is None else f"±{c.noise * 100:.2g}%"


def _table(result: Comparison, energy: bool) -> Any:
    from rich.table import Table

    from dlbench.report.table import fmt_energy, fmt_rate, fmt_time

    table = Table(
        title=f"{result.b} vs baseline {result.a} "
        f"(threshold {result.threshold * 100:g}%, alpha {result.alpha:g})"
    )
    for col in (
        "cell",
        "median a",
        "median b",
        "p50",
        "p90",
        "p99",
        "noise",
        "throughput",
        *(["energy/sample"] if energy else []),
        "p-value",
        "verdict",
    ):
        table.add_column(
            col, justify="left" if col in ("cell", "verdict") else "right", no_wrap=True
        )
    for c in result.changes:
        s = c.stats
        med = s.get("median") or {}
        tp = s.get("throughput") or {}
        tput = _pct(tp.get("change")) if tp else "-"
        if tp.get("b") is not None:
            tput = f"{_coloured_change(c, 'throughput', higher_is_better=True)} ({fmt_rate(tp.get('b'))})"
        en = s.get("joules_per_sample") or {}
        etxt = (
            f"{_energy_change(c, result.energy_threshold)} ({fmt_energy(en.get('b'))})"
            if en
            else "-"
        )
        table.add_row(
            c.cell,
            fmt_time(med.get("a")),
            fmt_time(med.get("b")),
            _coloured_change(c, "median"),
            _coloured_change(c, "p90"),
            _coloured_change(c, "p99"),
            _noise(c),
            tput,
            *([etxt] if energy else []),
            "-" if c.p_value is None else f"{c.p_value:.2g}",
            _verdict(c),
        )
    return table


def _stacked(result: Comparison, console: Any, energy: bool) -> None:
    """One block per cell: its whole name, the verdict, then the figures; lines wrap at words,
    so nothing is cut however narrow the terminal (CI logs)."""
    from dlbench.report.table import fmt_energy, fmt_rate, fmt_time

    console.print(
        f"[bold]{result.b}[/] vs baseline [bold]{result.a}[/] (threshold "
        f"{result.threshold * 100:g}%, alpha {result.alpha:g})",
        highlight=False,
    )
    for c in result.changes:
        s = c.stats
        console.print(f"[bold]{c.cell}[/]: {_verdict(c)}", highlight=False)
        med = s.get("median") or {}
        parts = []
        if med:
            parts.append(
                f"median {fmt_time(med.get('a'))} -> {fmt_time(med.get('b'))} "
                f"({_coloured_change(c, 'median')})"
            )
            parts.append(f"p90 {_coloured_change(c, 'p90')}, p99 {_coloured_change(c, 'p99')}")
            parts.append(f"noise {_noise(c)}")
        tp = s.get("throughput") or {}
        if tp.get("b") is not None:
            parts.append(
                f"throughput {_coloured_change(c, 'throughput', higher_is_better=True)} "
                f"({fmt_rate(tp.get('b'))})"
            )
        en = s.get("joules_per_sample") or {}
        if energy and en:
            parts.append(
                f"energy/sample {_energy_change(c, result.energy_threshold)} "
                f"({fmt_energy(en.get('b'))})"
            )
        if c.p_value is not None:
            parts.append(f"p {c.p_value:.2g}")
        if parts:
            console.print("  " + "; ".join(parts), highlight=False)
        for d in _details(c):
            console.print(f"  [dim]{d}[/]", highlight=False)


def print_comparison(result: Comparison, console: Any) -> None:
    """A rich table of every matched cell when it fits the terminal (else one block per
    cell), then a one-paragraph verdict."""
    from dlbench.cli.console import _fits

    if result.forced:
        console.print("[bold yellow]Forced comparison of runs that are not comparable:[/]")
        for d in result.unfair:
            console.print(f"  [yellow]- {d}[/]")
    for n in result.notes:
        console.print(f"[dim]note: {n}[/]", highlight=False)
    energy = any("joules_per_sample" in c.stats for c in result.changes)
    table = _table(result, energy)
    if _fits(console, table):
        console.print(table)
        for c in result.changes:
            details = _details(c)
            if details:
                console.print(f"[dim]{c.cell}: {'; '.join(details)}[/]", highlight=False)
    else:
        _stacked(result, console, energy)
    if result.only_in_a:
        console.print(f"[dim]only in a: {', '.join(result.only_in_a)}[/]", highlight=False)
    if result.only_in_b:
        console.print(f"[dim]only in b: {', '.join(result.only_in_b)}[/]", highlight=False)
    console.print(summary_sentence(result), highlight=False)
    if result.regressed_backends:
        console.print(f"[bold red]Regressed:[/] {', '.join(result.regressed_backends)}")


def summary_sentence(result: Comparison) -> str:
    """``2 regressions (torch/cpu/latency/bs1 +31%, ...), 0 improvements, 7 unchanged.``"""

    def describe(c: CellChange) -> str:
        energy = (c.stats.get("joules_per_sample") or {}).get("change")
        if energy is not None and c.verdict in ("regression", "improvement"):
            parts = []
            if c.ratio is not None and c.ratio_ci and c.p_value is not None:
                lo, hi = c.ratio_ci
                significant = c.p_value < result.alpha and (lo > 1.0 or hi < 1.0)
                if significant and abs(c.ratio - 1) > result.threshold:
                    parts.append(f"time {(c.ratio - 1) * 100:+.1f}%")
            if abs(energy) > result.energy_threshold:
                parts.append(f"energy {energy * 100:+.1f}%")
            parts += [f"{k} {m['delta'] * 100:+.2f} pt" for k, m in c.metrics.items() if m["delta"]]
            return f"{c.cell} {', '.join(parts)}" if parts else f"{c.cell} ({'; '.join(c.notes)})"
        if c.ratio is not None and c.verdict in ("regression", "improvement"):
            return f"{c.cell} {(c.ratio - 1) * 100:+.1f}%"
        if c.metrics:
            return (
                c.cell
                + " "
                + ", ".join(
                    f"{k} {m['delta'] * 100:+.2f} pt" for k, m in c.metrics.items() if m["delta"]
                )
            )
        return f"{c.cell} ({'; '.join(c.notes)})"

    reg, imp, noisy = result.regressions, result.improvements, result.inconclusive
    rest = len(result.changes) - len(reg) - len(imp) - len(noisy)
    parts = []
    if reg:
        parts.append(
            f"[bold red]{len(reg)} regression{'s' if len(reg) != 1 else ''}[/] "
            f"({', '.join(describe(c) for c in reg)})"
        )
    else:
        parts.append("[bold green]no regression[/]")
    if imp:
        parts.append(
            f"[green]{len(imp)} improvement{'s' if len(imp) != 1 else ''}[/] "
            f"({', '.join(describe(c) for c in imp)})"
        )
    else:
        parts.append("no improvement")
    if noisy:
        parts.append(
            f"[yellow]{len(noisy)} inconclusive: noisy[/] ({', '.join(c.cell for c in noisy)}: "
            "a change within the cells' own noise, not a regression)"
        )
    parts.append(
        f"{rest} cell{'s' if rest != 1 else ''} without a significant change beyond the threshold"
    )
    return "; ".join(parts) + "."
