"""Export parity for every zoo model from every source framework (the README's export table).

For each zoo model (default input shape) and each source (torch, tensorflow, jax), exports with
``dlbench.export.to_onnx`` and prints the max abs difference between ONNX Runtime and the source
model, the output scale, argmax agreement, graph size and export time as a Markdown table.

    python benchmarks/export_parity.py [--models mlp,resnet20] [--sources torch,jax]
"""

from __future__ import annotations

import argparse
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated zoo names (default: all)")
    parser.add_argument("--sources", default="torch,tensorflow,jax")
    args = parser.parse_args()

    import torch  # noqa: F401  - before tensorflow in one process

    from dlbench import zoo
    from dlbench.export import to_onnx

    names = args.models.split(",") if args.models else zoo.names()
    print(
        "| model | source (exporter) | max abs diff | output scale | argmax agreement "
        "| nodes | params | file | export s |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            for source in args.sources.split(","):
                t0 = time.perf_counter()
                r = to_onnx(zoo.get(name), f"{tmp}/{name}-{source}.onnx", source=source)
                p = r.parity
                print(
                    f"| {name} | {source} ({r.exporter}) | {p['max_abs_diff']:.1e} "
                    f"| {p['output_scale']:.2f} | {p['argmax_agreement']:.0%} "
                    f"| {sum(r.op_counts.values())} | {r.params:,} | {r.file_bytes / 2**20:.2f} MiB "
                    f"| {time.perf_counter() - t0:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
