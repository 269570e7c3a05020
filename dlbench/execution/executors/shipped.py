"""The data a Ray driver shipped with a group, served to its worker (a worker plugin).

The Ray executor writes the driver's dataset split (the transformed inputs and the targets,
sent through the object store) into the node's own temp folder and names that folder in
``DLBENCH_SHIPPED_DATA``; the worker imports this module first (``DLBENCH_WORKER_PLUGINS``), so
its ``dlbench.datasets.load`` of the run's dataset returns those arrays instead of reading
files the node may not have. Another dataset name still loads as usual. Nothing is pickled:
``inputs.npy``, ``targets.npy`` and ``info.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

ENV_VAR = "DLBENCH_SHIPPED_DATA"


def write(
    folder: Path, name: str, inputs: np.ndarray, targets: np.ndarray, info: dict[str, Any]
) -> Path:
    """Write the split of dataset ``name`` (as the config names it) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "inputs.npy", np.ascontiguousarray(inputs), allow_pickle=False)
    np.save(folder / "targets.npy", np.ascontiguousarray(targets), allow_pickle=False)
    (folder / "info.json").write_text(json.dumps({"name": name, "info": info}), encoding="utf-8")
    return folder


def read(folder: str | os.PathLike[str]) -> Any:
    """The :class:`~dlbench.data.dataset.ArrayDataset` written by :func:`write`."""
    from dlbench.data.dataset import ArrayDataset, DatasetInfo

    folder = Path(folder)
    info = json.loads((folder / "info.json").read_text(encoding="utf-8"))["info"]
    info["input_shape"] = tuple(info["input_shape"])
    info["class_names"] = tuple(info.get("class_names") or ())
    inputs = np.load(folder / "inputs.npy", allow_pickle=False)
    targets = np.load(folder / "targets.npy", allow_pickle=False)
    return ArrayDataset(inputs, targets, DatasetInfo(**info))


def _install(folder: str) -> None:
    import dlbench.datasets as datasets

    original = datasets.load
    meta = json.loads((Path(folder) / "info.json").read_text(encoding="utf-8"))
    name, shipped_split = meta["name"], meta["info"]["split"]

    def load(dataset: str, root: Any = None, split: str = "test", **kwargs: Any) -> Any:
        if dataset == name and split == shipped_split:  # another split (int8 calibration):
            return read(folder)  # read from the node's own files
        return original(dataset, root=root, split=split, **kwargs)

    datasets.load = load


if os.environ.get(ENV_VAR):
    _install(os.environ[ENV_VAR])
