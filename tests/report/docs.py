"""Realistic result documents for the report, compare and tracking tests.

Loaded by path (``tests/report/conftest.py``, ``tests/test_compare.py``,
``tests/tracking/conftest.py``) so no ``tests`` package is needed. Timing samples are drawn from
a seeded lognormal around a per-backend median, and every statistic is recomputed with
:func:`dlbench.analysis.stats.summarize`, exactly as a real run would record it.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from dlbench.analysis.stats import summarize
from dlbench.execution import results

#: Median seconds per call at batch 1, and how it grows with the batch size.
BASE_LATENCY_S = {"numpy": 180e-6, "torch": 95e-6, "onnxruntime": 40e-6, "jax": 70e-6}
PER_SAMPLE_S = {"numpy": 20e-6, "torch": 6e-6, "onnxruntime": 4e-6, "jax": 5e-6}
ACCURACY = {"numpy": 0.9644, "torch": 0.9644, "onnxruntime": 0.9644, "jax": 0.9622}
PEAK_RSS = {"numpy": 180e6, "torch": 410e6, "onnxruntime": 150e6, "jax": 520e6}
VERSIONS = {
    "numpy": {"numpy": "2.4.6"},
    "torch": {"torch": "2.13.0+cpu"},
    "onnxruntime": {"onnxruntime": "1.32.0", "onnx": "1.23.2"},
    "jax": {"jax": "0.7.0", "jaxlib": "0.7.0"},
}


def config(**overrides: Any) -> dict[str, Any]:
    cfg = {
        "model": "mlp",
        "dataset": "digits",
        "dataset_root": None,
        "split": "test",
        "backends": ["numpy", "torch", "onnxruntime"],
        "devices": ["cpu"],
        "scenarios": ["latency", "throughput", "accuracy"],
        "batch_sizes": [1, 8, 32],
        "accuracy_batch_size": 256,
        "accuracy_limit": None,
        "precision": "float32",
        "intra_op_threads": 2,
        "inter_op_threads": 1,
        "timing_mode": "compute",
        "stop_rule": {"min_iters": 50, "min_time": 0.2},
        "backend_options": {},
        "model_options": {},
        "dataset_options": {},
        "parity_tolerance": 1e-4,
        "parity_samples": 16,
        "cell_timeout": 600.0,
        "seed": 0,
    }
    cfg.update(overrides)
    return cfg


def environment(cpu_model: str = "Intel(R) Xeon(R) Platinum 8370C CPU @ 2.80GHz") -> dict[str, Any]:
    return {
        "os": {"system": "Linux", "release": "6.1", "platform": "Linux-6.1-x86_64"},
        "hostname": "bench-host",
        "python": {"version": "3.11.9", "implementation": "CPython", "executable": "/x/python"},
        "cpu": {
            "model": cpu_model,
            "physical_cores": 1,
            "logical_cores": 2,
            "usable_cores": 2,
            "flags": ["avx2", "avx512f"],
        },
        "memory": {"total_bytes": 8 * 2**30},
        "blas": {"name": "openblas", "version": "0.3.27"},
        "gpus": [],
        "packages": {"numpy": "2.4.6", "torch": "2.13.0+cpu", "onnxruntime": "1.32.0"},
        "env": {"OMP_NUM_THREADS": "2"},
        "dlbench": {"version": "0.1.0", "git_commit": "abc1234"},
    }


def _timing(median: float, batch_size: int, rng: np.random.Generator, n: int) -> dict[str, Any]:
    samples = median * rng.lognormal(0.0, 0.05, size=n)
    # A few slow outliers, as real runs have (scheduler hiccups).
    samples[rng.choice(n, size=max(1, n // 50), replace=False)] *= 1.8
    wall = float(samples.sum() * 1.02)
    return {
        "mode": "compute",
        "batch_size": batch_size,
        "n": n,
        "wall_time_s": wall,
        "throughput": batch_size * n / wall,
        "first_call_s": median * 20,
        "warmup_calls": 10,
        "stop_reason": "min_time reached",
        "stats": summarize(samples),
        "samples_s": [float(s) for s in samples],
        "warmup_samples_s": [float(median * 1.5)] * 10,
    }


def make_document(
    backends: tuple[str, ...] = ("numpy", "torch", "onnxruntime"),
    devices: tuple[str, ...] = ("cpu",),
    batch_sizes: tuple[int, ...] = (1, 8, 32),
    *,
    seed: int = 0,
    n: int = 200,
    slow: dict[str, float] | None = None,
    failed: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A complete result document; ``slow={"torch": 1.3}`` makes torch 30% slower.

    ``failed`` lists cell ids recorded as failed instead of measured.
    """
    slow = slow or {}
    rng = np.random.default_rng(seed)
    doc = results.new_document(
        config(backends=list(backends), devices=list(devices), batch_sizes=list(batch_sizes)),
        environment(),
    )
    doc["model"] = {
        "name": "mlp",
        "fingerprint": "f1ngerpr1nt",
        "stats": {"params": 4810, "macs": 4736, "flops": 9472},
    }
    doc["dataset"] = {
        "name": "digits",
        "task": "classification",
        "split": "test",
        "num_classes": 10,
        "input_shape": [1, 8, 8],
        "size": 450,
        "synthetic": False,
        "source": "scikit-learn",
    }
    for b in backends:
        for d in devices:
            gpu = d != "cpu"
            doc["backends"].setdefault(b, {})[d] = {
                "status": "ok",
                "error": None,
                "versions": VERSIONS[b],
                "settings": {
                    "intra_op_threads": 2,
                    "inter_op_threads": 1,
                    "precision": "float32",
                    "mode": "eager",
                },
                "build_time_s": 0.05 + 0.1 * len(b) / 10,
                "parity": None
                if b == "numpy"
                else {
                    "ok": True,
                    "max_abs_diff": 2.4e-7,
                    "max_rel_diff": 1.1e-7,
                    "argmax_agreement": 1.0,
                    "tolerance": 1e-4,
                },
            }
            factor = slow.get(b, 1.0) * (0.3 if gpu else 1.0)
            for scenario, sizes in (
                ("latency", [1]),
                ("throughput", list(batch_sizes)),
                ("accuracy", [256]),
            ):
                for bs in sizes:
                    cid = f"{b}/{d}/{scenario}/bs{bs}"
                    cell: dict[str, Any] = {
                        "id": cid,
                        "backend": b,
                        "device": d,
                        "scenario": scenario,
                        "batch_size": bs,
                        "status": "ok",
                        "error": None,
                        "settings": doc["backends"][b][d]["settings"],
                        "timing": None,
                        "metrics": {},
                        "validity": {"valid": True, "reasons": []},
                        "memory": {
                            "peak_rss_bytes": int(PEAK_RSS[b] * (1 + bs / 400)),
                            "weight_bytes": 19240,
                        },
                    }
                    if cid in failed:
                        cell.update(
                            status="failed",
                            error="worker died from SIGKILL",
                            memory={},
                            validity={"valid": False, "reasons": ["worker died from SIGKILL"]},
                        )
                    elif scenario == "accuracy":
                        cell["metrics"] = {"accuracy": ACCURACY[b], "f1_macro": ACCURACY[b] - 0.01}
                    else:
                        median = (BASE_LATENCY_S[b] + PER_SAMPLE_S[b] * (bs - 1)) * factor
                        cell["timing"] = _timing(median, bs, rng, n)
                    doc["cells"].append(cell)
    doc["status"] = "complete"
    return doc


def rerun(doc: dict[str, Any], *, seed: int = 1, slow: dict[str, float] | None = None):
    """The same benchmark measured again (fresh samples); ``slow`` slows some backends down."""
    cfg = doc["config"]
    new = make_document(
        tuple(cfg["backends"]),
        tuple(cfg["devices"]),
        tuple(cfg["batch_sizes"]),
        seed=seed,
        slow=slow,
    )
    new["environment"] = copy.deepcopy(doc["environment"])
    return new


#: Average package power per backend for :func:`with_energy` (watts).
WATTS = {"numpy": 30.0, "torch": 25.0, "onnxruntime": 20.0, "jax": 22.0}


def with_energy(
    doc: dict[str, Any],
    *,
    watts: dict[str, float] | None = None,
    available: bool = True,
    price_per_hour: float | None = 3.6,
    carbon_intensity: float | None = 400.0,
    baseline_watts: float | None = None,
) -> dict[str, Any]:
    """``doc`` with an ``energy`` record on every timed cell, as the worker writes it.

    Each backend draws a constant ``watts[backend]`` over the cell's wall time; ``available=False``
    records what a machine without readable RAPL writes (null figures and the reason).
    """
    from dlbench.execution import energy as E

    watts = {**WATTS, **(watts or {})}
    out = copy.deepcopy(doc)
    for cell in out["cells"]:
        timing = cell.get("timing")
        if cell.get("status") == "failed" or not timing:
            continue
        seconds = timing["wall_time_s"]
        samples = timing["n"] * timing["batch_size"]
        if available:
            reading = E.reading_from_counters(
                {"rapl:package-0": 1000.0},
                {"rapl:package-0": 1000.0 + watts[cell["backend"]] * seconds},
                seconds,
                meters={"rapl": {"available": True, "reason": None, "domains": ["package-0"]}},
            )
        else:
            monitor = E.EnergyMonitor([E.RaplMeter("/nonexistent/powercap")])
            with monitor.measure() as m:
                pass
            reading = m.reading
            reading.seconds = seconds
        baseline = None if baseline_watts is None else E.Baseline(baseline_watts, 2.0)
        cell["energy"] = E.energy_record(
            reading,
            samples,
            baseline=baseline,
            price_per_hour=price_per_hour,
            carbon_intensity=carbon_intensity,
            throughput=timing["throughput"],
        )
    return out
