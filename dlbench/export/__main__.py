"""``python -m dlbench.export``: the export as a command of its own process.

``dlbench run --via-onnx`` runs the same export as an ``export`` job of the worker entry point
(:mod:`dlbench.execution.worker`). With ``--spec FILE.json`` it exports a saved spec. It always writes ``--json`` when
given: the report, or ``{"ok": false, "error": ...}`` when the export failed.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    from dlbench.cli.export import add_arguments, cli_main
    from dlbench.errors import ConfigError, DlbenchError, RegistryError
    from dlbench.execution.results import write_atomic

    parser = argparse.ArgumentParser(prog="python -m dlbench.export")
    add_arguments(parser)
    parser.add_argument("--spec", help="a saved ModelSpec .json (instead of --model)")
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing")
    args = parser.parse_args(argv)
    if args.spec:
        args.model = args.spec
    console = Console(quiet=args.quiet)
    try:
        return cli_main(args, console)
    except DlbenchError as exc:
        if args.json_out:
            write_atomic(args.json_out, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        print(f"dlbench export: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, (ConfigError, RegistryError)) else 1
    except Exception as exc:  # an exporter's own crash: report it the same way
        if args.json_out:
            write_atomic(args.json_out, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        raise


if __name__ == "__main__":
    sys.exit(main())
