"""Requested settings are verified after the framework starts; one not in force is a warning
and a fairness flag in the result, an error under strict (issue 21)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import pytest

from dlbench.analysis import settings_check as sc
from dlbench.errors import BackendError


def test_not_in_force_compares_requests_with_what_is_in_force() -> None:
    ok = {"intra_op_threads": 2, "intra_op_threads_in_force": 2, "inter_op_threads": None}
    assert sc.not_in_force(ok) == {}
    bad = {
        "intra_op_threads": 1,
        "intra_op_threads_in_force": 8,
        "intra_op_threads_error": "Intra op parallelism cannot be modified after initialization.",
        "inter_op_threads": 2,
        "inter_op_threads_error": "already set to 4 in this process",
        "precision": "float32",
        "tf32": True,
    }
    got = sc.not_in_force(bad)
    assert set(got) == {"intra_op_threads", "inter_op_threads", "precision"}
    assert "requested 1, in force 8" in got["intra_op_threads"]
    assert "after initialization" in got["intra_op_threads"]
    assert "could not be applied" in got["inter_op_threads"]


def test_verify_warns_or_raises_under_strict(monkeypatch) -> None:
    bad = {"intra_op_threads": 1, "intra_op_threads_in_force": 4}
    with pytest.warns(sc.SettingsNotInForceWarning, match="'x'.*intra_op_threads"):
        assert sc.verify("x", bad) == {"intra_op_threads": "requested 1, in force 4"}
    with pytest.raises(sc.SettingsNotInForceError, match="strict") as info:
        sc.verify("x", bad, strict=True)
    assert isinstance(info.value, BackendError)
    monkeypatch.setenv(sc.STRICT_ENV, "1")
    with pytest.raises(sc.SettingsNotInForceError):
        sc.verify("x", bad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sc.verify("x", {"intra_op_threads": 1, "intra_op_threads_in_force": 1}) == {}


def test_run_warnings_from_a_result_document() -> None:
    doc = {
        "backends": {
            "tensorflow": {
                "cpu": {
                    "settings": {"not_in_force": {"intra_op_threads": "requested 1, in force 8"}}
                }
            },
            "torch": {"cpu": {"settings": {"not_in_force": {}}}},
        }
    }
    (w,) = sc.run_warnings(doc)
    assert w.startswith("SETTINGS NOT IN FORCE for tensorflow on cpu: intra_op_threads")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_tensorflow_threads_after_a_keras_model_are_flagged() -> None:
    pytest.importorskip("tensorflow")
    r = _run(
        """
        import os, warnings
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import keras, numpy as np
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])(np.zeros((1, 4)))
        import dlbench
        from dlbench.analysis.settings_check import (
            SettingsNotInForceError, SettingsNotInForceWarning)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            backend = dlbench.get_backend("tensorflow", intra_op_threads=1)
        assert any(issubclass(w.category, SettingsNotInForceWarning) for w in caught), caught
        flag = backend.settings()["not_in_force"]
        assert "intra_op_threads" in flag, flag
        os.environ["DLBENCH_STRICT"] = "1"
        try:
            dlbench.get_backend("tensorflow", intra_op_threads=1)
        except SettingsNotInForceError as e:
            print("STRICT", e)
        print("FLAG", flag)
        """
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "STRICT" in r.stdout and "intra_op_threads" in r.stdout


def test_tensorflow_threads_set_first_are_in_force() -> None:
    pytest.importorskip("tensorflow")
    r = _run(
        """
        import os, warnings
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        warnings.simplefilter("error")
        import dlbench
        backend = dlbench.get_backend("tensorflow", intra_op_threads=1, inter_op_threads=1)
        s = backend.settings()
        assert s["not_in_force"] == {} and s["intra_op_threads_in_force"] == 1, s
        print("OK")
        """
    )
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-3000:]


def test_torch_inter_op_threads_set_twice_is_flagged() -> None:
    pytest.importorskip("torch")
    r = _run(
        """
        import warnings
        import dlbench
        dlbench.get_backend("torch", inter_op_threads=2)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            backend = dlbench.get_backend("torch", inter_op_threads=3)
        assert caught, "no warning"
        print("FLAG", backend.settings()["not_in_force"])
        """
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "inter_op_threads" in r.stdout and "requested 3" in r.stdout


def test_jax_intra_threads_without_xla_flags_are_flagged() -> None:
    pytest.importorskip("jax")
    r = _run(
        """
        import os, warnings
        os.environ.pop("XLA_FLAGS", None)
        import dlbench
        n = len(os.sched_getaffinity(0))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            backend = dlbench.get_backend("jax", intra_op_threads=n + 1)
        print("FLAG", backend.settings()["not_in_force"], len(caught))
        """
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "intra_op_threads" in r.stdout and "requested" in r.stdout


LIAR = textwrap.dedent(
    """
    from dlbench.backends.numpy.backend import NumpyBackend
    from dlbench.registry import backends

    class LiarBackend(NumpyBackend):
        name = "liar"

        def settings(self):
            s = super().settings()
            s["intra_op_threads_in_force"] = 99  # as if the framework ignored the request
            from dlbench.analysis.settings_check import not_in_force
            s["not_in_force"] = not_in_force(s)
            return s

    if "liar" not in backends:
        backends.register("liar", LiarBackend)
    """
)


def test_run_warns_and_records_settings_not_in_force(tmp_path, monkeypatch) -> None:
    import dlbench
    from dlbench.execution.config import BenchmarkConfig

    (tmp_path / "liar_plugin.py").write_text(LIAR)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)  # prepended: workers import this process's dlbench
    fast = {"warmup_min": 1, "warmup_max": 2, "min_iters": 3, "min_time": 0.0, "max_time": 5.0}
    cfg = BenchmarkConfig(
        backends=["liar"],
        scenarios=["throughput"],
        batch_sizes=[2],
        stop_rule=fast,
        cell_timeout=60,
        intra_op_threads=1,
    )
    try:
        doc = dlbench.run(cfg, plugins=["liar_plugin"], out=tmp_path / "r.json")
    finally:
        dlbench.registry.backends.unregister("liar")
    flag = doc["backends"]["liar"]["cpu"]["settings"]["not_in_force"]
    assert flag == {"intra_op_threads": "requested 1, in force 99"}
    assert any(w.startswith("SETTINGS NOT IN FORCE for liar on cpu") for w in doc["warnings"])
