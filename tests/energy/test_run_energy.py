"""Energy through a real run: the worker reads the meters around each timed loop and writes the
cell's energy record, cost and CO2 included; a meter that cannot be read says why in every cell."""

from __future__ import annotations

import threading
import time

import pytest

import dlbench
from dlbench.execution.config import BenchmarkConfig

FAST = {"min_iters": 5, "min_time": 0.3, "warmup_min": 1, "warmup_max": 3, "warmup_time": 0.05}
WATTS = 40.0


def _config(**kw):
    base = {
        "backends": ["numpy"],
        "scenarios": ["latency", "throughput", "accuracy"],
        "batch_sizes": [8],
        "stop_rule": FAST,
        "cell_timeout": 120,
        "accuracy_limit": 64,
    }
    base.update(kw)
    return BenchmarkConfig(**base)


def test_a_counter_that_moves_gives_joules_per_sample_cost_and_co2(tmp_path, monkeypatch):
    """A fake package counter advanced at 40 W by a thread of this process, read by the worker."""
    zone = tmp_path / "powercap" / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text(str(2**40) + "\n")
    counter = zone / "energy_uj"
    counter.write_text("0\n")
    stop = threading.Event()
    t0 = time.monotonic()

    def tick() -> None:
        while not stop.is_set():
            uj = int((time.monotonic() - t0) * WATTS * 1e6)
            tmp = zone / "energy_uj.tmp"
            tmp.write_text(f"{uj}\n")
            tmp.replace(counter)
            time.sleep(0.002)

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    monkeypatch.setenv("DLBENCH_POWERCAP_ROOT", str(tmp_path / "powercap"))
    try:
        doc = dlbench.run(_config(price_per_hour=3.6, carbon_intensity=500.0))
    finally:
        stop.set()
        thread.join()
    by_id = {c["scenario"]: c for c in doc["cells"]}
    for scenario in ("latency", "throughput"):
        e = by_id[scenario]["energy"]
        assert e["available"] and e["reason"] is None, e
        assert e["watts"] == pytest.approx(WATTS, rel=0.15)
        assert e["joules_per_sample"] == pytest.approx(e["joules"] / e["samples"])
        timing = by_id[scenario]["timing"]
        assert e["samples"] == timing["n"] * timing["batch_size"]
        # $3.6/h = $0.001/s: cost per million samples = 1e6 * 0.001 / throughput
        assert e["cost"]["usd_per_million_samples"] == pytest.approx(1e3 / timing["throughput"])
        # J/sample x 1e6 samples / 3.6e6 J/kWh x 500 g/kWh
        assert e["co2"]["g_per_million_samples"] == pytest.approx(
            e["joules_per_sample"] * 1e6 / 3.6e6 * 500.0
        )
    acc = by_id["accuracy"]["energy"]
    assert not acc["available"] and "timed loops only" in acc["reason"]


def test_no_readable_meter_says_why_in_every_timed_cell(tmp_path, monkeypatch):
    monkeypatch.setenv("DLBENCH_POWERCAP_ROOT", str(tmp_path / "absent"))
    doc = dlbench.run(_config(scenarios=["latency"]))
    (cell,) = doc["cells"]
    assert cell["status"] == "ok"
    e = cell["energy"]
    assert e["available"] is False and e["joules_per_sample"] is None
    assert "no powercap sysfs tree" in e["reason"] and str(tmp_path / "absent") in e["reason"]


def test_training_reports_joules_per_step_and_epoch(tmp_path, monkeypatch):
    import importlib.util

    trainer = next(
        (f for f in ("jax", "torch", "tensorflow") if importlib.util.find_spec(f) is not None), None
    )
    if trainer is None:
        pytest.skip("needs torch, tensorflow or jax")
    jsonschema = pytest.importorskip("jsonschema")
    from dlbench.execution import results
    from dlbench.train import train

    monkeypatch.setenv("DLBENCH_POWERCAP_ROOT", str(tmp_path / "absent"))
    doc = train({"epochs": 2, "intra_op_threads": 1}, backends=[trainer])
    run = doc["backends"][trainer]["runs"][0]
    e = run["energy"]
    assert e["steps"] == run["steps"] and e["epochs"] == 2
    assert e["samples"] == run["steps"] * run["batch_size"]
    assert e["joules_per_step"] is None and "no powercap sysfs tree" in e["reason"]
    jsonschema.validate(doc, results.train_schema())


def test_combine_adds_disjoint_windows_and_keeps_a_missing_domain_missing():
    from dlbench.execution.energy import EnergyReading, combine

    meters = {"rapl": {"available": True, "reason": None, "domains": ["rapl:package-0"]}}

    def reading(j, s):
        return EnergyReading(
            joules={"rapl:package-0": j, "rapl:package-0/dram": 0.5},
            total_joules=None if j is None else j + 0.5,
            seconds=s,
            meters=meters,
            summed=["rapl:package-0", "rapl:package-0/dram"],
            domain_reasons={} if j is not None else {"rapl:package-0": "counter stalled"},
        )

    both = combine([reading(1.0, 1.0), reading(2.5, 2.0)])
    assert both.total_joules == pytest.approx(4.5) and both.seconds == pytest.approx(3.0)
    assert both.watts == pytest.approx(1.5)
    assert both.joules["rapl:package-0/dram"] == pytest.approx(1.0)
    broken = combine([reading(1.0, 1.0), reading(None, 2.0)])
    assert broken.total_joules is None and "counter stalled" in broken.reason
    assert combine([]) is None
