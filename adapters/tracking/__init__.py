"""Experiment tracking: send a result document to MLflow or TensorBoard.

Both are optional extras, imported only when asked for::

    dlbench run --mlflow                 # local store ./mlruns (pip install 'dlbench[mlflow]')
    dlbench run --mlflow http://mlflow:5000
    dlbench run --tensorboard runs/tb    # pip install 'dlbench[tensorboard]'

From Python: :func:`dlbench.adapters.tracking.mlflow.log_run` and
:func:`dlbench.adapters.tracking.tensorboard.write_events`.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from dlbench.errors import MissingFrameworkError

#: Tracker -> (module that must be importable, extra that installs it).
TRACKERS = {"mlflow": ("mlflow", "mlflow"), "tensorboard": ("tensorboard", "tensorboard")}


def require(tracker: str) -> None:
    """Raise :class:`MissingFrameworkError` naming the extra when ``tracker``'s package is absent.

    Checked without importing the package, so ``dlbench run`` can refuse before a long run.
    """
    module, extra = TRACKERS[tracker]
    if importlib.util.find_spec(module) is None:
        raise MissingFrameworkError(
            f"Expected the {module!r} package for --{tracker}. Received: it is not installed. "
            f"Install it with: pip install 'dlbench[{extra}]'"
        )


def check(mlflow_uri: str | None, tensorboard_dir: str | None) -> None:
    """Check every requested tracker is installed (``None`` = not requested)."""
    if mlflow_uri is not None:
        require("mlflow")
    if tensorboard_dir is not None:
        require("tensorboard")


def log_all(
    doc: dict[str, Any],
    result_path: str | os.PathLike[str] | None,
    *,
    mlflow_uri: str | None = None,
    tensorboard_dir: str | None = None,
    console: Any = None,
) -> dict[str, Any]:
    """Send ``doc`` to every requested tracker; returns what was written (run id, folder).

    ``mlflow_uri`` ``""`` means the default local store (``./mlruns``).
    """
    out: dict[str, Any] = {}
    if mlflow_uri is not None:
        from dlbench.adapters.tracking.mlflow import log_run

        out["mlflow"] = log_run(doc, result_path, tracking_uri=mlflow_uri or None)
        if console is not None:
            info = out["mlflow"]
            console.print(
                f"MLflow: run [cyan]{info['run_id']}[/] in experiment {info['experiment']!r} "
                f"at {info['tracking_uri']}"
            )
    if tensorboard_dir is not None:
        from dlbench.adapters.tracking.tensorboard import write_events

        out["tensorboard"] = write_events(doc, tensorboard_dir)
        if console is not None:
            console.print(
                f"TensorBoard: {len(out['tensorboard'])} event file(s) under {tensorboard_dir} "
                f"(view with: tensorboard --logdir {tensorboard_dir})"
            )
    return out
