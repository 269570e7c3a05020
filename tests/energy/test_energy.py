"""Energy meters on a fake powercap tree and a fake NVML; the derived figures; the real machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from dlbench.execution import energy as E

# -- a fake powercap tree ----------------------------------------------------------------------


def make_zone(folder: Path, name: str, uj: int | None, max_range: int | None = 2**32) -> Path:
    folder.mkdir(parents=True)
    (folder / "name").write_text(name + "\n")
    if uj is not None:
        (folder / "energy_uj").write_text(f"{uj}\n")
    if max_range is not None:
        (folder / "max_energy_range_uj").write_text(f"{max_range}\n")
    return folder


def set_uj(folder: Path, uj: int) -> None:
    (folder / "energy_uj").write_text(f"{uj}\n")


@pytest.fixture
def tree(tmp_path):
    """Two packages, each with core and dram, a psys zone and the control-type folder."""
    root = tmp_path / "powercap"
    (root / "intel-rapl").mkdir(parents=True)  # the control type: no energy_uj
    z = {
        "pkg0": make_zone(root / "intel-rapl:0", "package-0", 1_000_000),
        "core0": make_zone(root / "intel-rapl:0" / "intel-rapl:0:0", "core", 500_000),
        "dram0": make_zone(root / "intel-rapl:0" / "intel-rapl:0:1", "dram", 100_000),
        "pkg1": make_zone(root / "intel-rapl:1", "package-1", 2_000_000),
        "psys": make_zone(root / "intel-rapl:2", "psys", 0),
    }
    return root, z


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_rapl_domains_and_what_is_summed(tree):
    root, _ = tree
    m = E.RaplMeter(root)
    assert m.available() and m.why_unavailable is None
    assert m.domains() == [
        "package-0",
        "package-0/core",
        "package-0/dram",
        "package-1",
        "psys",
    ]
    # core lies inside the package and psys covers it: neither is added to the total.
    assert m.summed_domains() == ["package-0", "package-0/dram", "package-1"]


def test_rapl_reading_over_a_window(tree):
    root, z = tree
    clock = FakeClock()
    mon = E.EnergyMonitor([E.RaplMeter(root)], clock=clock)
    mon.start()
    set_uj(z["pkg0"], 1_000_000 + 30_000_000)  # +30 J
    set_uj(z["core0"], 500_000 + 20_000_000)  # +20 J (inside the package)
    set_uj(z["dram0"], 100_000 + 5_000_000)  # +5 J
    set_uj(z["pkg1"], 2_000_000 + 10_000_000)  # +10 J
    set_uj(z["psys"], 60_000_000)  # +60 J (covers everything)
    clock.t += 2.0
    r = mon.stop()
    assert r.joules["rapl:package-0"] == pytest.approx(30.0)
    assert r.joules["rapl:package-0/core"] == pytest.approx(20.0)
    assert r.total_joules == pytest.approx(45.0)  # 30 + 5 + 10: no core, no psys
    assert r.seconds == pytest.approx(2.0) and r.watts == pytest.approx(22.5)
    assert sorted(r.summed) == ["rapl:package-0", "rapl:package-0/dram", "rapl:package-1"]
    assert r.meters["rapl"]["available"] and r.reason is None


def test_rapl_wrap_around_uses_max_energy_range(tmp_path):
    root = tmp_path / "pc"
    pkg = make_zone(root / "intel-rapl:0", "package-0", 4_000_000_000, max_range=4_294_967_295)
    clock = FakeClock()
    mon = E.EnergyMonitor([E.RaplMeter(root)], clock=clock)
    mon.start()
    set_uj(pkg, 5_000_000)  # wrapped: 294_967_295 to the top, then 5 J
    clock.t += 1.0
    r = mon.stop()
    assert r.total_joules == pytest.approx((4_294_967_295 - 4_000_000_000 + 5_000_000) * 1e-6)
    assert E.unwrap_delta(10, 3, 20) == 13 and E.unwrap_delta(3, 10, 20) == 7
    assert E.unwrap_delta(None, 10, 20) == 0


def test_rapl_wrap_without_max_range_is_null_with_reason(tmp_path):
    root = tmp_path / "pc"
    pkg = make_zone(root / "intel-rapl:0", "package-0", 900, max_range=None)
    mon = E.EnergyMonitor([E.RaplMeter(root)], clock=FakeClock())
    mon.start()
    set_uj(pkg, 100)
    r = mon.stop()
    assert r.joules["rapl:package-0"] is None and r.total_joules is None
    assert "max_energy_range_uj is unknown" in r.reason


def test_poller_catches_more_than_one_wrap(tmp_path):
    """With ``poll_s`` every wrap between polls is counted (a read corrects one wrap)."""
    root = tmp_path / "pc"
    pkg = make_zone(root / "intel-rapl:0", "package-0", 0, max_range=1000)
    meter = E.RaplMeter(root)
    mon = E.EnergyMonitor([meter], clock=FakeClock())
    mon.start()
    for v in (600, 200, 800, 400):  # +600, +600, +600, +600 (two wraps)
        set_uj(pkg, v)
        mon._snapshot()  # what the poll thread does every poll_s
    r = mon.stop()
    assert r.total_joules == pytest.approx(2400e-6)
    # The thread itself runs and stops.
    mon2 = E.EnergyMonitor([meter], poll_s=0.01)
    mon2.start()
    time.sleep(0.05)
    mon2.stop()
    assert mon2._poller is None


def test_flat_layout_of_subzones(tmp_path):
    """/sys/class/powercap lists every zone at its top level too (``intel-rapl:0:0``)."""
    root = tmp_path / "pc"
    make_zone(root / "intel-rapl:0", "package-0", 10)
    make_zone(root / "intel-rapl:0:0", "dram", 10)
    make_zone(root / "intel-rapl:1", "package-1", 10)
    m = E.RaplMeter(root)
    assert m.domains() == ["package-0", "package-0/dram", "package-1"]
    assert m.summed_domains() == m.domains()


def test_missing_domains_are_left_out_and_said(tmp_path):
    root = tmp_path / "pc"
    make_zone(root / "intel-rapl:0", "package-0", 10)
    make_zone(root / "intel-rapl:0" / "intel-rapl:0:0", "dram", None)  # no energy_uj
    m = E.RaplMeter(root)
    assert m.domains() == ["package-0"]
    assert "no energy_uj" in m.skipped["package-0/dram"]


def test_no_powercap_tree(tmp_path):
    m = E.RaplMeter(tmp_path / "absent")
    assert not m.available()
    assert "no powercap sysfs tree" in m.why_unavailable
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no RAPL zones" in E.RaplMeter(empty).why_unavailable
    assert m.read() == {}


def test_permission_denied_is_the_reason(tree):
    """Tests run as root, so chmod 000 would not stop a read: the reader raises instead."""
    root, _ = tree

    def denied(path: Path) -> int:
        raise PermissionError(13, "Permission denied", str(path))

    m = E.RaplMeter(root, read_file=denied)
    assert not m.available()
    assert "permission denied" in m.why_unavailable and "root only" in m.why_unavailable
    mon = E.EnergyMonitor([m])
    with mon.measure() as meas:
        pass
    r = meas.reading
    assert r.total_joules is None and r.joules == {}
    assert "permission denied" in r.reason
    assert r.meters["rapl"] == {"available": False, "reason": m.why_unavailable, "domains": []}


def test_energy_file_that_is_a_directory(tmp_path):
    root = tmp_path / "pc"
    z = make_zone(root / "intel-rapl:0", "package-0", None)
    (z / "energy_uj").mkdir()
    m = E.RaplMeter(root)
    assert not m.available() and "could not read" in m.why_unavailable


def test_permission_lost_mid_window(tree):
    root, z = tree
    calls = {"deny": False}

    def reader(path: Path) -> int:
        if calls["deny"] and "intel-rapl:1" in str(path):
            raise PermissionError(13, "Permission denied")
        return int(path.read_text())

    mon = E.EnergyMonitor([E.RaplMeter(root, read_file=reader)], clock=FakeClock())
    mon.start()
    set_uj(z["pkg0"], 1_000_000 + 7_000_000)
    calls["deny"] = True
    r = mon.stop()
    assert r.joules["rapl:package-1"] is None
    assert "permission denied" in r.domain_reasons["rapl:package-1"]
    assert r.total_joules == pytest.approx(7.0)  # the readable package still counts
    assert r.summed == ["rapl:package-0"]


def test_counter_that_stops_is_null_with_reason(tree):
    root, z = tree
    clock = FakeClock()
    mon = E.EnergyMonitor([E.RaplMeter(root)], clock=clock)
    mon.start()
    set_uj(z["pkg0"], 1_000_000 + 3_000_000)  # only package-0 moves
    clock.t += 5.0
    r = mon.stop()
    assert r.joules["rapl:package-1"] is None
    assert "did not advance in 5 s" in r.domain_reasons["rapl:package-1"]
    assert r.total_joules == pytest.approx(3.0)
    # Every counter frozen: no energy, and the reading says why.
    mon.start()
    clock.t += 5.0
    r = mon.stop()
    assert r.total_joules is None and "did not advance" in r.reason


def test_reading_from_counters_is_pure_arithmetic():
    r = E.reading_from_counters(
        {"a": 10.0, "b": 1.0, "c": None},
        {"a": 14.0, "b": 3.0, "c": 5.0},
        2.0,
        summed=["a", "b", "c"],
    )
    assert r.joules == {"a": 4.0, "b": 2.0, "c": None}
    assert r.total_joules == 6.0 and r.watts == 3.0
    assert r.domain_reasons == {"c": "not read at the start"}
    back = E.reading_from_counters({"a": 5.0}, {"a": 4.0}, 1.0)
    assert back.total_joules is None and "backwards" in back.domain_reasons["a"]
    short = E.reading_from_counters({"a": 5.0}, {"a": 5.0}, 0.01)
    assert "shorter than its update" in short.domain_reasons["a"]


def test_monitor_without_meters_and_stop_before_start():
    mon = E.EnergyMonitor()
    with mon.measure() as m:
        pass
    assert m.reading.total_joules is None and m.reading.reason == "no energy meter configured"
    with pytest.raises(RuntimeError, match="start"):
        mon.stop()


# -- a fake NVML -------------------------------------------------------------------------------


class NVMLError(Exception):
    pass


def fake_pynvml(
    *,
    count: int = 1,
    counter: bool = True,
    init_fails: bool = False,
    energy_mj: list[int] | None = None,
    power_mw: float = 150_000.0,
) -> types.ModuleType:
    mod = types.ModuleType("pynvml")
    state = {"energy": list(energy_mj or [1_000_000] * count), "init": 0, "shutdown": 0}
    mod.state = state
    mod.NVMLError = NVMLError

    def init():
        if init_fails:
            raise NVMLError("Driver Not Loaded")
        state["init"] += 1

    mod.nvmlInit = init
    mod.nvmlShutdown = lambda: state.__setitem__("shutdown", state["shutdown"] + 1)
    mod.nvmlDeviceGetCount = lambda: count
    mod.nvmlDeviceGetHandleByIndex = lambda i: ("handle", i)

    def energy(h):
        if not counter:
            raise NVMLError("Not Supported")
        return state["energy"][h[1]]

    mod.nvmlDeviceGetTotalEnergyConsumption = energy
    mod.nvmlDeviceGetPowerUsage = lambda h: power_mw
    mod.nvmlDeviceGetUUID = lambda h: f"GPU-{h[1]}abc-uuid".encode()
    return mod


@pytest.fixture(autouse=True)
def _no_cuda_visible_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_visible_gpu_indices():
    uuid = {0: "GPU-0abc", 1: "GPU-1def", 2: "GPU-2ghi"}.__getitem__
    assert E.visible_gpu_indices(None, 3) == [0, 1, 2]
    assert E.visible_gpu_indices("2,0", 3) == [2, 0]
    assert E.visible_gpu_indices("1,-1,2", 3) == [1]  # CUDA stops at the first invalid entry
    assert E.visible_gpu_indices("", 3) == []
    assert E.visible_gpu_indices("GPU-1d", 3, uuid) == [1]
    assert E.visible_gpu_indices("MIG-xyz", 3, uuid) == [0, 1, 2]


def test_nvml_follows_cuda_visible_devices(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(count=4))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-3abc")
    assert E.NvmlMeter().domains() == ["gpu3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert E.NvmlMeter().why_unavailable == "no NVIDIA GPU visible to NVML"
    assert E.NvmlMeter(indices=[1]).domains() == ["gpu1"]  # explicit indices win


def test_nvml_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    m = E.NvmlMeter()
    assert not m.available() and "nvidia-ml-py is not installed" in m.why_unavailable


def test_nvml_no_driver_and_no_gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(init_fails=True))
    assert "no NVIDIA driver" in E.NvmlMeter().why_unavailable
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(count=0))
    assert E.NvmlMeter().why_unavailable == "no NVIDIA GPU visible to NVML"


def test_nvml_energy_counter(monkeypatch):
    fake = fake_pynvml(count=2, energy_mj=[1_000_000, 5_000_000])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    clock = FakeClock()
    meter = E.NvmlMeter()
    mon = E.EnergyMonitor([meter], clock=clock)
    mon.start()
    fake.state["energy"][0] += 250_000  # +250 J
    fake.state["energy"][1] += 50_000  # +50 J
    clock.t += 1.0
    r = mon.stop()
    assert r.joules == {"nvml:gpu0": pytest.approx(250.0), "nvml:gpu1": pytest.approx(50.0)}
    assert r.total_joules == pytest.approx(300.0) and r.watts == pytest.approx(300.0)
    assert r.methods == {"nvml:gpu0": "counter", "nvml:gpu1": "counter"}
    mon.close()
    assert fake.state["shutdown"] == 1


def test_nvml_indices_select_gpus(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(count=4))
    assert E.NvmlMeter(indices=[2]).domains() == ["gpu2"]


def test_nvml_power_sampling_fallback(monkeypatch):
    """A GPU without the energy counter: 150 W sampled for ~0.3 s gives ~45 J."""
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(counter=False, power_mw=150_000))
    meter = E.NvmlMeter(sample_interval_s=0.01)
    assert meter.method("gpu0") == "power-sampling"
    mon = E.EnergyMonitor([meter])
    with mon.measure() as m:
        time.sleep(0.3)
    r = m.reading
    assert r.methods == {"nvml:gpu0": "power-sampling"}
    assert r.total_joules == pytest.approx(150.0 * r.seconds, rel=0.05)
    mon.close()
    assert meter._sampler is None


def test_power_sampler_integrates_trapezoids():
    t = {"now": 0.0}
    watts = iter([100.0, 200.0, 200.0])
    s = E._PowerSampler({"g": lambda: next(watts)}, 1.0, clock=lambda: t["now"])
    t["now"] = 2.0
    s.sample()  # (100 + 200) / 2 * 2 s = 300 J
    t["now"] = 3.0
    assert s.joules("g") == pytest.approx(500.0)  # + 200 J


def test_rapl_and_nvml_together(tree, monkeypatch):
    root, z = tree
    fake = fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    clock = FakeClock()
    mon = E.EnergyMonitor.default(rapl_root=root)
    mon.clock = clock
    mon.start()
    set_uj(z["pkg0"], 1_000_000 + 10_000_000)
    set_uj(z["dram0"], 100_000 + 2_000_000)
    set_uj(z["pkg1"], 2_000_000 + 8_000_000)
    fake.state["energy"][0] += 80_000
    clock.t += 1.0
    r = mon.stop()
    assert r.total_joules == pytest.approx(10 + 2 + 8 + 80)
    assert set(r.meters) == {"rapl", "nvml"}


# -- derived figures -----------------------------------------------------------------------------


def test_derived_figures_arithmetic():
    assert E.joules_per_sample(10.0, 4) == 2.5
    assert E.joules_per_sample(None, 4) is None and E.joules_per_sample(1.0, 0) is None
    assert E.net_joules(100.0, 10.0, 4.0) == 60.0
    assert E.net_joules(100.0, 10.0, None) is None
    # $3.60/h at 1000 samples/s: $0.001 per second -> $1 per million samples.
    assert E.cost_per_million_samples(3.6, 1000.0) == pytest.approx(1.0)
    assert E.cost_per_million_samples(3.6, 0.0) is None
    assert E.cost_per_million_samples(None, 10.0) is None
    # 3.6 J/sample x 1e6 = 1 kWh; at 400 g/kWh -> 400 g.
    assert E.co2_per_million_samples(3.6, 400.0) == pytest.approx(400.0)
    assert E.co2_per_million_samples(None, 400.0) is None
    assert E.per_unit(50.0, 10) == 5.0 and E.per_unit(50.0, None) is None
    assert E.joules_per_step(50.0, 25) == 2.0 and E.joules_per_epoch(50.0, 2.5) == 20.0
    assert E.average_watts(10.0, 0.0) is None


def reading(total: float | None, seconds: float = 10.0) -> E.EnergyReading:
    return E.reading_from_counters(
        {"rapl:package-0": 0.0},
        {"rapl:package-0": total if total is not None else None},
        seconds,
        meters={"rapl": {"available": True, "reason": None, "domains": ["package-0"]}},
    )


def test_energy_record_full(tmp_path):
    rec = E.energy_record(
        reading(100.0),
        samples=1000,
        baseline=E.Baseline(watts=4.0, seconds=2.0),
        price_per_hour=3.6,
        carbon_intensity=400.0,
    )
    assert rec["available"] and rec["reason"] is None
    assert rec["joules"] == 100.0 and rec["watts"] == 10.0
    assert rec["net"] and rec["net_joules"] == pytest.approx(60.0)  # 100 - 4 W x 10 s
    assert rec["joules_per_sample"] == pytest.approx(0.06)
    assert rec["cost"]["throughput"] == pytest.approx(100.0)
    assert rec["cost"]["usd_per_million_samples"] == pytest.approx(10.0)
    assert rec["co2"]["g_per_million_samples"] == pytest.approx(0.06 * 1e6 / 3.6e6 * 400)
    assert rec["domains"]["rapl:package-0"]["summed"]
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(E.schema())
    jsonschema.validate(rec, E.schema())
    json.dumps(rec)


def test_energy_record_unavailable_keeps_cost_and_says_why():
    mon = E.EnergyMonitor([E.RaplMeter("/nonexistent/powercap")])
    with mon.measure() as m:
        pass
    rec = E.energy_record(m.reading, samples=10, price_per_hour=1.0, carbon_intensity=300.0,
                          throughput=50.0)  # fmt: skip
    assert not rec["available"]
    assert rec["joules"] is None and rec["joules_per_sample"] is None
    assert "no powercap sysfs tree" in rec["reason"]
    assert rec["cost"]["usd_per_million_samples"] == pytest.approx(1.0 / 3600 / 50 * 1e6)
    assert rec["co2"]["g_per_million_samples"] is None
    assert "no powercap" in rec["co2"]["reason"]
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(rec, E.schema())
    none = E.energy_record(None, samples=5)
    assert none["reason"] == "energy not measured" and none["cost"] is None


def test_energy_record_baseline_edge_cases():
    # Net at or below zero: no energy per sample, and the record says why.
    rec = E.energy_record(reading(30.0), 100, baseline=E.Baseline(watts=5.0, seconds=2.0))
    assert rec["net_joules"] == pytest.approx(-20.0) and rec["joules_per_sample"] is None
    assert "idle noise" in rec["reason"]
    # A baseline that could not be measured: gross energy, with a note.
    rec = E.energy_record(reading(30.0), 100, baseline=E.Baseline(None, 2.0, "no meter"))
    assert not rec["net"] and rec["joules_per_sample"] == pytest.approx(0.3)
    assert any("gross" in n for n in rec["notes"])


def test_energy_record_training():
    rec = E.energy_record(reading(120.0), samples=3200, steps=100, epochs=4)
    assert rec["joules_per_step"] == pytest.approx(1.2)
    assert rec["joules_per_epoch"] == pytest.approx(30.0)
    assert rec["joules_per_sample"] == pytest.approx(120.0 / 3200)


def test_idle_baseline_measures_the_sleep(tree):
    root, z = tree
    clock = FakeClock()
    mon = E.EnergyMonitor([E.RaplMeter(root)], clock=clock)

    def sleep(s: float) -> None:
        set_uj(z["pkg0"], 1_000_000 + 6_000_000)
        set_uj(z["pkg1"], 2_000_000 + 4_000_000)
        clock.t += s

    base = mon.idle(2.0, sleep=sleep)
    assert base.seconds == 2.0 and base.watts == pytest.approx(5.0) and base.reason is None


def test_a_wrong_answer_is_caught():
    """The record's arithmetic is checked, not echoed: a doubled reading changes every figure."""
    good = E.energy_record(reading(100.0), 1000, carbon_intensity=400.0)
    bad = E.energy_record(reading(200.0), 1000, carbon_intensity=400.0)
    assert bad["joules_per_sample"] != pytest.approx(good["joules_per_sample"])
    assert bad["co2"]["g_per_million_samples"] == pytest.approx(
        2 * good["co2"]["g_per_million_samples"]
    )


# -- import weight and the real machine ----------------------------------------------------------


def test_import_does_not_load_pynvml():
    code = (
        "import sys, dlbench, dlbench.execution.energy as e\n"
        "e.RaplMeter('/nonexistent')\n"
        "print('pynvml' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_real_rapl_where_readable():
    m = E.RaplMeter()
    if not m.available():
        pytest.skip(f"RAPL not readable here: {m.why_unavailable}")
    mon = E.EnergyMonitor([m])
    with mon.measure() as meas:
        end = time.perf_counter() + 0.5
        x = 0
        while time.perf_counter() < end:
            x += 1
    r = meas.reading
    assert r.total_joules is not None and r.total_joules > 0, r.reason
    assert 0.1 < r.watts < 2000


def test_real_nvml_where_readable():
    m = E.NvmlMeter()
    if not m.available():
        pytest.skip(f"NVML not readable here: {m.why_unavailable}")
    mon = E.EnergyMonitor([m])
    with mon.measure() as meas:
        time.sleep(1.0)
    mon.close()
    r = meas.reading
    assert r.total_joules is not None and 1 < r.watts < 2000, r.reason


def test_reason_on_this_machine_is_said():
    """Whatever this machine allows, the default monitor gives a number or a reason."""
    mon = E.EnergyMonitor.default()
    with mon.measure() as m:
        time.sleep(0.01)
    mon.close()
    r = m.reading
    assert (r.total_joules is not None) or (r.reason and len(r.reason) > 10)
    if os.environ.get("DLBENCH_PRINT_ENERGY"):
        print(json.dumps(r.to_dict(), indent=1))


# -- the hook in time_model ----------------------------------------------------------------------


def test_time_model_reads_the_meter_around_the_measured_loop_only():
    """``time_model(..., meter=monitor)``: start after the warm-up, stop after the last call, never
    between a call's two clock reads; the reading comes back on the Timing."""
    import importlib.util
    import re

    import numpy as np

    from dlbench.execution.measure import time_model

    spec = importlib.util.spec_from_file_location(
        "energy_measure_fakes", Path(__file__).parent.parent / "measure" / "fakes.py"
    )
    fakes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fakes)
    clock = fakes.FakeClock()
    model = fakes.FakeModel(clock, [10_000])
    log_clock = fakes.LoggingClock(clock, model.log)

    class Meter:
        def start(self) -> None:
            model.log.append("<")

        def stop(self) -> str:
            model.log.append(">")
            return "the reading"

    t = time_model(
        model,
        np.zeros((2, 1, 4, 4), np.float32),
        "compute",
        clock=log_clock,
        meter=Meter(),
        min_iters=7,
        min_time=0,
        warmup_min=3,
        warmup_min_time=0,
        warmup_max=3,
    )
    s = "".join(model.log)
    assert re.fullmatch(r"(TT)+D(TFST){3}<T(TFST){7}>", s), s
    assert t.meter_reading == "the reading" and "meter_reading" not in t.to_dict()
    assert time_model(
        model, np.zeros((2, 1, 4, 4), np.float32), clock=log_clock, min_iters=2, min_time=0,
        warmup_min=1, warmup_min_time=0, warmup_max=1,
    ).meter_reading is None  # fmt: skip


def test_laps_give_per_epoch_readings_and_stop_the_whole_window(tree):
    root, z = tree
    clock = FakeClock()
    mon = E.EnergyMonitor([E.RaplMeter(root)], clock=clock)
    mon.start()
    per_epoch = []
    for epoch in range(3):
        set_uj(z["pkg0"], 1_000_000 + sum((10, 12, 14)[: epoch + 1]) * 1_000_000)
        clock.t += 2.0
        per_epoch.append(mon.lap())
    whole = mon.stop()
    assert [r.total_joules for r in per_epoch] == pytest.approx([10.0, 12.0, 14.0])
    assert all(r.seconds == pytest.approx(2.0) for r in per_epoch)
    assert whole.total_joules == pytest.approx(36.0) and whole.seconds == pytest.approx(6.0)
    rec = E.energy_record(whole, samples=3 * 50 * 32, steps=150, epochs=3)
    assert rec["joules_per_epoch"] == pytest.approx(12.0)
    assert rec["joules_per_step"] == pytest.approx(36.0 / 150)
    with pytest.raises(RuntimeError, match="start"):
        mon.lap()


@pytest.mark.parametrize(
    "options", [{}, {"available": False}, {"baseline_watts": 5.0, "carbon_intensity": None}]
)
def test_cells_with_energy_fit_both_schemas(docs, options):
    jsonschema = pytest.importorskip("jsonschema")
    from dlbench.execution import results

    doc = docs.with_energy(docs.make_document(), **options)
    jsonschema.validate(json.loads(json.dumps(doc)), results.schema())
    energy_schema = E.schema()
    records = [c["energy"] for c in doc["cells"] if "energy" in c]
    assert records
    for rec in records:
        jsonschema.validate(rec, energy_schema)
    bad = dict(records[0], joules_per_sample=-1.0)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, energy_schema)
