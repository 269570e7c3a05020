"""Winners that are noise (issue 22): intervals on every figure, ties within noise, compare's
noise-aware verdict, the machine's load recorded and warned about."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from dlbench.analysis.compare import INCONCLUSIVE, compare
from dlbench.analysis.stats import intervals_separate, quantile_ci, relative_noise, wilson_ci
from dlbench.execution import environment, results
from dlbench.report.table import (
    COLUMNS,
    figure_flags,
    figure_text,
    summary_rows,
    winner_sentences,
)

THROUGHPUT = next(c for c in COLUMNS if c.key == "throughput")


def test_quantile_ci_covers_the_true_p99_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    true_p99 = -np.log(0.01)  # exponential(1)
    x = np.sort(rng.exponential(size=(400, 2000)), axis=1)
    hits = sum(lo <= true_p99 <= hi for lo, hi in (quantile_ci(row, 0.99) for row in x))
    assert 0.90 <= hits / 400 <= 0.99


def test_wilson_ci_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    for k, n in ((90, 100), (1, 50), (4496, 10000), (0, 20)):
        ref = scipy_stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
        lo, hi = wilson_ci(k, n)
        assert lo == pytest.approx(ref.low, abs=1e-7) and hi == pytest.approx(ref.high, abs=1e-7)


def test_intervals_separate_and_unknown_never_separates():
    assert intervals_separate((1.0, 2.0), (2.5, 3.0))
    assert not intervals_separate((1.0, 2.6), (2.5, 3.0))
    assert not intervals_separate(None, (2.5, 3.0))
    assert relative_noise({"iqr_ratio": 0.88}) == pytest.approx(0.44)


def _two_backends(docs, trust, tput_a, tput_b, sigma=0.02, n=400):
    doc = docs.make_document(backends=("torch", "onnxruntime"), batch_sizes=(8,))
    rng = np.random.default_rng(3)
    for backend, per_call in (("torch", 8 / tput_a), ("onnxruntime", 8 / tput_b)):
        samples = per_call * rng.lognormal(0.0, sigma, size=n)
        trust.set_samples(doc, f"{backend}/cpu/throughput/bs8", samples)
    return doc


def test_throughput_winner_only_when_intervals_separate(docs, trust):
    close = winner_sentences(summary_rows(_two_backends(docs, trust, 1000.0, 1010.0, sigma=0.2)))
    line = next(s for s in close if "throughput" in s)
    assert "tie within noise" in line and "better than" not in line
    far = winner_sentences(summary_rows(_two_backends(docs, trust, 1000.0, 2000.0)))
    line = next(s for s in far if "throughput" in s)
    assert line.startswith("Highest throughput: onnxruntime") and "95% CI" in line


def test_noisy_throughput_figure_is_marked_and_has_an_interval(docs, trust):
    doc = _two_backends(docs, trust, 1000.0, 2000.0, sigma=1.2)
    rows = {r["backend"]: r for r in summary_rows(doc)}
    flags = figure_flags(rows["torch"], "throughput")
    assert flags["noisy"] and flags["ci"][0] < rows["torch"]["throughput"] < flags["ci"][1]
    text = figure_text(rows["torch"], THROUGHPUT)
    assert text.endswith("~") and "±" in text
    quiet = figure_text(summary_rows(_two_backends(docs, trust, 1000.0, 2000.0))[0], THROUGHPUT)
    assert "~" not in quiet


def _noisy_pair(docs, trust, factor, sigma):
    a = docs.make_document(backends=("torch",), batch_sizes=(1,))
    rng = np.random.default_rng(5)
    trust.set_samples(a, "torch/cpu/latency/bs1", 1e-3 * rng.lognormal(0, sigma, size=3000))
    b = copy.deepcopy(a)
    trust.set_samples(
        b, "torch/cpu/latency/bs1", 1e-3 * factor * rng.lognormal(0, sigma, size=3000)
    )
    return a, b


def test_compare_calls_a_drift_within_the_noise_inconclusive(docs, trust):
    a, b = _noisy_pair(docs, trust, 1.15, sigma=1.0)  # IQR ~ 135% of the median
    change = next(c for c in compare(a, b).changes if c.cell == "torch/cpu/latency/bs1")
    assert change.p_value < 1e-3  # "significant" with thousands of samples...
    assert change.verdict == INCONCLUSIVE  # ...but within the cell's own noise


def test_compare_still_flags_a_regression_beyond_the_noise(docs, trust):
    a, b = _noisy_pair(docs, trust, 1.15, sigma=0.02)  # the same +15% on a quiet machine
    change = next(c for c in compare(a, b).changes if c.cell == "torch/cpu/latency/bs1")
    assert change.verdict == "regression"


def test_cli_compare_exit_codes_and_80_columns(tmp_path, docs, trust):
    noisy_a, noisy_b = _noisy_pair(docs, trust, 1.15, sigma=1.0)
    quiet_a, quiet_b = _noisy_pair(docs, trust, 1.15, sigma=0.02)
    paths = {}
    for name, d in (("na", noisy_a), ("nb", noisy_b), ("qa", quiet_a), ("qb", quiet_b)):
        paths[name] = tmp_path / f"{name}.json"
        results.write_atomic(paths[name], d)
    out = trust.run_cli("compare", str(paths["na"]), str(paths["nb"]))
    assert out.returncode == 0, out.stderr
    assert "inconclusive: noisy" in out.stdout and "regression" not in out.stdout.split(";")[0]
    trust.assert_fits_80(out.stdout, [c["id"] for c in noisy_a["cells"]])
    out = trust.run_cli("compare", str(paths["qa"]), str(paths["qb"]))
    assert out.returncode == 1 and "Regressed: torch/cpu" in out.stdout
    trust.assert_fits_80(out.stdout, [c["id"] for c in quiet_a["cells"]])


def _fake_machine(root, load="0.10 0.20 0.30 1/100 1", mhz=(2800, 2700), throttle=(3, 4)):
    (root / "proc").mkdir(parents=True, exist_ok=True)
    if load is not None:
        (root / "proc/loadavg").write_text(load + "\n")
    for i, f in enumerate(mhz):
        cpu = root / f"sys/devices/system/cpu/cpu{i}"
        (cpu / "cpufreq").mkdir(parents=True, exist_ok=True)
        (cpu / "cpufreq/scaling_cur_freq").write_text(f"{f * 1000}\n")
        if throttle is not None:
            (cpu / "thermal_throttle").mkdir(exist_ok=True)
            (cpu / "thermal_throttle/core_throttle_count").write_text(f"{throttle[i]}\n")
    return root


def test_machine_load_reads_proc_and_sys(tmp_path):
    load = environment.machine_load(_fake_machine(tmp_path))
    assert load["loadavg"] == [0.10, 0.20, 0.30]
    assert load["cpu_mhz"] == {"min": 2700.0, "mean": 2750.0, "max": 2800.0, "cpus": 2}
    assert load["throttle"] == {"core_throttle_count": 7}
    assert load["unavailable"] == []


def test_machine_load_says_what_is_unavailable(tmp_path):
    load = environment.machine_load(_fake_machine(tmp_path, load=None, mhz=(), throttle=None))
    assert load["loadavg"] is None and load["cpu_mhz"] is None and load["throttle"] is None
    assert len(load["unavailable"]) == 3


def test_busy_machine_and_throttling_are_noted(tmp_path):
    quiet = environment.machine_load(_fake_machine(tmp_path / "q"))
    assert environment.busy_message(quiet) is None
    busy = environment.machine_load(_fake_machine(tmp_path / "b", load="7.5 3 1 2/100 1"))
    busy["usable_cores"] = 8
    assert "BUSY MACHINE: load average 7.50" in environment.busy_message(busy)
    hot = environment.machine_load(_fake_machine(tmp_path / "h", mhz=(1400, 1300), throttle=(9, 4)))
    notes = environment.cell_load_notes(quiet, hot)
    assert any("throttled" in n and "+6" in n for n in notes)
    assert any("frequency dropped" in n for n in notes)


def test_threads_above_usable_cores_are_warned_about():
    import os

    usable = len(os.sched_getaffinity(0))
    assert environment.thread_warnings(usable, 1) == []
    (warning,) = environment.thread_warnings(usable + 3, 1)
    assert f"{usable + 3} intra-op threads requested but only {usable}" in warning
