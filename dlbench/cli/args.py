"""What every command shares: argument types, the console, exit codes."""

from __future__ import annotations

import argparse
import json
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def csv(value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {value!r}")
    return items


def csv_ints(value: str) -> list[int]:
    try:
        return [int(v) for v in csv(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 1,32,128, got {value!r}"
        ) from None


def option(value: str) -> tuple[str, str, Any]:
    """``backend.key=value`` with value parsed as JSON when possible (``true``, ``2``, ``"x"``)."""
    head, sep, raw = value.partition("=")
    backend, dot, key = head.partition(".")
    if not sep or not dot or not backend or not key:
        raise argparse.ArgumentTypeError(
            f"expected BACKEND.KEY=VALUE, e.g. torch.mode=compile; got {value!r}"
        )
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        parsed = raw
    return backend, key, parsed


def key_value(value: str) -> tuple[str, Any]:
    """``key=value`` with value parsed as JSON when possible (``true``, ``2``, ``null``)."""
    key, sep, raw = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, e.g. download=true; got {value!r}")
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        parsed = raw
    return key, parsed


def shape(value: str) -> tuple[int, ...]:
    """A per-sample shape ``3,32,32`` (positive ints)."""
    try:
        dims = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        dims = ()
    if not dims or any(d < 1 for d in dims):
        raise argparse.ArgumentTypeError(
            f"expected a per-sample shape like 3,224,224 (positive ints), got {value!r}"
        )
    return dims


def make_console():
    from rich.console import Console

    return Console(stderr=False)
