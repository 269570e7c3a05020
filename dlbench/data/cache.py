"""Where dlbench keeps downloaded files: one per-user cache directory.

The directory is, in order of precedence: the ``DLBENCH_CACHE`` environment variable,
``$XDG_CACHE_HOME/dlbench``, then ``~/.cache/dlbench``. Datasets keep their files in a
sub-folder named after themselves, e.g. ``~/.cache/dlbench/cifar10``; an explicit ``root``
argument always wins over the cache.

Example:
    >>> from dlbench.data.cache import cache_dir
    >>> cache_dir("cifar10").name
    'cifar10'
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "DLBENCH_CACHE"


def cache_root() -> Path:
    """The per-user cache directory (not created)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "dlbench"


def cache_dir(*parts: str) -> Path:
    """A sub-folder of :func:`cache_root` (not created), e.g. ``cache_dir("cifar10")``."""
    return cache_root().joinpath(*parts)
