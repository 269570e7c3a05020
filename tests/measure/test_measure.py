"""time_model on a fake clock: the timed region, warm-up, stopping rules, throughput."""

from __future__ import annotations

import re

import numpy as np
import pytest
from measure_fakes import FakeClock, FakeModel, LoggingClock

from dlbench.errors import ConfigError
from dlbench.execution.measure import StopRule, Timing, is_steady, time_model

US = 1000  # ns
NO_WARMUP_TIME = {"warmup_min_time": 0.0}


def _batch(n: int = 4) -> np.ndarray:
    return np.zeros((n, 1, 4, 4), np.float32)


def test_timed_region_compute_mode_sync_inside_and_input_outside():
    clock = FakeClock()
    model = FakeModel(clock, [10 * US])
    model.log_clock = LoggingClock(clock, model.log)
    t = time_model(
        model, _batch(), "compute", clock=model.log_clock, min_iters=5, min_time=0, **NO_WARMUP_TIME
    )
    s = "".join(model.log)
    # clock-overhead pairs, input prepared once outside any timed region, warm-up calls, the
    # loop start, measured calls: every call is exactly clock, forward, sync, clock.
    assert re.fullmatch(r"(TT)+D(TFST)+T(TFST)+", s), s
    assert s.count("D") == 1 and "N" not in s
    assert t.n == 5
    # forward returns after half the work; sync waits for the rest: samples are whole calls.
    assert np.all(t.samples == 10e-6)


def test_timed_region_end_to_end_mode_all_inside():
    clock = FakeClock()
    model = FakeModel(clock, [10 * US])
    log_clock = LoggingClock(clock, model.log)
    t = time_model(
        model, _batch(), "end_to_end", clock=log_clock, min_iters=4, min_time=0, **NO_WARMUP_TIME
    )
    s = "".join(model.log)
    assert re.fullmatch(r"(TT)+(TDFSNT)+T(TDFSNT)+", s), s
    assert t.mode == "end_to_end" and t.n == 4


def test_first_call_and_warmup_samples_kept_apart():
    clock = FakeClock()
    model = FakeModel(clock, [500 * US] + [10 * US] * 1000)
    t = time_model(model, _batch(), clock=clock, min_iters=10, min_time=0, **NO_WARMUP_TIME)
    assert t.first_call == pytest.approx(500e-6)
    assert t.warmup_samples[0] == pytest.approx(500e-6)
    assert np.all(t.samples == 10e-6)  # the compile-like first call is not measured


def test_warmup_continues_until_steady():
    # 3 slow calls, then a slow decline, then steady: warm-up must not stop in the decline.
    durations = [900 * US] * 3 + [int(d) for d in np.linspace(400, 100, 30) * US] + [100 * US] * 500
    clock = FakeClock()
    model = FakeModel(clock, durations)
    t = time_model(
        model,
        _batch(),
        clock=clock,
        min_iters=20,
        min_time=0,
        steady_window=5,
        steady_tolerance=0.05,
        **NO_WARMUP_TIME,
    )
    assert t.warmup_reason == "steady"
    assert len(t.warmup_samples) > 30
    assert np.all(t.samples == 100e-6)


def test_warmup_caps():
    growing = [int(100 * US * 1.05**k) for k in range(60)]  # +5% a call: never steady at 1%
    clock = FakeClock()
    t = time_model(
        FakeModel(clock, growing),
        _batch(),
        clock=clock,
        warmup_max=17,
        steady_window=2,
        steady_tolerance=0.01,
        min_iters=1,
        min_time=0,
        **NO_WARMUP_TIME,
    )
    assert t.warmup_reason == "warmup_max" and len(t.warmup_samples) == 17
    clock = FakeClock()
    t = time_model(
        FakeModel(clock, growing),
        _batch(),
        clock=clock,
        warmup_time=0.01,  # 10 ms of ~300 us calls
        steady_window=2,
        steady_tolerance=0.01,
        min_iters=1,
        min_time=0,
        **NO_WARMUP_TIME,
    )
    assert t.warmup_reason == "warmup_time"
    assert 0.01 <= t.warmup_samples.sum() < 0.0115


def test_warmup_min_calls_and_min_time():
    clock = FakeClock()
    t = time_model(
        FakeModel(clock, [10 * US]), _batch(), clock=clock, warmup_min=50, min_iters=1, min_time=0
    )
    # steady from the start, but at least 50 calls and 50 ms (the default warmup_min_time)
    assert len(t.warmup_samples) == 5000  # 50 ms / 10 us
    t = time_model(
        FakeModel(clock, [10 * US]),
        _batch(),
        clock=clock,
        warmup_min=50,
        min_iters=1,
        min_time=0,
        warmup_min_time=0.0,
    )
    assert len(t.warmup_samples) == 50


def test_is_steady_ignores_first_call():
    assert not is_steady([1000, 10, 10, 10], window=2, tolerance=0.1)  # 3 after the first
    assert is_steady([1000, 10, 10, 10, 10], window=2, tolerance=0.1)
    assert is_steady([1000, 10, 10, 10, 10, 11], window=2, tolerance=0.1)
    assert not is_steady([1000, 10, 10, 20, 20, 20], window=2, tolerance=0.1)


@pytest.mark.parametrize(
    ("options", "reason", "n"),
    [
        ({"min_iters": 10, "min_time": 0.001}, "min_iters_and_min_time", 100),  # time binds
        ({"min_iters": 300, "min_time": 0.001}, "min_iters_and_min_time", 300),  # count binds
        ({"min_iters": 10, "min_time": 1.0, "max_iters": 50}, "max_iters", 50),
        ({"min_iters": 10, "min_time": 1.0, "max_time": 1.0}, "min_iters_and_min_time", 100_000),
        ({"min_iters": 10**6, "min_time": 0.5, "max_time": 0.5}, "max_time", 50_000),
    ],
)
def test_stopping_rules(options, reason, n):
    clock = FakeClock()
    t = time_model(FakeModel(clock, [10 * US]), _batch(), clock=clock, **NO_WARMUP_TIME, **options)
    assert t.stop_reason == reason
    assert t.n == n


def test_target_ci_met_and_not_met():
    rng = np.random.default_rng(0)
    clock = FakeClock()
    tight = (rng.normal(100, 1, 100_000) * US).astype(int)
    t = time_model(
        FakeModel(clock, tight),
        _batch(),
        clock=clock,
        min_iters=20,
        min_time=0,
        target_ci=0.01,
        max_time=10,
        **NO_WARMUP_TIME,
    )
    assert t.stop_reason == "target_ci" and t.target_ci_met is True
    assert (t.ci95_high - t.ci95_low) / t.median <= 0.01
    wild = (rng.lognormal(np.log(100), 1.0, 100_000) * US).astype(int)
    t = time_model(
        FakeModel(clock, wild),
        _batch(),
        clock=clock,
        min_iters=20,
        min_time=0,
        target_ci=0.001,
        max_time=0.2,
        **NO_WARMUP_TIME,
    )
    assert t.stop_reason == "max_time" and t.target_ci_met is False


def test_throughput_is_samples_over_loop_wall_time_not_from_a_mean():
    clock = FakeClock()
    t = time_model(
        FakeModel(clock, [10 * US, 30 * US]),
        _batch(8),
        clock=clock,
        min_iters=100,
        min_time=0,
        **NO_WARMUP_TIME,
    )
    assert t.wall_time == pytest.approx(t.samples.sum())  # nothing but calls on this clock
    assert t.throughput == pytest.approx(8 * t.n / t.wall_time)
    # A loop whose wall time includes time between calls: throughput follows the wall time,
    # never batch / median or batch / mean of one call.
    timing = Timing(
        samples=np.full(10, 0.001),
        batch_size=4,
        mode="compute",
        wall_time=0.02,
        warmup_samples=np.array([0.002]),
        first_call=0.002,
        stop_reason="min_iters_and_min_time",
    )
    assert timing.throughput == pytest.approx(4 * 10 / 0.02)
    assert timing.throughput != pytest.approx(4 / timing.median)


def test_timing_attributes_and_dict():
    clock = FakeClock()
    t = time_model(
        FakeModel(clock, [10 * US, 11 * US]),
        _batch(),
        clock=clock,
        min_iters=10,
        min_time=0,
        **NO_WARMUP_TIME,
    )
    for name in (
        "median",
        "p90",
        "p95",
        "p99",
        "iqr",
        "mean",
        "std",
        "min",
        "max",
        "ci95_low",
        "ci95_high",
        "noisy",
    ):
        assert getattr(t, name) == t.stats[name]
    with pytest.raises(AttributeError):
        t.not_a_stat  # noqa: B018
    d = t.to_dict()
    assert d["n"] == t.n and len(d["samples_s"]) == t.n and d["stats"]["median"] == t.median
    assert d["warmup_reason"] == "steady" and d["clock_overhead_s"] == 0.0
    assert "samples_s" not in t.to_dict(keep_samples=False)


def test_mode_and_rule_validation():
    clock = FakeClock()
    with pytest.raises(ConfigError, match="mode"):
        time_model(FakeModel(clock), _batch(), "fast", clock=clock)
    with pytest.raises(ConfigError, match="either"):
        time_model(FakeModel(clock), _batch(), stop_rule=StopRule(), min_iters=3)
    with pytest.raises(ConfigError, match="Unknown stop-rule"):
        time_model(FakeModel(clock), _batch(), min_iter=3)
    for bad in (
        {"min_iters": 0},
        {"steady_tolerance": 0},
        {"warmup_min": 5, "warmup_max": 4},
        {"warmup_min_time": 5.0, "warmup_time": 1.0},
        {"target_ci": 1.5},
        {"max_time": -1},
        {"min_time": float("nan")},
    ):
        with pytest.raises(ConfigError, match="Expected"):
            StopRule(**bad)
    assert StopRule.from_dict(StopRule().to_dict()) == StopRule()


def test_real_clock_smoke_with_numpy_backend():
    """The default clock and a real (framework-free) backend: only structural checks."""
    import dlbench

    model = dlbench.get_backend("numpy").build(dlbench.zoo.get("mlp", input_shape=(1, 8, 8)))
    t = time_model(model, np.zeros((2, 1, 8, 8), np.float32), min_iters=5, min_time=0.01)
    assert t.n >= 5 and t.median > 0 and t.clock_overhead >= 0 and t.throughput > 0
    assert t.wall_time >= t.samples.sum()


# --------------------------------------------------------------------------- misuse (issue 21)


def _fake_native(module: str, name: str = "Net") -> object:
    """An instance of a class that claims to live in ``module`` (no framework imported)."""
    return type(name, (), {"__module__": module, "__call__": lambda self, x: x})()


@pytest.mark.parametrize(
    ("native", "backend"),
    [
        (_fake_native("torch.nn.modules.module", "Module"), "torch"),
        (_fake_native("keras.src.models.functional", "Functional"), "tensorflow"),
        (_fake_native("flax.nnx.module"), "jax"),
        (_fake_native("jaxlib._jax", "PjitFunction"), "jax"),
        ("model.onnx", "onnxruntime"),
    ],
)
def test_time_model_on_a_native_model_says_to_wrap_it(native, backend):
    from dlbench.errors import DlbenchError
    from dlbench.execution.measure import NotAModelError

    with pytest.raises(NotAModelError, match=rf'get_backend\("{backend}"\)\.wrap\(') as info:
        time_model(native, _batch(), min_iters=1, min_time=0)
    assert isinstance(info.value, (DlbenchError, TypeError))
    assert "to_device" in str(info.value)


def test_time_model_on_a_plain_function_says_to_wrap_it():
    from dlbench.execution.measure import NotAModelError

    def f(x):
        return x

    with pytest.raises(NotAModelError, match=r"plain function.*wrap"):
        time_model(f, _batch(), min_iters=1, min_time=0)
    with pytest.raises(NotAModelError, match=r"Received a int"):
        time_model(3, _batch(), min_iters=1, min_time=0)


def test_time_model_on_a_real_torch_module_says_to_wrap_it():
    torch = pytest.importorskip("torch")
    from dlbench.execution.measure import NotAModelError

    with pytest.raises(
        NotAModelError, match=r'a PyTorch module \(Linear\).*get_backend\("torch"\)'
    ):
        time_model(torch.nn.Linear(4, 2), _batch(), min_iters=1, min_time=0)
