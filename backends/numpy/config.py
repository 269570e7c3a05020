"""The numpy backend's manifest (framework-free): the float64 reference interpreter."""

from __future__ import annotations

from dlbench.model.manifest import BackendManifest, BackendOptions

_B = "dlbench.backends.numpy"


class NumpyOptions(BackendOptions):
    """Only the common options (threads, precision)."""


MANIFEST = BackendManifest(
    name="numpy",
    requires=(),
    capabilities={"build": f"{_B}.backend:NumpyBackend", "devices": f"{_B}.backend:NumpyBackend"},
    options=NumpyOptions,
)
