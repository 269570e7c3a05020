"""ONNX import coverage: networks of other libraries on every backend (the README's table).

Builds each network of ``tests/onnx_import/sources.py`` with random weights in its own framework
(keras.applications via tf2onnx, Hugging Face transformers via torch.onnx, Flax via jax2onnx),
imports the ONNX file with ``dlbench.spec.from_onnx`` and runs it on torch, tensorflow, jax,
onnxruntime and the float64 NumPy reference. Each cell is the max abs difference from the
reference divided by the reference's scale (max |output|), then argmax agreement; OK when the
ratio is <= 1e-4 and argmax agrees on every sample (the parity rule). The ``source`` column
compares the reference with the source framework's own output. Prints a Markdown table.

    python benchmarks/onnx_coverage.py [--models hf_vit,keras_resnet50] [--full]

``--full`` builds the real architectures at their real input sizes (slow); the default builds
tiny configurations (32x32 or 64x64 inputs, tiny widths; the keras applications keep their
architecture, at a small input).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _sources():
    spec = importlib.util.spec_from_file_location(
        "onnx_import_sources", ROOT / "tests" / "onnx_import" / "sources.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["onnx_import_sources"] = module
    spec.loader.exec_module(module)
    return module


def _cell(rec: dict) -> str:
    if rec.get("max_abs_diff") is None:
        return f"FAIL ({rec.get('error', 'no output')[:60]})"
    ratio = rec["max_abs_diff"] / rec["output_scale"]
    verdict = "OK" if rec["ok"] else ("not informative" if not rec["informative"] else "FAIL")
    return f"{ratio:.1e}, {rec['argmax_agreement']:.0%} {verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated source names (default: all)")
    parser.add_argument("--full", action="store_true", help="real sizes instead of tiny ones")
    args = parser.parse_args()

    if importlib.util.find_spec("torch") is not None:
        import torch  # noqa: F401  - before tensorflow in one process

    src = _sources()
    names = args.models.split(",") if args.models else list(src.SOURCES)
    backends = [b for b in src.BACKENDS if b == "numpy" or importlib.util.find_spec(b)]
    print(
        "| model | exporter | params | source | "
        + " | ".join(backends)
        + " |\n|---|---|---:|---|"
        + "---|" * len(backends),
        flush=True,
    )
    failed = 0
    for name in names:
        source = src.SOURCES[name]
        missing = [m for m in source.needs if importlib.util.find_spec(m) is None]
        if missing:
            print(f"| {name} | {source.exporter} | | skipped: {', '.join(missing)} missing |")
            continue
        try:
            with contextlib.redirect_stdout(sys.stderr):  # exporters' progress lines
                result = src.coverage(name, not args.full, tuple(backends))
        except Exception as exc:  # report and go on with the next model
            failed += 1
            print(f"| {name} | {source.exporter} | | FAIL: {type(exc).__name__}: {exc} |")
            continue
        cells = [_cell(result["source"])] + [_cell(r) for r in result["records"]]
        failed += sum("FAIL" in c for c in cells)
        params = f"{result['spec'].num_params():,}"
        print(f"| {name} | {source.exporter} | {params} | " + " | ".join(cells) + " |", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
