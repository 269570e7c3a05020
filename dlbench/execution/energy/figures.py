"""Figures derived from a reading (pure functions): joules per sample, watts, cost, CO2, the record."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Joules in one kilowatt-hour.
from dlbench.execution.energy.meter import J_PER_KWH, EnergyReading, _num, average_watts

# -- derived figures (pure) ----------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    """Idle power, measured before the cell (``--energy-baseline S``)."""

    watts: float | None
    seconds: float
    reason: str | None = None

    @classmethod
    def from_reading(cls, reading: EnergyReading) -> Baseline:
        return cls(watts=reading.watts, seconds=reading.seconds, reason=reading.reason)

    def to_dict(self) -> dict[str, Any]:
        return {"watts": self.watts, "seconds": self.seconds, "reason": self.reason}


def net_joules(joules: float | None, seconds: float, baseline_watts: float | None) -> float | None:
    """Energy above idle: ``joules - baseline_watts * seconds``. Not clamped: a negative value
    says the load is within the idle noise."""
    if not _num(joules) or not _num(baseline_watts) or not _num(seconds):
        return None
    return joules - baseline_watts * seconds  # type: ignore[operator]


def joules_per_sample(joules: float | None, samples: int | float) -> float | None:
    """Energy per sample (``None`` without energy or samples)."""
    if not _num(joules) or not _num(samples) or samples <= 0:
        return None
    return joules / samples  # type: ignore[operator]


def per_unit(joules: float | None, units: int | float | None) -> float | None:
    """Joules per step, per epoch... (``None`` when either is missing or ``units <= 0``)."""
    if units is None:
        return None
    return joules_per_sample(joules, units)


def joules_per_step(joules: float | None, steps: int | None) -> float | None:
    """Training: energy per optimizer step."""
    return per_unit(joules, steps)


def joules_per_epoch(joules: float | None, epochs: int | float | None) -> float | None:
    """Training: energy per epoch (``epochs`` may be fractional for a partial epoch)."""
    return per_unit(joules, epochs)


def cost_per_million_samples(
    price_per_hour: float | None, throughput: float | None
) -> float | None:
    """Cost (in the price's currency) of one million samples on a machine rented at
    ``price_per_hour``, at ``throughput`` samples per second."""
    if not _num(price_per_hour) or not _num(throughput) or throughput <= 0 or price_per_hour < 0:  # type: ignore[operator]
        return None
    return price_per_hour / 3600.0 / throughput * 1e6  # type: ignore[operator]


def co2_per_million_samples(
    joules_per_sample: float | None, carbon_intensity_g_per_kwh: float | None
) -> float | None:
    """Grams of CO2(eq) for one million samples: energy in kWh times the grid's intensity."""
    if not _num(joules_per_sample) or not _num(carbon_intensity_g_per_kwh):
        return None
    if carbon_intensity_g_per_kwh < 0:  # type: ignore[operator]
        return None
    return joules_per_sample * 1e6 / J_PER_KWH * carbon_intensity_g_per_kwh  # type: ignore[operator]


def energy_record(
    reading: EnergyReading | None,
    samples: int,
    *,
    baseline: Baseline | None = None,
    price_per_hour: float | None = None,
    carbon_intensity: float | None = None,
    throughput: float | None = None,
    steps: int | None = None,
    epochs: int | None = None,
) -> dict[str, Any]:
    """The ``energy`` record of one cell (``schema/energy-v1.json``).

    Args:
        reading: The window around the measured loop (``None``: energy was not measured).
        samples: Samples processed in that window (calls x batch size; training: steps x batch).
        baseline: Idle power measured before (its energy over the window is subtracted).
        price_per_hour: Machine price (USD per hour): gives ``cost.usd_per_million_samples``.
        carbon_intensity: Grid intensity (gCO2/kWh): gives ``co2.g_per_million_samples``.
        throughput: Samples per second for the cost (default ``samples / reading.seconds``).
        steps, epochs: Training: adds ``joules_per_step`` / ``joules_per_epoch``.

    Every figure that cannot be computed is ``null``, with the reason in ``reason`` (energy) or
    in the ``cost`` / ``co2`` entry.
    """
    notes: list[str] = []
    seconds = reading.seconds if reading is not None else None
    gross = reading.total_joules if reading is not None else None
    reason = "energy not measured" if reading is None else reading.reason
    net = None
    base_rec = None
    if baseline is not None:
        base_rec = baseline.to_dict()
        if gross is not None and baseline.watts is None:
            notes.append(f"idle baseline unavailable ({baseline.reason}): energy is gross")
        elif gross is not None:
            net = net_joules(gross, seconds, baseline.watts)  # type: ignore[arg-type]
    used = net if net is not None else gross
    if net is not None and net <= 0:
        used = None
        reason = (
            f"net energy {net:.3g} J is not above the idle baseline: the load is within the "
            "idle noise (no energy per sample)"
        )
        notes.append(reason)
    jps = joules_per_sample(used, samples)
    if throughput is None and seconds:
        throughput = samples / seconds if samples else None
    domains = {}
    if reading is not None:
        for d, j in reading.joules.items():
            domains[d] = {
                "joules": j,
                "watts": average_watts(j, reading.seconds),
                "summed": d in reading.summed,
                "method": reading.methods.get(d, "counter"),
                "reason": reading.domain_reasons.get(d),
            }
    rec: dict[str, Any] = {
        "available": gross is not None,
        "reason": None if used is not None else reason,
        "seconds": seconds,
        "samples": int(samples),
        "joules": gross,
        "watts": average_watts(gross, seconds),
        "net": net is not None,
        "net_joules": net,
        "joules_per_sample": jps,
        "domains": domains,
        "meters": dict(reading.meters) if reading is not None else {},
        "baseline": base_rec,
        "cost": None,
        "co2": None,
        "notes": notes,
    }
    if steps is not None:
        rec["steps"] = int(steps)
        rec["joules_per_step"] = joules_per_step(used, steps)
    if epochs is not None:
        rec["epochs"] = int(epochs)
        rec["joules_per_epoch"] = joules_per_epoch(used, epochs)
    if price_per_hour is not None:
        cost = cost_per_million_samples(price_per_hour, throughput)
        rec["cost"] = {
            "price_per_hour_usd": price_per_hour,
            "throughput": throughput,
            "usd_per_million_samples": cost,
            "reason": None if cost is not None else "no measured throughput",
        }
    if carbon_intensity is not None:
        co2 = co2_per_million_samples(jps, carbon_intensity)
        rec["co2"] = {
            "carbon_intensity_g_per_kwh": carbon_intensity,
            "g_per_million_samples": co2,
            "reason": None if co2 is not None else (reason or "no energy per sample"),
        }
    return rec


def schema() -> dict[str, Any]:
    """The JSON schema of the ``energy`` record (``schema/energy-v1.json``)."""
    import json

    return json.loads((Path(__file__).parents[1] / "schema" / "energy-v1.json").read_text())
