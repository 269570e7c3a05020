"""Package discovery for the folder mapping of DESIGN.md.

``backends/`` installs as ``dlbench.backends`` and ``adapters/`` as ``dlbench.adapters``; no
top-level ``backends`` or ``adapters`` package may land in site-packages, so the package list is
built here with the mapped names. Everything else lives in ``pyproject.toml``.
"""

from setuptools import find_packages, setup


def _mapped(folder: str, prefix: str) -> list[str]:
    found = find_packages(include=[folder, f"{folder}.*"])
    return [prefix + name[len(folder) :] for name in found]


setup(
    packages=find_packages(include=["dlbench", "dlbench.*"])
    + _mapped("backends", "dlbench.backends")
    + _mapped("adapters", "dlbench.adapters"),
)
