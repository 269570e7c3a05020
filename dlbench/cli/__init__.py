"""The ``dlbench`` command line: one module per command, all terminal printing in this package.

Exit codes: 0 success; 1 the run finished but some cells failed or a backend failed the parity
check (or a check found an error); 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dlbench.cli.args import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from dlbench.errors import DlbenchError

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_FAILED", "EXIT_USAGE"]

#: command name -> the module (under dlbench.cli) with its ``add_parser(sub)`` and ``command(args)``
COMMANDS = {
    "run": "run",
    "list": "listing",
    "env": "env",
    "parity": "parity",
    "data": "data",
    "report": "report",
    "export": "export",
    "compare": "compare",
    "train": "train",
}


def _module(command: str):
    return importlib.import_module(f"dlbench.cli.{COMMANDS[command]}")


def build_parser() -> argparse.ArgumentParser:
    from dlbench import __version__

    parser = argparse.ArgumentParser(
        prog="dlbench",
        description="Benchmark the same model across PyTorch, TensorFlow, JAX and ONNX Runtime, fairly.",
    )
    parser.add_argument("--version", action="version", version=f"dlbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        _module(command).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return _module(args.command).command(args)
    except DlbenchError as exc:
        from dlbench.errors import ConfigError, RegistryError

        print(f"dlbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, (ConfigError, RegistryError)) else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
