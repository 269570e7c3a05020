"""Energy meters read around a measured loop, and the figures derived from them.

Two meters, behind one small interface (:class:`EnergyMeter`):

* :class:`RaplMeter`: CPU package and DRAM energy from the Linux powercap sysfs tree
  (``/sys/class/powercap/intel-rapl:*``; AMD Zen CPUs appear under the same name on kernels
  that support them). Counters are in microjoules and wrap at ``max_energy_range_uj``; a
  wrap between two reads is corrected. RAPL covers the CPU package(s) and DRAM, not the whole
  machine (no disks, fans, PSU losses, GPUs).
* :class:`NvmlMeter`: GPU board energy from NVML's total-energy counter (``nvidia-ml-py``,
  optional, imported on first use). GPUs without the counter (before Volta) fall back to
  integrating power samples taken on a background thread.

Each meter says why it is unavailable (no powercap tree, permission denied -- the usual case
in containers and, since Linux 5.10, for non-root users --, no NVML, no GPU); the record of a
cell then holds ``null`` with that reason, never a made-up number.

Meters are read *around* the measured loop, never inside a timed call::

    monitor = EnergyMonitor.default()              # RAPL + NVML, whichever is readable
    baseline = monitor.idle(2.0)                    # optional: S seconds idle first
    with monitor.measure() as m:                    # reads every meter before and after
        run_the_timed_loop()
    record = energy_record(m.reading, samples=n_calls * batch_size, baseline=baseline,
                           price_per_hour=1.20, carbon_intensity=350)

Training: ``energy_record(reading, samples, steps=n_steps, epochs=n_epochs)`` adds joules per
step and per epoch.

Nothing here imports a framework or ``pynvml`` at import time.
"""

from __future__ import annotations

from dlbench.execution.energy.figures import (
    Baseline,
    co2_per_million_samples,
    cost_per_million_samples,
    energy_record,
    joules_per_epoch,
    joules_per_sample,
    joules_per_step,
    net_joules,
    per_unit,
    schema,
)
from dlbench.execution.energy.meter import (
    J_PER_KWH,
    POWERCAP_ROOT,
    EnergyMeter,
    EnergyReading,
    average_watts,
    combine,
    reading_from_counters,
)
from dlbench.execution.energy.monitor import EnergyMonitor
from dlbench.execution.energy.nvml import (  # noqa: F401  (_PowerSampler: for tests)
    NvmlMeter,
    _PowerSampler,
    visible_gpu_indices,
)
from dlbench.execution.energy.rapl import RaplMeter, unwrap_delta

__all__ = [
    "J_PER_KWH",
    "POWERCAP_ROOT",
    "Baseline",
    "EnergyMeter",
    "EnergyMonitor",
    "EnergyReading",
    "NvmlMeter",
    "RaplMeter",
    "average_watts",
    "combine",
    "co2_per_million_samples",
    "cost_per_million_samples",
    "energy_record",
    "joules_per_epoch",
    "joules_per_sample",
    "joules_per_step",
    "net_joules",
    "per_unit",
    "reading_from_counters",
    "schema",
    "unwrap_delta",
    "visible_gpu_indices",
]
