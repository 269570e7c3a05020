"""Scenarios on fake clocks: validity rules, out-of-memory shrink, the server scheduler."""

from __future__ import annotations

import math

import numpy as np
import pytest
from measure_fakes import FakeClock, FakeDataset, FakeModel

from dlbench.errors import ConfigError
from dlbench.execution.config import BenchmarkConfig
from dlbench.execution.measure import StopRule, timed_calls
from dlbench.execution.scenarios import SCENARIOS, is_oom, names, run_scenario
from dlbench.execution.scenarios.server import poisson_arrivals, search_max_rate, serve

US = 1000
QUICK = {"warmup_min_time": 0.0, "min_iters": 20, "min_time": 0.01}


def _rule(**kw):
    return StopRule(**{**QUICK, **kw})


def test_registry():
    assert names() == ["latency", "throughput", "server", "accuracy", "training"]
    for scenario in SCENARIOS.values():
        assert "Validity" in scenario.run.__doc__  # every scenario states its validity rule
    with pytest.raises(ConfigError, match="Unknown scenario 'nope'"):
        run_scenario("nope", None, None)


# -- latency / throughput validity --------------------------------------------------------------
def test_latency_valid_and_rule_recorded():
    clock = FakeClock()
    rec = run_scenario(
        "latency", FakeModel(clock, [50 * US]), FakeDataset(), stop_rule=_rule(), clock=clock
    )
    assert rec["validity"] == {
        "valid": True,
        "reasons": [],
        "notes": [],
        "rule": {"min_iters": 20, "min_time_s": 0.01, "target_ci": None},
    }
    assert rec["timing"]["batch_size"] == 1 and rec["timing"]["n"] == 200
    with pytest.raises(ConfigError, match="batch_size=1"):
        run_scenario("latency", FakeModel(clock), FakeDataset(), batch_size=4)


def test_invalid_when_a_cap_stops_the_loop_first():
    clock = FakeClock()
    rec = run_scenario(
        "throughput",
        FakeModel(clock, [50 * US]),
        FakeDataset(),
        batch_size=8,
        stop_rule=_rule(min_iters=20, min_time=1.0, max_iters=30),
        clock=clock,
    )
    v = rec["validity"]
    assert not v["valid"]
    assert any("at least 1.0 s (stopped by max_iters)" in r for r in v["reasons"])
    rec = run_scenario(
        "latency",
        FakeModel(clock, [50 * US]),
        FakeDataset(),
        stop_rule=_rule(min_iters=1000, min_time=0.01, max_time=0.01),
        clock=clock,
    )
    assert not rec["validity"]["valid"]
    assert "only 200 calls measured" in rec["validity"]["reasons"][0]


def test_invalid_when_target_ci_not_reached_and_noisy_note():
    rng = np.random.default_rng(0)
    clock = FakeClock()
    wild = (rng.lognormal(np.log(100), 1.0, 50_000) * US).astype(int)
    rec = run_scenario(
        "latency",
        FakeModel(clock, wild),
        FakeDataset(),
        stop_rule=_rule(target_ci=0.001, max_time=0.1, steady_tolerance=0.9),
        clock=clock,
    )
    v = rec["validity"]
    assert not v["valid"] and "did not narrow to 0.1%" in v["reasons"][0]
    assert any(n.startswith("noisy") for n in v["notes"])


def test_warmup_cap_is_a_note_not_invalid():
    clock = FakeClock()
    growing = [int(100 * US * 1.05**k) for k in range(40)] + [100 * US] * 10_000
    rec = run_scenario(
        "latency",
        FakeModel(clock, growing),
        FakeDataset(),
        stop_rule=_rule(warmup_max=10, steady_tolerance=0.01),
        clock=clock,
    )
    assert rec["validity"]["valid"]
    assert "warm-up stopped at its cap (warmup_max)" in rec["validity"]["notes"][0]


# -- out-of-memory -----------------------------------------------------------------------------
def _named_error(name: str, base: type[BaseException] = Exception) -> type[BaseException]:
    return type(name, (base,), {})


@pytest.mark.parametrize(
    "exc",
    [
        _named_error("OutOfMemoryError", RuntimeError)("CUDA out of memory. Tried to allocate"),
        _named_error("ResourceExhaustedError")("OOM when allocating tensor with shape[64]"),
        _named_error("XlaRuntimeError")("RESOURCE_EXHAUSTED: Out of memory allocating 4 bytes"),
        _named_error("RuntimeException")("Failed to allocate memory for requested buffer"),
        RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        MemoryError(),
        _named_error("_ArrayMemoryError", MemoryError)("Unable to allocate 8 GiB"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_is_oom_by_name_and_message(exc):
    assert is_oom(exc)


def test_is_oom_rejects_other_errors():
    assert not is_oom(RuntimeError("shape mismatch: [1, 8] vs [1, 9]"))
    assert not is_oom(ValueError("bad input"))


def test_throughput_shrinks_batch_on_oom_and_says_so():
    clock = FakeClock()
    oom = _named_error("OutOfMemoryError", RuntimeError)
    model = FakeModel(
        clock,
        [50 * US],
        raise_for_batch={64: oom("CUDA out of memory"), 32: oom("CUDA out of memory")},
    )
    rec = run_scenario(
        "throughput", model, FakeDataset(), batch_size=64, stop_rule=_rule(), clock=clock
    )
    assert rec["timing"]["batch_size"] == 16
    assert rec["oom"]["requested_batch_size"] == 64 and rec["oom"]["batch_size"] == 16
    assert [f["batch_size"] for f in rec["oom"]["failed"]] == [64, 32]
    assert "OutOfMemoryError: CUDA out of memory" in rec["oom"]["failed"][0]["error"]
    assert rec["validity"]["valid"]
    assert rec["validity"]["notes"][0].startswith("out of memory at batch 64: shrunk to batch 16")


def test_throughput_reraises_other_errors_and_oom_at_batch_one():
    clock = FakeClock()
    model = FakeModel(clock, raise_for_batch={8: RuntimeError("shape mismatch")})
    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_scenario("throughput", model, FakeDataset(), batch_size=8, stop_rule=_rule())
    model = FakeModel(clock, raise_for_batch={b: MemoryError("no") for b in (1, 2)})
    with pytest.raises(MemoryError):
        run_scenario("throughput", model, FakeDataset(), batch_size=2, stop_rule=_rule())


# -- server scheduler --------------------------------------------------------------------------
def test_poisson_arrivals():
    a = poisson_arrivals(1000.0, 20_001, seed=3)
    assert a[0] == 0 and np.all(np.diff(a) >= 0) and a.dtype == np.int64
    gaps = np.diff(a) * 1e-9
    assert gaps.mean() == pytest.approx(1e-3, rel=0.03)
    assert gaps.std() == pytest.approx(1e-3, rel=0.05)  # exponential: std == mean
    assert np.array_equal(a, poisson_arrivals(1000.0, 20_001, seed=3))
    with pytest.raises(ConfigError, match="positive arrival rate"):
        poisson_arrivals(0.0, 10)


def test_serve_matches_the_queueing_recursion():
    """FIFO, one server: finish_i = max(arrival_i, finish_{i-1}) + service_i (Lindley)."""
    clock = FakeClock()
    rng = np.random.default_rng(0)
    service = (rng.uniform(50, 150, 2000) * US).astype(int)
    model = FakeModel(clock, service)
    arrivals = poisson_arrivals(9000.0, 2000, seed=1)  # utilisation ~0.9: real queues
    calls = timed_calls(model, np.zeros((1, 1, 4, 4), np.float32), "compute", clock)
    result = serve(calls, arrivals, clock=clock, wait=clock.wait)
    expected, prev = [], 0
    for a, s in zip(arrivals, service):
        prev = max(a, prev) + s
        expected.append(prev)
    assert np.array_equal(result.finishes_ns, expected)
    assert np.array_equal(result.service_ns, service)
    lat = result.latencies_s
    assert np.all(lat >= service * 1e-9) and lat.max() > 3 * service.max() * 1e-9  # queueing
    assert result.served == result.issued == 2000
    assert result.achieved_rate == pytest.approx(result.scheduled_rate, rel=0.05)


def test_serve_cap_leaves_queries_unserved():
    clock = FakeClock()
    model = FakeModel(clock, [1000 * US])  # 1 ms per query, 10 000 queries/s arriving
    calls = timed_calls(model, np.zeros((1, 1, 4, 4), np.float32), "compute", clock)
    result = serve(
        calls, poisson_arrivals(10_000.0, 5000), clock=clock, wait=clock.wait, max_time=0.1
    )
    assert result.served == 100 and result.issued == 5000
    assert result.p99() == math.inf


def test_search_max_rate_on_a_known_curve():
    # p99 = 1 / (capacity - rate) (an M/M/1-like curve): the bound is met up to rate* = 900/s.
    capacity, bound = 1000.0, 0.01
    calls = []

    def p99_at(rate):
        calls.append(rate)
        return 1 / (capacity - rate) if rate < capacity else math.inf

    best, trials = search_max_rate(p99_at, bound, start=capacity / 2, rel_tol=0.01)
    assert 900 / 1.01 <= best <= 900
    assert all(t["ok"] == (t["rate"] <= 900) for t in trials)
    best_lo, _ = search_max_rate(p99_at, bound, start=990.0, rel_tol=0.01)  # bracket downwards
    assert 900 / 1.01 <= best_lo <= 900
    none, trials = search_max_rate(lambda r: 1.0, 0.5, start=100.0, min_rate=10.0)
    assert none is None and all(not t["ok"] for t in trials) and trials[-1]["rate"] >= 10.0
    _, trials = search_max_rate(p99_at, bound, start=500.0, max_trials=3)
    assert len(trials) == 3


def _server(clock, service_us, **kw):
    model = FakeModel(clock, [service_us * US])
    rule = _rule(min_time=0.5, max_time=5.0)
    return run_scenario(
        "server", model, FakeDataset(), stop_rule=rule, clock=clock, wait=clock.wait, **kw
    )


def test_server_valid_at_moderate_load():
    clock = FakeClock()
    rec = _server(clock, 100, server_rate=2000.0)  # 20% utilisation
    s, v = rec["server"], rec["validity"]
    assert v["valid"], v
    assert s["target_rate"] == 2000.0 and s["rate_source"] == "given"
    assert s["served"] == s["queries"] >= 1000
    assert s["achieved_rate"] == pytest.approx(2000, rel=0.1)
    assert s["p99_latency_s"] >= 100e-6 and s["search"] is None
    assert s["capacity_estimate"] == pytest.approx(10_000)
    assert rec["timing"]["n"] == s["served"] and rec["timing"]["stats"]["min"] == pytest.approx(
        1e-4
    )
    assert v["rule"]["min_queries"] == 256


def test_server_overloaded_is_invalid():
    clock = FakeClock()
    rec = _server(clock, 100, server_rate=20_000.0)  # twice the capacity
    v = rec["validity"]
    assert not v["valid"] and any(r.startswith("overloaded") for r in v["reasons"])


def test_server_bound_and_search():
    clock = FakeClock()
    rec = _server(clock, 100, server_p99_bound=0.001)
    s, v = rec["server"], rec["validity"]
    assert s["search"]["max_rate"] is not None
    assert s["rate_source"] == "the search's highest rate under the bound"
    assert s["target_rate"] == s["search"]["max_rate"]
    assert 0 < s["target_rate"] < 10_000
    assert all(
        (t["p99_s"] is not None and t["p99_s"] <= 0.001) == t["ok"] for t in s["search"]["trials"]
    )
    assert s["meets_bound"] == (s["p99_latency_s"] <= 0.001)
    assert v["valid"] == s["meets_bound"]
    rec = _server(clock, 100, server_rate=2000.0, server_p99_bound=50e-6, server_search=False)
    assert not rec["validity"]["valid"] and rec["server"]["search"] is None
    assert "exceeds the bound" in rec["validity"]["reasons"][0]


def test_server_argument_checks():
    clock = FakeClock()
    with pytest.raises(ConfigError, match="server_rate"):
        _server(clock, 100, server_rate=-1)
    with pytest.raises(ConfigError, match="server_p99_bound"):
        _server(clock, 100, server_search=True)
    with pytest.raises(ConfigError, match="batch_size=1"):
        _server(clock, 100, batch_size=2)


# -- config ------------------------------------------------------------------------------------
def test_config_server_cell_and_validation():
    cfg = BenchmarkConfig(
        backends=["numpy"],
        scenarios=["server", "throughput"],
        batch_sizes=[8, 16],
        server_rate=100.0,
        server_p99_bound=0.01,
    )
    assert [c.id for c in cfg.cells()] == [
        "numpy/cpu/server/bs1",
        "numpy/cpu/throughput/bs8",
        "numpy/cpu/throughput/bs16",
    ]
    for bad in ({"server_rate": 0}, {"server_p99_bound": "1"}, {"server_rate": True}):
        with pytest.raises(ConfigError, match="positive number or None"):
            BenchmarkConfig(backends=["numpy"], **bad)


# -- structured options: each scenario gets its own, and only those ---------------------------------
def test_each_scenario_refuses_options_it_does_not_have():
    clock = FakeClock()
    with pytest.raises(ConfigError, match=r"Unknown latency scenario option\(s\) \['limit'\]"):
        run_scenario("latency", FakeModel(clock), FakeDataset(), limit=5, clock=clock)
    with pytest.raises(ConfigError, match=r"Unknown accuracy scenario option\(s\) \['stop_rule'\]"):
        run_scenario("accuracy", FakeModel(clock), FakeDataset(), stop_rule=_rule())
    with pytest.raises(ConfigError, match="server_rate"):
        run_scenario("throughput", FakeModel(clock), FakeDataset(), server_rate=10.0)


def test_config_builds_each_scenarios_own_options():
    from dlbench.execution.config import BenchmarkConfig
    from dlbench.execution.scenarios import AccuracyOptions, ServerOptions, TimedOptions

    cfg = BenchmarkConfig(
        accuracy_limit=7, server_rate=50.0, seed=3, stop_rule={"min_iters": 9}, backends=["numpy"]
    )
    lat = cfg.scenario_options("latency")
    assert type(lat) is TimedOptions and lat.seed == 3 and lat.stop_rule.min_iters == 9
    srv = cfg.scenario_options("server")
    assert type(srv) is ServerOptions and srv.server_rate == 50.0 and srv.seed == 3
    acc = cfg.scenario_options("accuracy")
    assert acc == AccuracyOptions(limit=7)
    with pytest.raises(ConfigError, match="Unknown scenario 'nope'"):
        cfg.scenario_options("nope")
    with pytest.raises(ConfigError, match="Expected `limit` to be an int >= 1"):
        AccuracyOptions(limit=0)
