"""Checks of a backend's op table against the op set, reusable by third-party backends.

Example:
    >>> from dlbench.backends.numpy.ops import OPS
    >>> op_table_problems(OPS)
    []
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from dlbench.model.ops import OPS as OP_SET

#: parameter names of the two op-table families (``dlbench.backends.common.optable``)
SIGNATURES = {"interpreter": ("xs", "params", "node"), "emitter": ("graph", "xs", "node")}


def _arity(fn: Any) -> int | None:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return None
    return sum(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        for p in params
    )


def op_table_problems(table: Mapping[str, Any], family: str | None = None) -> list[str]:
    """What is wrong with ``table`` (empty when nothing is): missing ops of the op set, names
    outside it, and functions that do not take the family's three positional arguments.

    Args:
        table: An op table (or any mapping of op name to function).
        family: ``"interpreter"`` or ``"emitter"``; default: the table's own ``family``.
    """
    family = family or getattr(table, "family", None)
    problems = []
    missing = sorted(set(OP_SET) - set(table))
    extra = sorted(set(table) - set(OP_SET))
    if missing:
        problems.append(f"missing ops of the op set: {missing}")
    if extra:
        problems.append(f"names outside the op set: {extra}")
    if family not in SIGNATURES:
        problems.append(f"expected family in {sorted(SIGNATURES)}. Received: {family!r}")
    for name, fn in table.items():
        n = _arity(fn)
        if n is not None and n != 3:
            problems.append(
                f"op {name!r}: expected fn{SIGNATURES.get(family, ('?',) * 3)}, "
                f"a function of 3 arguments. Received one of {n}"
            )
    return problems
