"""Reports of a result file: a self-contained HTML page, PNG figures, Markdown and CSV tables.

``import dlbench.report`` is light: matplotlib is imported only when figures are drawn.

Example:
    >>> from dlbench import report
    >>> files = report.write_report("results.json", "report/")  # doctest: +SKIP
    >>> files.html  # doctest: +SKIP
    PosixPath('report/index.html')
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ReportFiles:
    """What :func:`write_report` wrote."""

    out_dir: Path
    html: Path
    markdown: Path
    summary_csv: Path
    cells_csv: Path
    figures: dict[str, Path] = field(default_factory=dict)
    #: Panels (axes with data) per figure name.
    panels: dict[str, int] = field(default_factory=dict)


def load_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a result file; a missing or foreign file is a :class:`ConfigError` that says what
    was expected and what was received."""
    from dlbench.errors import ConfigError
    from dlbench.execution import results

    p = Path(path)
    if not p.is_file():
        what = "a folder" if p.is_dir() else "a path that does not exist"
        raise ConfigError(
            "Expected a dlbench result file (written by `dlbench run --out FILE`). "
            f"Received: {p}, {what}"
        )
    return results.load(p)


def default_out_dir(results_path: str | os.PathLike[str]) -> Path:
    """``runs/r.json`` -> ``runs/r-report``."""
    p = Path(results_path)
    return p.with_name(f"{p.stem}-report")


def write_report(
    doc_or_path: dict[str, Any] | str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
) -> ReportFiles:
    """Write ``index.html`` (self-contained), one PNG per figure, ``summary.md``,
    ``summary.csv`` and ``cells.csv`` into ``out_dir``.

    Args:
        doc_or_path: A result document or the path of a result file.
        out_dir: Folder to write into (created); default ``<results>-report`` next to the file.

    Raises:
        ConfigError: The file is missing or not a dlbench result.
        MissingFrameworkError: matplotlib is not installed (``pip install 'dlbench[report]'``).
    """
    from dlbench.errors import ConfigError
    from dlbench.report import export, figures, html

    if isinstance(doc_or_path, dict):
        doc = doc_or_path
        if out_dir is None:
            raise ConfigError("Expected an output folder for a report of an in-memory document.")
    else:
        doc = load_results(doc_or_path)
        out_dir = default_out_dir(doc_or_path) if out_dir is None else out_dir
    _check_document(doc)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    drawn = figures.build_figures(doc)
    pngs = []
    files = ReportFiles(
        out_dir=out,
        html=out / "index.html",
        markdown=out / "summary.md",
        summary_csv=out / "summary.csv",
        cells_csv=out / "cells.csv",
    )
    for fig in drawn:
        png = figures.png_bytes(fig)
        path = out / f"{fig.name}.png"
        path.write_bytes(png)
        pngs.append((fig, png))
        files.figures[fig.name] = path
        files.panels[fig.name] = fig.panels
    files.html.write_text(html.render(doc, pngs), encoding="utf-8")
    files.markdown.write_text(export.summary_markdown(doc), encoding="utf-8")
    files.summary_csv.write_text(export.summary_csv(doc), encoding="utf-8")
    files.cells_csv.write_text(export.cells_csv(doc), encoding="utf-8")
    for fig in drawn:  # free the figures' memory now
        fig.figure.clear()
    return files


def _check_document(doc: dict[str, Any]) -> None:
    from dlbench.errors import ConfigError

    missing = [
        k for k in ("config", "backends", "cells") if not isinstance(doc.get(k), (dict, list))
    ]
    if missing:
        raise ConfigError(
            f"Expected a dlbench result document with {', '.join(missing)}. "
            f"Received a document without them (keys: {sorted(doc)})"
        )


__all__ = ["ReportFiles", "default_out_dir", "write_report"]
