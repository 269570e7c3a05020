"""A reusable backend conformance suite (pytest), in the manner of fsspec's abstract tests.

A backend's test file (or a third party's) only says which backend and options to test::

    import pytest
    from dlbench.testing import BackendConformance

    pytest.importorskip("torch")

    class TestTorchEager(BackendConformance):
        backend_name = "torch"
        backend_options = {"mode": "eager"}

Every op case of :data:`~dlbench.testing.cases.OP_CASES` and every zoo model is then checked
against the float64 NumPy reference with :func:`dlbench.analysis.parity.compare` (max abs diff within
``tolerance`` x output scale, argmax agreement 100% where the reference can rank its outputs:
a "not informative" record, whose values agreed, passes), plus the Backend/Model contract (settings
JSON-safe, versions, weight_bytes, option validation, device detection). ``slow_models`` and
``slow_ops`` mark long cases ``slow`` (deselected by default; run with ``-m slow``), e.g. for
compiled modes; ``test_model_full_batch`` (slow) runs each model on the full batch of 256.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np
import pytest

from dlbench import zoo
from dlbench.analysis.parity import compare, failed, make_batch
from dlbench.errors import ConfigError
from dlbench.model.backend import Backend, get_backend
from dlbench.testing.cases import OP_CASES, OpCase

#: models too slow for the default selection on any backend (CPU, 2 cores)
SLOW_MODELS: frozenset[str] = frozenset({"resnet56"})
#: Models too large for the default selection on any backend (detectors at 320x320: minutes per
#: compiled mode) and too large for the float64 reference at the full batch (several GB): slow
#: in ``test_model``, left out of ``test_model_full_batch``; ``tests/detection`` checks them at a
#: small input size in the default selection; likewise the ImageNet-size classifiers at 224x224
#: (``tests/zoo_imagenet`` checks them at a small configuration).
HEAVY_MODELS: frozenset[str] = frozenset(
    {
        "fcos_mobilenet_v2",
        "retinanet_mobilenet_v2",
        "resnet50",
        "mobilenet_v2_224",
        "efficientnet_b0",
        "vit_b_16",
        "convnext_tiny",
    }
)
_REFERENCE_CACHE: dict[tuple[str, int, int], tuple[np.ndarray, np.ndarray]] = {}


def reference(spec_key: str, spec: Any, batch: np.ndarray) -> np.ndarray:
    key = (spec_key, batch.shape[0], hash(batch.tobytes()))
    if key not in _REFERENCE_CACHE:
        _REFERENCE_CACHE[key] = (batch, get_backend("numpy").build(spec).predict(batch))
    return _REFERENCE_CACHE[key][1]


class BackendConformance:
    """Base class: subclass it and set ``backend_name`` (and ``backend_options``)."""

    backend_name: ClassVar[str] = ""
    backend_options: ClassVar[dict[str, Any]] = {}
    #: models run in the default selection; others get the ``slow`` mark
    slow_models: ClassVar[frozenset[str]] = SLOW_MODELS
    #: mark every op case slow (for modes whose per-model compile time is long)
    slow_ops: ClassVar[bool] = False
    tolerance: ClassVar[float] = 1e-4
    op_batch_size: ClassVar[int] = 3
    model_batch_size: ClassVar[int] = 4
    full_batch_size: ClassVar[int] = 256
    device: ClassVar[str] = "cpu"

    # -- parametrisation ---------------------------------------------------------------------

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        cls = metafunc.cls
        if "op_case" in metafunc.fixturenames:
            marks = [pytest.mark.slow] if cls.slow_ops else []
            metafunc.parametrize(
                "op_case", [pytest.param(c, id=c.id, marks=marks) for c in OP_CASES]
            )
        if "model_name" in metafunc.fixturenames:
            params = []
            full = metafunc.function.__name__ == "test_model_full_batch"
            for name in zoo.names():
                if full and name in HEAVY_MODELS:
                    continue
                slow = full or name in cls.slow_models or name in HEAVY_MODELS
                params.append(pytest.param(name, id=name, marks=[pytest.mark.slow] if slow else []))
            metafunc.parametrize("model_name", params)

    # -- fixtures ----------------------------------------------------------------------------

    @pytest.fixture
    def backend(self) -> Backend:
        return get_backend(self.backend_name, **self.backend_options)

    def _device(self, backend: Backend) -> str:
        if self.device.startswith("cuda") and "cuda" not in backend.devices():
            pytest.skip(f"{self.backend_name}: no CUDA device here")
        return self.device

    def _check(self, backend: Backend, spec: Any, batch: np.ndarray, key: str) -> dict[str, Any]:
        ref = reference(key, spec, batch)
        model = backend.build(spec, self._device(backend))
        out = model.predict(batch)
        assert out.shape == ref.shape, f"output shape {out.shape}, reference {ref.shape}"
        assert out.dtype == np.float32, f"expected float32 output, got {out.dtype}"
        result = compare(ref, out, tolerance=self.tolerance)
        # a reference that cannot rank its outputs (e.g. repeated values) is "not informative"
        # for argmax agreement; the values still had to agree, so that is a pass here
        assert not failed(result), f"{self.backend_name} {self.backend_options} on {key}: {result}"
        return result

    # -- ops ---------------------------------------------------------------------------------

    def test_op(self, backend: Backend, op_case: OpCase) -> None:
        spec = op_case.spec()
        self._check(backend, spec, op_case.batch(self.op_batch_size, seed=1), f"op:{op_case.id}")

    # -- models ------------------------------------------------------------------------------

    def test_model(self, backend: Backend, model_name: str) -> None:
        spec = zoo.get(model_name)
        batch = make_batch(spec.input_shape, self.model_batch_size, seed=0)
        self._check(backend, spec, batch, f"model:{model_name}")

    def test_model_full_batch(self, backend: Backend, model_name: str) -> None:
        """The acceptance check: batch of 256 random inputs (always marked slow)."""
        spec = zoo.get(model_name)
        batch = make_batch(spec.input_shape, self.full_batch_size, seed=0)
        self._check(backend, spec, batch, f"model:{model_name}")

    def test_variable_batch_size(self, backend: Backend) -> None:
        spec = zoo.get("mlp")
        model = backend.build(spec, self._device(backend))
        for n in (1, 5):
            x = make_batch(spec.input_shape, n, seed=n)
            ref = reference("model:mlp", spec, x)
            assert not failed(compare(ref, model.predict(x), tolerance=self.tolerance))

    # -- the Backend / Model contract ---------------------------------------------------------

    def test_settings_and_versions(self, backend: Backend) -> None:
        model = backend.build(zoo.get("mlp"), self._device(backend))
        settings = model.settings()
        json.dumps(settings)  # JSON-safe
        for key in ("intra_op_threads", "inter_op_threads", "precision", "versions"):
            assert key in settings, key
        assert settings["backend"] == self.backend_name
        assert settings["precision"] == "float32"
        versions = backend.versions()
        assert versions and all(isinstance(v, str) for v in versions.values())

    def test_weight_bytes(self, backend: Backend) -> None:
        spec = zoo.get("mlp")
        wb = backend.build(spec, self._device(backend)).weight_bytes()
        assert isinstance(wb, int) and wb >= spec.stats()["params"] * 4

    def test_split_calls_match_predict(self, backend: Backend) -> None:
        spec = zoo.get("lenet5")
        model = backend.build(spec, self._device(backend))
        x = make_batch(spec.input_shape, 2, seed=3)
        y = model.forward(model.to_device(x))
        model.sync(y)
        np.testing.assert_array_equal(model.to_numpy(y), model.predict(x))

    def test_options_validated(self) -> None:
        cls = type(get_backend(self.backend_name, **self.backend_options))
        for key in ("intra_op_threads", "inter_op_threads", "precision"):
            assert key in cls.default_options
        with pytest.raises(ConfigError):
            get_backend(self.backend_name, no_such_option=1)
        with pytest.raises(ConfigError):
            get_backend(self.backend_name, intra_op_threads=0)
        with pytest.raises(ConfigError):
            get_backend(self.backend_name, precision="float8")

    def test_devices(self, backend: Backend) -> None:
        devices = backend.devices()
        assert "cpu" in devices and set(devices) <= {"cpu", "cuda"}

    @pytest.mark.gpu
    def test_model_on_cuda(self, backend: Backend) -> None:
        if "cuda" not in backend.devices():
            pytest.skip(f"{self.backend_name}: no CUDA device here")
        spec = zoo.get("resnet20")
        batch = make_batch(spec.input_shape, 8, seed=0)
        ref = reference("model:resnet20", spec, batch)
        model = backend.build(spec, "cuda")
        x = model.to_device(batch)
        y = model.forward(x)
        model.sync(y)
        result = compare(ref, model.to_numpy(y), tolerance=self.tolerance)
        assert not failed(result), result
