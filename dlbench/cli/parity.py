"""``dlbench parity``: every backend against the float64 reference, as a table."""

from __future__ import annotations

import argparse
from typing import Any

from dlbench.analysis.parity import DEFAULT_TOLERANCE, REFERENCE, check, failed
from dlbench.analysis.parity import status as parity_status
from dlbench.cli.args import csv, make_console
from dlbench.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> None:
    par = sub.add_parser("parity", help="check that backends agree with the numpy reference")
    par.add_argument("--model", default="digits_cnn", help="zoo model (default digits_cnn)")
    par.add_argument(
        "--backends", type=csv, help="comma-separated backends (default: all installed)"
    )
    par.add_argument(
        "--batch-size", type=int, default=256, help="samples in the checked batch (default 256)"
    )
    par.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")


def command(args: argparse.Namespace) -> int:
    return cli_main(args.model, args.backends, args.batch_size, args.device, make_console())


def format_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """Table rows (backend, mode, max abs diff, max rel diff, argmax, status); the argmax cell
    says how many samples agreed only as near-ties of the reference."""
    rows = []
    for r in records:

        def num(v: Any) -> str:
            return "-" if v is None else f"{v:.2e}"

        agree = r.get("argmax_agreement")
        ties = r.get("argmax_near_ties") or 0
        agree_text = "-" if agree is None else f"{agree:.1%}"
        if ties:
            agree_text += f" ({ties} near-tie{'s' if ties > 1 else ''})"
        status = parity_status(r).upper() if not r.get("ok") else "ok"
        rows.append(
            [
                r["backend"],
                str(r.get("mode") or "-"),
                num(r.get("max_abs_diff")),
                num(r.get("max_rel_diff")),
                agree_text,
                status,
            ]
        )
    return rows


def cli_main(
    model: str,
    backends: list[str] | None,
    batch_size: int,
    device: str,
    console: Any,
) -> int:
    """``dlbench parity``: print a table of every backend against the reference.

    Returns 0 when every backend is within tolerance, 1 otherwise (mismatches and errors are
    printed loudly, with the error message).
    """
    from rich.table import Table

    from dlbench import zoo
    from dlbench.model.backend import available_backends

    if backends is None:
        backends = [b for b in available_backends() if b != REFERENCE]
    if batch_size < 1:
        raise ConfigError(f"Expected `batch_size` to be a positive int. Received: {batch_size}")
    spec = zoo.get(model)
    console.print(
        f"Parity of [bold]{spec.name}[/] (fingerprint {spec.fingerprint()[:12]}) on a batch of "
        f"{batch_size} against the float64 {REFERENCE} reference, device {device}"
    )
    records = check(spec, backends, batch_size=batch_size, device=device)
    tol = records[0]["tolerance"] if records else DEFAULT_TOLERANCE
    table = Table(title=f"parity: {spec.name} (ok when max abs diff <= {tol:g} x output scale)")
    for col in ("backend", "mode", "max abs diff", "max rel diff", "argmax agree", "status"):
        table.add_column(col, justify="right" if "diff" in col or "agree" in col else "left")
    for r, row in zip(records, format_rows(records)):
        style = "bold red" if failed(r) else (None if r.get("ok") else "yellow")
        table.add_row(*row, style=style)
    console.print(table)
    for r in records:
        if not r.get("ok") and not failed(r):
            console.print(
                f"[yellow]PARITY NOT INFORMATIVE[/] {r['backend']} ({r.get('mode')}): "
                f"{r.get('reason') or 'the reference cannot tell a right output from a wrong one'}"
            )
    bad = [r for r in records if failed(r)]
    for r in bad:
        why = r.get("error") or (
            f"max abs diff {r['max_abs_diff']} > {r['tolerance']} x scale {r['output_scale']}"
            f", argmax agreement {r['argmax_agreement']} (strict "
            f"{r.get('argmax_agreement_strict')})"
        )
        console.print(f"[bold red]PARITY FAILED[/] {r['backend']} ({r.get('mode')}): {why}")
    return 0 if records and not bad else 1
