"""The ``dlbench`` command line: one module per command, all terminal printing in this package.

Exit codes: 0 success; 1 the run finished but some cells failed or a backend failed the parity
check (or a check found an error, or an error stopped the work); 2 usage or configuration error
(checked before any worker starts); 130 interrupted (Ctrl-C, or SIGTERM: handled the same way, so
a run stopped by a scheduler keeps a valid file that ``--resume`` continues). Every error is one line
``dlbench: error: <what was expected, what was received>``; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
import traceback

from dlbench.cli.args import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
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
    "import": "importer",
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
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        _module(command).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line, before or after the command
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args = parser.parse_args(argv)
    args.debug = debug
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    restore = _terminate_as_interrupt()
    try:
        return _module(args.command).command(args)
    except KeyboardInterrupt:
        print("dlbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # every error ends in one line and a documented exit code
        if args.debug:
            traceback.print_exc()
        print(f"dlbench: error: {error_text(exc)}", file=sys.stderr)
        if not args.debug and not isinstance(exc, DlbenchError):
            print("dlbench: run with --debug for the traceback", file=sys.stderr)
        return exit_code(exc)
    finally:
        restore()


def _terminate_as_interrupt():
    """Turn SIGTERM (``kill``, a scheduler, ``docker stop``) into KeyboardInterrupt, as Ctrl-C:
    the run saves its finished cells with status ``interrupted`` and exits 130. A second
    SIGTERM while that happens is ignored (SIGKILL still ends it). Returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:  # someone chose already (SIG_IGN, a host application)
        return lambda: None

    def on_term(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    return lambda: signal.signal(signal.SIGTERM, previous)


def error_text(exc: BaseException) -> str:
    """What the user reads: a dlbench error's own message; the type and message otherwise."""
    if isinstance(exc, DlbenchError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    return f"{type(exc).__name__}: {exc}"


def exit_code(exc: BaseException) -> int:
    """2 for usage and configuration errors, 1 for everything that failed while working."""
    from dlbench.errors import ConfigError, RegistryError

    return EXIT_USAGE if isinstance(exc, (ConfigError, RegistryError)) else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
