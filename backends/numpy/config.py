"""The numpy backend's manifest (framework-free): the float64 reference interpreter."""

from __future__ import annotations

from dataclasses import dataclass

from dlbench.model.manifest import BackendManifest, BackendOptions, check_choice

_B = "dlbench.backends.numpy"


@dataclass
class NumpyOptions(BackendOptions):
    """The common options (threads, precision) and ``postprocess`` (native | numpy: the same
    thing here, a detector's float64 NumPy reference post-processing)."""

    postprocess: str = "native"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice(self.backend, "postprocess", self.postprocess, ("native", "numpy"))


MANIFEST = BackendManifest(
    name="numpy",
    requires=(),
    capabilities={"build": f"{_B}.backend:NumpyBackend", "devices": f"{_B}.backend:NumpyBackend"},
    options=NumpyOptions,
    frees_activations=True,  # its compiled program drops each value after its last reader
)
