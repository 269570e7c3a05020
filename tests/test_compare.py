"""``dlbench compare``: nothing flagged against itself, exactly the slowed backend flagged."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import pytest

from dlbench.analysis.compare import UnfairComparisonError, compare, parse_threshold
from dlbench.errors import ConfigError
from dlbench.execution import results

_NAME = "dlbench_tests_report_docs"
if _NAME not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        _NAME, Path(__file__).parent / "report" / "docs.py"
    )
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _mod
    _spec.loader.exec_module(_mod)
docs = sys.modules[_NAME]


@pytest.fixture(scope="module")
def base():
    return docs.make_document(seed=0)


def test_run_against_itself_flags_nothing(base):
    result = compare(base, copy.deepcopy(base))
    assert result.regressions == [] and result.improvements == []
    assert {c.verdict for c in result.changes} == {"unchanged"}
    assert len(result.changes) == len(base["cells"])
    timed = [c for c in result.changes if c.ratio is not None]
    assert all(c.ratio == 1.0 and c.p_value == 1.0 for c in timed)


def test_rerun_without_change_flags_nothing(base):
    result = compare(base, docs.rerun(base, seed=7))
    assert result.regressions == [] and result.improvements == []


def test_slowed_backend_is_flagged_and_only_it(base):
    slowed = docs.rerun(base, seed=3, slow={"torch": 1.25})
    result = compare(base, slowed, threshold=0.05)
    flagged = {c.cell for c in result.regressions}
    assert flagged == {
        "torch/cpu/latency/bs1",
        "torch/cpu/throughput/bs1",
        "torch/cpu/throughput/bs8",
        "torch/cpu/throughput/bs32",
    }
    assert result.regressed_backends == ["torch/cpu"]
    assert result.improvements == []
    lat = next(c for c in result.changes if c.cell == "torch/cpu/latency/bs1")
    assert lat.ratio == pytest.approx(1.25, rel=0.05)
    assert lat.ratio_ci[0] > 1.0 and lat.p_value < 1e-6
    assert lat.stats["throughput"]["change"] < -0.1


def test_speed_up_is_an_improvement(base):
    result = compare(base, docs.rerun(base, seed=4, slow={"onnxruntime": 0.7}))
    assert {c.backend for c in result.improvements} == {"onnxruntime"}
    assert result.regressions == []


def test_change_below_threshold_is_not_a_regression(base):
    result = compare(base, docs.rerun(base, seed=5, slow={"torch": 1.03}), threshold=0.10)
    assert result.regressions == []


def test_failed_cell_and_accuracy_drop_are_regressions(base):
    other = copy.deepcopy(base)
    cell = next(c for c in other["cells"] if c["id"] == "numpy/cpu/throughput/bs8")
    cell.update(status="failed", error="worker died from SIGKILL", timing=None)
    acc = next(c for c in other["cells"] if c["id"] == "torch/cpu/accuracy/bs256")
    acc["metrics"]["accuracy"] -= 0.02
    result = compare(base, other)
    assert {c.cell for c in result.regressions} == {
        "numpy/cpu/throughput/bs8",
        "torch/cpu/accuracy/bs256",
    }


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d["environment"]["cpu"].update(model="AMD EPYC 7763"), "CPU model"),
        (lambda d: d["backends"]["torch"]["cpu"]["versions"].update(torch="2.14.0"), "torch 2.13"),
        (lambda d: d["config"].update(intra_op_threads=1), "intra_op_threads"),
        (lambda d: d["config"].update(timing_mode="end_to_end"), "timing_mode"),
        (lambda d: d["model"].update(fingerprint="other"), "fingerprint"),
        (lambda d: d["dataset"].update(name="cifar10"), "dataset name"),
    ],
)
def test_unfair_comparisons_are_refused_unless_forced(base, mutate, expected):
    other = copy.deepcopy(base)
    mutate(other)
    with pytest.raises(UnfairComparisonError, match=expected) as info:
        compare(base, other)
    assert "--force" in str(info.value)
    forced = compare(base, other, force=True)
    assert forced.forced and any(expected in d for d in forced.unfair)


def test_backend_setting_difference_is_a_note_not_a_refusal(base):
    other = copy.deepcopy(base)
    other["backends"]["torch"]["cpu"]["settings"]["mode"] = "compile"
    result = compare(base, other)
    assert any("torch/cpu settings differ: mode" in n for n in result.notes)


def test_parse_threshold():
    assert parse_threshold("5%") == pytest.approx(0.05)
    assert parse_threshold("2.5") == pytest.approx(0.025)
    with pytest.raises(ConfigError, match="Expected a threshold"):
        parse_threshold("fast")


def test_cli_exit_codes(tmp_path, base, capsys):
    from dlbench.cli import main

    a, same, slow, unfair = (tmp_path / f"{n}.json" for n in ("a", "same", "slow", "unfair"))
    results.write_atomic(a, base)
    results.write_atomic(same, docs.rerun(base, seed=11))
    results.write_atomic(slow, docs.rerun(base, seed=12, slow={"torch": 1.3}))
    other = copy.deepcopy(base)
    other["environment"]["cpu"]["model"] = "Apple M3"
    results.write_atomic(unfair, other)

    assert main(["compare", str(a), str(same)]) == 0
    assert (
        main(
            ["compare", str(a), str(slow), "--threshold", "5%", "--json", str(tmp_path / "c.json")]
        )
        == 1
    )
    out = capsys.readouterr().out
    assert "Regressed: torch/cpu" in out
    saved = results.json.loads((tmp_path / "c.json").read_text())
    assert saved["regressed_backends"] == ["torch/cpu"]
    assert main(["compare", str(a), str(unfair)]) == 2
    assert "CPU model" in capsys.readouterr().err
    assert main(["compare", str(a), str(unfair), "--force"]) == 0
    assert main(["compare", str(a), str(tmp_path / "missing.json")]) == 2
    assert "Expected a dlbench result file" in capsys.readouterr().err


# -- energy (issue 19) ---------------------------------------------------------------------------

TIMED_TORCH = {
    "torch/cpu/latency/bs1",
    "torch/cpu/throughput/bs1",
    "torch/cpu/throughput/bs8",
    "torch/cpu/throughput/bs32",
}


def test_without_energy_records_no_energy_is_compared(base):
    result = compare(base, docs.rerun(base, seed=7))
    assert not any("joules_per_sample" in c.stats for c in result.changes)
    assert not any("energy" in n for c in result.changes for n in c.notes)


def test_same_energy_flags_nothing(base):
    result = compare(docs.with_energy(base), docs.with_energy(docs.rerun(base, seed=7)))
    assert result.regressions == [] and result.improvements == []
    timed = [c for c in result.changes if c.scenario != "accuracy"]
    assert all(abs(c.stats["joules_per_sample"]["change"]) < 0.05 for c in timed)


def test_hungrier_backend_is_an_energy_regression_at_the_same_speed(base):
    a = docs.with_energy(base)
    b = docs.with_energy(docs.rerun(base, seed=7), watts={"torch": 25.0 * 1.3})
    result = compare(a, b)
    assert {c.cell for c in result.regressions} == TIMED_TORCH
    assert result.regressed_backends == ["torch/cpu"]
    lat = next(c for c in result.changes if c.cell == "torch/cpu/latency/bs1")
    assert lat.stats["joules_per_sample"]["change"] == pytest.approx(0.3, abs=0.05)
    assert any("energy per sample +" in n for n in lat.notes)
    assert lat.ratio == pytest.approx(1.0, abs=0.05)  # time did not move
    # The gate is a threshold: a wider one lets it pass; a leaner backend is an improvement.
    assert compare(a, b, energy_threshold=0.5).regressions == []
    lean = docs.with_energy(docs.rerun(base, seed=7), watts={"numpy": 15.0})
    assert {c.backend for c in compare(a, lean).improvements} == {"numpy"}


def test_energy_measured_in_one_run_only_or_differently_is_not_gated(base):
    a = docs.with_energy(base)
    none = docs.with_energy(docs.rerun(base, seed=7), available=False, watts={"torch": 99.0})
    result = compare(a, none)
    assert result.regressions == []
    lat = next(c for c in result.changes if c.cell == "torch/cpu/latency/bs1")
    assert any("measured only in a" in n and "no powercap" in n for n in lat.notes)
    net = docs.with_energy(docs.rerun(base, seed=7), baseline_watts=5.0, watts={"torch": 99.0})
    result = compare(a, net)
    assert result.regressions == []
    assert any("different domains or baselines" in n for c in result.changes for n in c.notes)


def test_cli_energy_column_and_gate(tmp_path, base, capsys, monkeypatch):
    from dlbench.cli import main

    monkeypatch.setenv("COLUMNS", "250")  # rich wraps the table to the terminal width

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    results.write_atomic(a, docs.with_energy(base))
    results.write_atomic(b, docs.with_energy(docs.rerun(base, seed=7), watts={"torch": 40.0}))
    assert main(["compare", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "energy/sample" in out and "Regressed: torch/cpu" in out
    assert "torch/cpu/latency/bs1 energy +" in out
    assert main(["compare", str(a), str(b), "--energy-threshold", "100%"]) == 0
    capsys.readouterr()
    plain = tmp_path / "plain.json"
    results.write_atomic(plain, base)
    assert main(["compare", str(plain), str(plain)]) == 0
    assert "energy/sample" not in capsys.readouterr().out
