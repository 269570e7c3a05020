"""GPU board energy from NVML's total-energy counter, or integrated power samples."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

#: Joules in one kilowatt-hour.
from dlbench.execution.energy.meter import EnergyMeter


class NvmlMeter(EnergyMeter):
    """GPU board energy from NVML (``nvidia-ml-py``; imported on first use).

    Uses ``nvmlDeviceGetTotalEnergyConsumption`` (millijoules since the driver loaded; Volta and
    newer). A GPU without it falls back to ``nvmlDeviceGetPowerUsage`` samples integrated
    (trapezoids) on a background thread every ``sample_interval_s``; that thread starts on the
    first :meth:`read` and ends at :meth:`close`.

    Args:
        indices: NVML device indices to read. Default: the GPUs named by
            ``CUDA_VISIBLE_DEVICES`` when it is set (indices, taken in NVML's PCI order, or
            ``GPU-...`` UUIDs, matched exactly), else every GPU. Pass the index of the cell's
            device so idle GPUs do not add their energy.
        sample_interval_s: Power sampling period of the fallback.
    """

    name = "nvml"

    def __init__(
        self, indices: Sequence[int] | None = None, *, sample_interval_s: float = 0.05
    ) -> None:
        super().__init__()
        self.indices = None if indices is None else list(indices)
        self.sample_interval_s = sample_interval_s
        self._nvml: Any = None
        self._handles: dict[str, Any] = {}
        self._methods: dict[str, str] = {}
        self._sampler: _PowerSampler | None = None

    def _probe(self) -> str | None:
        try:
            import pynvml  # nvidia-ml-py
        except ImportError:
            return "nvidia-ml-py is not installed (pip install nvidia-ml-py): GPU energy not read"
        try:
            pynvml.nvmlInit()
        except Exception as e:
            return f"NVML could not start ({_nvml_error(e)}): no NVIDIA driver or GPU visible"
        self._nvml = pynvml
        try:
            count = int(pynvml.nvmlDeviceGetCount())
        except Exception as e:
            return f"NVML could not count GPUs: {_nvml_error(e)}"
        indices = self.indices
        if indices is None:
            indices = visible_gpu_indices(
                os.environ.get("CUDA_VISIBLE_DEVICES"), count, lambda i: _nvml_uuid(pynvml, i)
            )
        if count == 0 or not indices:
            return "no NVIDIA GPU visible to NVML"
        errors = []
        for i in indices:
            name = f"gpu{i}"
            try:
                h = pynvml.nvmlDeviceGetHandleByIndex(i)
            except Exception as e:
                errors.append(f"{name}: {_nvml_error(e)}")
                continue
            try:
                pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
                self._methods[name] = "counter"
            except Exception:
                try:
                    pynvml.nvmlDeviceGetPowerUsage(h)
                    self._methods[name] = "power-sampling"
                except Exception as e:
                    errors.append(f"{name}: neither energy counter nor power reading: {e}")
                    continue
            self._handles[name] = h
        if not self._handles:
            return "no GPU energy reading through NVML: " + "; ".join(errors)
        return None

    def domains(self) -> list[str]:
        self._ensure_probed()
        return list(self._handles)

    def method(self, domain: str) -> str:
        self._ensure_probed()
        return self._methods.get(domain, "counter")

    def _read_raw(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        sampled = {n: h for n, h in self._handles.items() if self._methods[n] == "power-sampling"}
        if sampled and self._sampler is None:
            self._sampler = _PowerSampler(
                {n: self._power_reader(h) for n, h in sampled.items()}, self.sample_interval_s
            )
            self._sampler.start()
        for name, h in self._handles.items():
            if name in sampled:
                assert self._sampler is not None
                out[name] = self._sampler.joules(name)
                if out[name] is None:
                    self.domain_reasons[name] = self._sampler.errors.get(name, "no power sample")
                continue
            try:
                out[name] = float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(h)) * 1e-3
            except Exception as e:
                self.domain_reasons[name] = f"energy counter read failed: {_nvml_error(e)}"
                out[name] = None
        return out

    def _power_reader(self, handle: Any) -> Callable[[], float]:
        return lambda: float(self._nvml.nvmlDeviceGetPowerUsage(handle)) * 1e-3  # mW -> W

    def close(self) -> None:
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
            self._nvml = None
            self._handles = {}
            self._probed = False  # a later use probes (and initialises NVML) again


def _nvml_uuid(pynvml: Any, index: int) -> str:
    uuid = pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(index))
    return uuid.decode() if isinstance(uuid, bytes) else str(uuid)


def visible_gpu_indices(
    visible: str | None, count: int, uuid_of: Callable[[int], str] | None = None
) -> list[int]:
    """NVML indices of the GPUs that ``CUDA_VISIBLE_DEVICES`` (``visible``) names.

    ``None`` or unparsable (MIG instances included: NVML reads energy per board): every GPU.
    Integers are taken as NVML indices (exact when ``CUDA_DEVICE_ORDER=PCI_BUS_ID``);
    ``GPU-...`` UUIDs (or their prefixes) are matched. An empty value hides every GPU.
    """
    if visible is None:
        return list(range(count))
    items = [v.strip() for v in visible.split(",") if v.strip()]
    out: list[int] = []
    for item in items:
        if item.lstrip("-").isdigit():
            i = int(item)
            if i < 0:
                break  # CUDA ignores everything from the first invalid entry
            if i < count and i not in out:
                out.append(i)
        elif item.startswith("GPU-") and uuid_of is not None:
            for i in range(count):
                with contextlib.suppress(Exception):
                    if uuid_of(i).startswith(item) and i not in out:
                        out.append(i)
                        break
        else:
            return list(range(count))
    return out


def _nvml_error(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


class _PowerSampler:
    """Integrates watts sampled every ``interval`` seconds into joules (trapezoids)."""

    def __init__(
        self,
        readers: dict[str, Callable[[], float]],
        interval: float,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.readers, self.interval, self.clock = readers, interval, clock
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, float]] = {}
        self._joules: dict[str, float] = dict.fromkeys(readers, 0.0)
        self.errors: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dlbench-power", daemon=True)
        self.sample()

    def sample(self) -> None:
        for name, read in self.readers.items():
            try:
                w = read()
            except Exception as e:
                self.errors[name] = f"power read failed: {type(e).__name__}: {e}"
                continue
            t = self.clock()
            with self._lock:
                if name in self._last:
                    t0, w0 = self._last[name]
                    self._joules[name] += 0.5 * (w0 + w) * (t - t0)
                self._last[name] = (t, w)

    def joules(self, name: str) -> float | None:
        self.sample()
        with self._lock:
            return self._joules[name] if name in self._last else None

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
