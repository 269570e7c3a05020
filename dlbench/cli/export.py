"""``dlbench export`` (and ``python -m dlbench.export``): arguments, run, and the printed tables.

The export runs in this process: it imports only the source framework, ONNX and ONNX Runtime,
nothing is timed, and the process ends with the command. (``dlbench run --via-onnx`` starts
``python -m dlbench.export`` as a short-lived subprocess, so the runner itself imports none.)
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dlbench.cli.args import make_console, shape
from dlbench.export.requirements import EXPORTERS, SOURCES


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``dlbench export``."""
    p.add_argument("--model", default="mlp", help="zoo model name or a saved ModelSpec .json")
    sources = list(SOURCES)
    p.add_argument(
        "--from",
        dest="source",
        choices=sources,
        default=sources[0] if sources else None,
        help=f"framework to export from (default {sources[0] if sources else 'none installed'})",
    )
    p.add_argument("--out", help="ONNX file to write (default <model>-<from>.onnx)")
    p.add_argument("--opset", type=int, help="ONNX opset (default 18 for every source)")
    p.add_argument(
        "--no-dynamic-batch",
        dest="dynamic_batch",
        action="store_false",
        help="fix the batch axis to --batch-size instead of leaving it free",
    )
    p.add_argument("--batch-size", type=int, default=1, help="the fixed batch size (default 1)")
    exporters = sorted({e for v in EXPORTERS.values() for e in v})
    p.add_argument(
        "--exporter",
        choices=exporters,
        help="the source's exporter (default: its first, see dlbench list backends)",
    )
    p.add_argument("--input-name", help="name of the graph input (default input)")
    p.add_argument("--output-names", help="comma-separated output names (default output)")
    p.add_argument("--input-shape", type=shape, help="per-sample input shape, e.g. 3,32,32")
    p.add_argument("--num-classes", type=int, help="size of the output layer (zoo models)")
    p.add_argument("--seed", type=int, default=0, help="seed of the zoo model's weights")
    p.add_argument("--tolerance", type=float, default=1e-4, help="parity bound (x output scale)")
    p.add_argument("--force", action="store_true", help="keep an export that fails parity")
    p.add_argument("--json", dest="json_out", help="also write the export report as JSON here")


def load_spec(model: str, input_shape: Any, num_classes: int | None, seed: int) -> Any:
    from dlbench import zoo
    from dlbench.errors import ConfigError
    from dlbench.model.spec import ModelSpec

    if model.endswith(".json") or "/" in model:
        if not Path(model).exists():
            raise ConfigError(f"Model file not found: {model}")
        return ModelSpec.load(model)
    kw: dict[str, Any] = {"seed": seed}
    if input_shape:
        kw["input_shape"] = tuple(input_shape)
    if num_classes:
        kw["num_classes"] = num_classes
    return zoo.get(model, **kw)


def export_from_args(args: argparse.Namespace) -> Any:
    from dlbench.export.core import to_onnx

    spec = load_spec(args.model, args.input_shape, args.num_classes, args.seed)
    out = args.out or f"{spec.name}-{args.source}.onnx"
    return to_onnx(
        spec,
        out,
        source=args.source,
        opset=args.opset,
        dynamic_batch=args.dynamic_batch,
        input_names=[args.input_name] if args.input_name else None,
        output_names=[n.strip() for n in args.output_names.split(",")]
        if args.output_names
        else None,
        exporter=args.exporter,
        tolerance=args.tolerance,
        force=args.force,
        batch_size=args.batch_size,
    )


def print_report(report: Any, console: Any) -> None:
    """The graph summary and the parity table."""
    from rich.table import Table

    from dlbench.cli.parity import format_rows

    s = report.summary
    shape = lambda io: ", ".join(  # noqa: E731
        f"{t['name']} {tuple('?' if d is None else d for d in t['shape'])} {t['dtype']}" for t in io
    )
    table = Table(title=f"ONNX export: {report.model} from {report.source}", show_header=False)
    table.add_column("what")
    table.add_column("value")
    versions = ", ".join(f"{k} {v}" for k, v in report.versions.items())
    table.add_row("file", f"{report.path} ({report.file_bytes / 1024:,.1f} KiB)")
    table.add_row("exporter", f"{report.exporter} ({versions}) in {report.export_seconds:.1f} s")
    table.add_row("opset", f"{report.opset} (IR version {s.get('ir_version')})")
    table.add_row("inputs", shape(s.get("inputs", [])))
    table.add_row("outputs", shape(s.get("outputs", [])))
    table.add_row("parameters", f"{report.params:,} ({s.get('param_bytes', 0) / 1024:,.1f} KiB)")
    ops = report.op_counts
    top = ", ".join(f"{op} {n}" for op, n in list(ops.items())[:12])
    more = f", ... ({len(ops) - 12} more types)" if len(ops) > 12 else ""
    table.add_row("nodes", f"{s.get('nodes')}: {top}{more}")
    console.print(table)
    p = report.parity
    from dlbench.registry import VIA
    from dlbench.registry import backends as backend_registry

    rec = {
        "backend": f"{report.source}{VIA}{backend_registry.onnx_runtime()}",
        "mode": report.exporter,
        **p,
    }
    ptable = Table(
        title=(
            f"parity: ONNX Runtime vs {report.source} on batches of {p.get('batch_sizes')} "
            f"(ok when max abs diff <= {p.get('tolerance'):g} x output scale)"
        )
    )
    for col in ("runs", "exporter", "max abs diff", "max rel diff", "argmax agree", "status"):
        ptable.add_column(col, justify="right" if "diff" in col or "agree" in col else "left")
    ptable.add_row(*format_rows([rec])[0], style=None if p.get("ok") else "bold red")
    console.print(ptable)


def cli_main(args: argparse.Namespace, console: Any) -> int:
    """Export, print, write ``--json``; 0 when parity holds (or ``--force``), 1 otherwise."""
    from dlbench.execution.results import write_atomic
    from dlbench.export.errors import ExportParityError

    try:
        report = export_from_args(args)
    except ExportParityError as exc:
        if exc.report is not None:
            print_report(exc.report, console)
            if args.json_out:
                write_atomic(args.json_out, exc.report.to_dict())
        console.print(f"[bold red]PARITY FAILED[/] {exc}")
        return 1
    print_report(report, console)
    if args.json_out:
        write_atomic(args.json_out, report.to_dict())
    if not report.ok:
        console.print(
            f"[bold yellow]warning:[/] parity failed, kept because of --force: {report.path}"
        )
    else:
        console.print(f"Exported [cyan]{report.path}[/]")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    exp = sub.add_parser(
        "export", help="export a model to ONNX from a framework; check it in ONNX Runtime"
    )
    add_arguments(exp)


def command(args: argparse.Namespace) -> int:
    return cli_main(args, make_console())
