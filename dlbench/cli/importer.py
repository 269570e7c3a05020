"""``dlbench import``: convert an ONNX file into a ModelSpec (JSON + .npz) and show the mapping."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from dlbench.cli.args import EXIT_FAILED, EXIT_OK, make_console, shape


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="import an ONNX model into a ModelSpec (JSON + .npz) that every backend builds",
        description=(
            "Convert an ONNX model (opsets 13-21) into a dlbench ModelSpec: initializers become "
            "weights, constant subgraphs are folded, each node maps onto the spec op set. An "
            "unsupported op is an error listing every such op with its node names."
        ),
    )
    p.add_argument("model", help="the .onnx file")
    p.add_argument(
        "--out",
        help="output stem DIR/name: writes DIR/name.json and DIR/name.npz "
        "(default: next to the ONNX file, same name)",
    )
    p.add_argument("--name", help="name of the spec (default: the file's stem)")
    p.add_argument(
        "--input-shape",
        type=shape,
        help="per-sample input shape for symbolic axes, e.g. 3,224,224",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="also run the spec on the NumPy reference and the file in ONNX Runtime and compare",
    )


def _check(path: str, spec: Any) -> dict[str, Any]:
    from dlbench.analysis.parity import compare, make_input
    from dlbench.model.backend import get_backend
    from dlbench.registry import backends

    ort = backends.onnx_runtime()
    if ort is None:
        return {"ok": False, "error": "no backend that runs ONNX files is installed"}
    # a file exported at a fixed batch runs at that batch; token-id inputs get valid ids
    n = spec.metadata.get("onnx_import", {}).get("fixed_batch") or 4
    batch = make_input(spec, n, seed=0)
    ref = get_backend(ort).wrap(path, input_shape=spec.input_shape).predict(batch)
    out = get_backend("numpy").build(spec).predict(batch)
    return compare(ref, out)


def command(args: argparse.Namespace) -> int:
    from rich.table import Table

    from dlbench.spec import from_onnx

    spec = from_onnx(args.model, name=args.name, input_shape=args.input_shape)
    out = Path(args.out) if args.out else Path(args.model).with_suffix("")
    jpath, npath = spec.save(out)
    info = spec.metadata["onnx_import"]
    stats = spec.stats()
    console = make_console()
    console.print(
        f"Imported [bold]{args.model}[/] (opset {info['opset']}"
        f"{', ' + info['producer'] if info['producer'] else ''}) as spec [bold]{spec.name}[/]: "
        f"input {spec.inputs[0].name} (N, {', '.join(map(str, spec.input_shape))}), "
        f"output {tuple(spec.output_shape)} per sample"
    )
    table = Table(title="What was mapped")
    table.add_column("ONNX op")
    table.add_column("nodes", justify="right")
    for op, n in info["onnx_ops"].items():
        table.add_row(op, str(n))
    table.add_section()
    table.add_row("(folded constants)", str(info["folded_nodes"]))
    for pattern, n in info["fused"].items():
        table.add_row(f"(fused {pattern})", str(n))
    spec_table = Table(title="Spec ops")
    spec_table.add_column("op")
    spec_table.add_column("nodes", justify="right")
    for op, n in info["spec_ops"].items():
        spec_table.add_row(op, str(n))
    console.print(table)
    console.print(spec_table)
    console.print(
        f"{stats['params']:,} parameters, {stats['buffers']:,} buffers, "
        f"{stats['macs']:,} MACs per sample"
    )
    console.print(f"Wrote [cyan]{jpath}[/] and [cyan]{npath}[/]", soft_wrap=True)
    if args.check:
        rec = _check(args.model, spec)
        if rec.get("error"):
            console.print(f"[bold red]CHECK FAILED[/] {rec['error']}")
            return EXIT_FAILED
        verdict = "[green]ok[/]" if rec["ok"] else "[bold red]MISMATCH[/]"
        console.print(
            f"NumPy reference vs ONNX Runtime: max abs diff {rec['max_abs_diff']:.3g} "
            f"(output scale {rec['output_scale']:.3g}), argmax agreement "
            f"{rec['argmax_agreement']:.0%}: {verdict}"
        )
        if not rec["ok"]:
            return EXIT_FAILED
    return EXIT_OK
