"""The runner end to end: workers, failures of every kind, the result file and --resume."""

from __future__ import annotations

import json
import os
import sys
import textwrap

import pytest

import dlbench
from dlbench.execution import results
from dlbench.execution.config import BenchmarkConfig
from dlbench.execution.runner import load_model_spec

FAST = {"warmup_min": 1, "warmup_max": 2, "min_iters": 3, "min_time": 0.0, "max_time": 5.0}

FAULTY = textwrap.dedent(
    """
    import os, signal, time
    from dlbench.backends.numpy.backend import NumpyBackend
    from dlbench.registry import backends

    class FaultyBackend(NumpyBackend):
        name = "faulty"
        default_options = {**NumpyBackend.default_options, "fail_on_batch": None, "how": "raise"}

        def build(self, spec, device="cpu"):
            if self.options["how"] == "build":
                raise RuntimeError("injected build failure")
            model = super().build(spec, device)
            fail_bs, how, forward = self.options["fail_on_batch"], self.options["how"], model.forward

            def faulty_forward(x):
                if x.shape[0] == fail_bs:
                    if how == "raise":
                        raise RuntimeError("injected failure")
                    if how == "kill":
                        os.kill(os.getpid(), signal.SIGKILL)
                    if how == "hang":
                        time.sleep(3600)
                    if how == "nan":
                        return forward(x) * float("nan")
                return forward(x)

            model.forward = faulty_forward
            return model

    if "faulty" not in backends:
        backends.register("faulty", FaultyBackend)
    """
)


@pytest.fixture
def faulty_plugin(tmp_path, monkeypatch):
    (tmp_path / "faulty_plugin.py").write_text(FAULTY)
    monkeypatch.syspath_prepend(str(tmp_path))
    # prepended, not replaced: the workers must import the same dlbench as this process
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    yield "faulty_plugin"
    dlbench.registry.backends.unregister("faulty")
    sys.modules.pop("faulty_plugin", None)


def _config(**kw):
    base = {
        "backends": ["numpy"],
        "scenarios": ["throughput"],
        "batch_sizes": [2],
        "stop_rule": FAST,
        "cell_timeout": 60,
    }
    base.update(kw)
    return BenchmarkConfig(**base)


def _validate(doc):
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(doc, results.schema())


def test_run_numpy_writes_a_valid_result(tmp_path):
    out = tmp_path / "r.json"
    doc = dlbench.run(_config(scenarios=["latency", "throughput", "accuracy"]), out=out)
    on_disk = json.loads(out.read_text())
    _validate(on_disk)
    assert on_disk["status"] == "complete"
    assert [c["status"] for c in on_disk["cells"]] == ["ok", "ok", "ok"]
    lat = on_disk["cells"][0]
    assert lat["timing"]["n"] == len(lat["timing"]["samples_s"]) >= 3
    assert on_disk["backends"]["numpy"]["cpu"]["parity"]["ok"] is True
    acc = doc["cells"][2]["metrics"]["accuracy"]
    cfg = _config()  # recomputed here: the whole split through the numpy reference
    ds = dlbench.datasets.load(cfg.dataset, split=cfg.split)
    spec = load_model_spec(cfg, ds.info.input_shape, ds.info.num_classes)
    x, y = ds.arrays()
    want = float((dlbench.get_backend("numpy").build(spec).predict(x).argmax(1) == y).mean())
    assert acc == pytest.approx(want, abs=1e-12)
    assert on_disk["model"]["fingerprint"]
    assert on_disk["environment"]["packages"]["numpy"]


@pytest.mark.parametrize(
    ("how", "expected"),
    [("raise", "RuntimeError: injected failure"), ("kill", "worker died from SIGKILL")],
)
def test_a_failing_cell_is_marked_and_the_others_are_kept(tmp_path, faulty_plugin, how, expected):
    out = tmp_path / "r.json"
    cfg = _config(
        backends=["faulty", "numpy"],
        batch_sizes=[2, 3, 4],
        backend_options={"faulty": {"fail_on_batch": 3, "how": how}},
    )
    doc = dlbench.run(cfg, out=out, plugins=[faulty_plugin])
    status = {c["id"]: (c["status"], c["error"]) for c in json.loads(out.read_text())["cells"]}
    assert status["faulty/cpu/throughput/bs2"] == ("ok", None)
    assert status["faulty/cpu/throughput/bs3"][0] == "failed"
    assert expected in status["faulty/cpu/throughput/bs3"][1]
    assert status["faulty/cpu/throughput/bs4"] == ("ok", None)  # a fresh worker went on
    assert all(status[f"numpy/cpu/throughput/bs{b}"] == ("ok", None) for b in (2, 3, 4))
    _validate(doc)


def test_a_hanging_cell_times_out(tmp_path, faulty_plugin):
    cfg = _config(
        backends=["faulty"],
        batch_sizes=[3, 2],
        cell_timeout=4,
        backend_options={"faulty": {"fail_on_batch": 3, "how": "hang"}},
    )
    doc = dlbench.run(cfg, out=tmp_path / "r.json", plugins=[faulty_plugin])
    by_id = {c["id"]: c for c in doc["cells"]}
    assert by_id["faulty/cpu/throughput/bs3"]["status"] == "failed"
    assert (
        "timed out after 4 s (cell faulty/cpu/throughput/bs3)"
        in by_id["faulty/cpu/throughput/bs3"]["error"]
    )
    assert by_id["faulty/cpu/throughput/bs2"]["status"] == "ok"


def test_a_backend_that_cannot_build_fails_its_cells_only(tmp_path, faulty_plugin):
    cfg = _config(backends=["faulty", "numpy"], backend_options={"faulty": {"how": "build"}})
    doc = dlbench.run(cfg, out=tmp_path / "r.json", plugins=[faulty_plugin])
    by_id = {c["id"]: c for c in doc["cells"]}
    assert by_id["faulty/cpu/throughput/bs2"]["status"] == "failed"
    assert (
        "could not start: RuntimeError: injected build failure"
        in by_id["faulty/cpu/throughput/bs2"]["error"]
    )
    assert doc["backends"]["faulty"]["cpu"]["status"] == "failed"
    assert by_id["numpy/cpu/throughput/bs2"]["status"] == "ok"


def test_unknown_backend_is_a_config_error():
    from dlbench.errors import RegistryError

    with pytest.raises(RegistryError, match="Unknown backend 'nope'"):
        dlbench.run(_config(backends=["nope"]))


def test_missing_framework_fails_cells_with_install_hint(tmp_path, faulty_plugin):
    from dlbench.registry import backends

    backends.register("ghost", "ghost_fw:Backend", requires=["ghost_fw_xyz"], extra="ghost")
    try:
        doc = dlbench.run(_config(backends=["ghost", "numpy"]), out=tmp_path / "r.json")
    finally:
        backends.unregister("ghost")
    by_id = {c["id"]: c for c in doc["cells"]}
    assert by_id["ghost/cpu/throughput/bs2"]["status"] == "failed"
    assert "pip install 'dlbench[ghost]'" in by_id["ghost/cpu/throughput/bs2"]["error"]
    assert by_id["numpy/cpu/throughput/bs2"]["status"] == "ok"


def test_parity_mismatch_is_flagged(tmp_path, faulty_plugin):
    cfg = _config(
        backends=["faulty"],
        parity_samples=3,
        batch_sizes=[2],
        backend_options={"faulty": {"fail_on_batch": 3, "how": "nan"}},
    )
    doc = dlbench.run(cfg, plugins=[faulty_plugin])
    assert doc["backends"]["faulty"]["cpu"]["parity"]["ok"] is False
    assert any("PARITY FAILED for faulty" in w for w in doc["warnings"])


def test_resume_skips_finished_cells(tmp_path):
    out = tmp_path / "r.json"
    cfg = _config(batch_sizes=[2, 4])
    dlbench.run(cfg, out=out)
    doc = json.loads(out.read_text())
    kept = doc["cells"][0]
    doc["cells"] = [kept]  # as if interrupted after the first cell
    doc["status"] = "interrupted"
    results.write_atomic(out, doc)
    plans = []
    dlbench.run(
        cfg, out=out, resume=True, on_event=lambda k, p: plans.append(p) if k == "plan" else None
    )
    assert plans[0]["todo"] == ["numpy/cpu/throughput/bs4"]
    final = json.loads(out.read_text())
    assert [c["id"] for c in final["cells"]] == [
        "numpy/cpu/throughput/bs2",
        "numpy/cpu/throughput/bs4",
    ]
    assert final["cells"][0] == kept  # untouched
    assert final["status"] == "complete"
    _validate(final)


def test_thread_env_is_set_before_framework_import():
    from dlbench.execution.runner import thread_env

    env = thread_env(3, 1)
    assert env["OMP_NUM_THREADS"] == "3" and env["TF_NUM_INTRAOP_THREADS"] == "3"
    assert env["TF_NUM_INTEROP_THREADS"] == "1"
    assert "xla_cpu_multi_thread_eigen=false" in thread_env(1, 1)["XLA_FLAGS"]
