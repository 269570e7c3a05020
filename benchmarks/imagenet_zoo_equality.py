"""The ImageNet-size zoo against an independent implementation: each model at full size (224x224,
1000 classes) with the weights of Hugging Face ``transformers``' model of the same architecture
(random, every tensor drawn), outputs of dlbench's float64 NumPy reference vs transformers in
PyTorch on one image. Prints the README table.

Uses the weight mappings and configurations of ``tests/zoo_imagenet/test_imagenet_zoo.py`` (one
definition of what "the same architecture" means). Needs torch and transformers; about 4 minutes
of CPU.

    python benchmarks/imagenet_zoo_equality.py [--small] [names...]
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests" / "zoo_imagenet" / "test_imagenet_zoo.py"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="models (default: all five)")
    p.add_argument("--small", action="store_true", help="the tests' small configurations")
    args = p.parse_args()
    spec = importlib.util.spec_from_file_location("zoo_imagenet_tests", TESTS)
    t = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(t)
    from dlbench import zoo

    print("| model | params | MACs | max abs diff | output scale | relative | argmax |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.names or t.NAMES:
        opts = t.SMALL[name] if args.small else {}
        classes = 10 if args.small else 1000
        r = t._check_equal(name, classes, opts, batch=2 if args.small else 1)
        stats = zoo.get(name, num_classes=classes, weights="zeros", **opts).stats()
        print(
            f"| `{name}` | {stats['params']:,} | {stats['macs'] / 1e9:.2f} G "
            f"| {r['max_abs_diff']:.1e} | {r['output_scale']:.3g} "
            f"| {r['max_abs_diff'] / r['output_scale']:.1e} "
            f"| {r['argmax_agreement_strict']:.0%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
