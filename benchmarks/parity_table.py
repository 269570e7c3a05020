"""The README's parity table: every zoo model x every backend and mode vs the numpy reference.

Runs ``dlbench.analysis.parity.check`` (batch of random inputs, float32, CPU) for each model and prints a
Markdown table of the max abs difference to the float64 numpy reference, marking anything out
of tolerance or with argmax disagreement. torch and TensorFlow share this process (torch is
imported first, as Keras recommends).

    python benchmarks/parity_table.py [--batch-size 256] [--models mlp,resnet20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

MODES = [
    "torch:eager",
    "torch:compile",
    "tensorflow:eager",
    "tensorflow:graph",
    "tensorflow:xla",
    "jax:jit",
    "jax:eager",
    "onnxruntime",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--models", help="comma-separated zoo names (default: all)")
    parser.add_argument("--json", help="also write the raw records here")
    args = parser.parse_args()

    import torch  # noqa: F401  - before tensorflow in one process

    from dlbench import zoo
    from dlbench.analysis.parity import check

    names = args.models.split(",") if args.models else zoo.names()
    records: dict[str, list[dict]] = {}
    for name in names:
        t0 = time.perf_counter()
        records[name] = check(name, MODES, batch_size=args.batch_size)
        print(f"# {name}: {time.perf_counter() - t0:.1f} s", flush=True)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(records, fh, indent=1)

    print(f"\n| model | params | {' | '.join(MODES)} |")
    print("|---|---:|" + "---:|" * len(MODES))
    for name, recs in records.items():
        by_mode = {f"{r['backend']}:{r['mode']}": r for r in recs}
        by_mode.update({r["backend"]: r for r in recs if r["backend"] == "onnxruntime"})
        cells = []
        for mode in MODES:
            r = by_mode.get(mode)
            if r is None or r.get("max_abs_diff") is None:
                cells.append("error" if r else "-")
                continue
            text = f"{r['max_abs_diff']:.1e}"
            if not r["ok"]:
                text += " FAIL"
            elif r["argmax_agreement"] != 1.0:
                text += f" ({r['argmax_agreement']:.1%})"
            cells.append(text)
        params = zoo.get(name).stats()["params"]
        print(f"| {name} | {params:,} | " + " | ".join(cells) + " |")
    every = [r for recs in records.values() for r in recs]
    print(
        f"\nall within tolerance: {all(r['ok'] for r in every)}; "
        f"largest output scale: {max(r['output_scale'] or 0 for r in every):.2g}"
    )


if __name__ == "__main__":
    main()
