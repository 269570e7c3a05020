"""Options dataclasses built from plain dicts (TOML tables, JSON jobs, CLI flags), strictly.

Every configurable thing in dlbench (the benchmark config, a stop rule, a scenario's options, a
backend's options, a training config) is a dataclass validated in ``__post_init__``; this module
is the one way to build one from a dict: an unknown key is a :class:`~dlbench.errors.ConfigError`
naming the keys that are accepted, never silently dropped.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Opts:
    ...     rate: float = 1.0
    >>> strict_from_dict(Opts, {"rate": 2.0}, "server option")
    Opts(rate=2.0)
    >>> strict_from_dict(Opts, {"rtae": 2.0}, "server option")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    dlbench.errors.ConfigError: Unknown server option(s) ['rtae']. Expected some of: ['rate']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

from dlbench.errors import ConfigError

T = TypeVar("T")


def field_names(cls: type) -> list[str]:
    """The init fields of dataclass ``cls``, in declaration order."""
    return [f.name for f in fields(cls) if f.init]


def strict_from_dict(cls: type[T], data: Mapping[str, Any] | None, what: str) -> T:
    """``cls(**data)``, refusing keys ``cls`` does not declare.

    Args:
        cls: A dataclass whose ``__post_init__`` validates values.
        data: The options (``None`` means all defaults).
        what: What one key is called in messages, e.g. ``"stop-rule option"``.

    Raises:
        ConfigError: ``data`` is not a mapping, or names a key ``cls`` does not have.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"Expected the {what}s to be a table/dict. Received: {data!r}")
    known = field_names(cls)
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"Unknown {what}(s) {unknown}. Expected some of: {sorted(known)}")
    return cls(**data)
