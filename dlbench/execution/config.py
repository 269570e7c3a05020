"""Benchmark configuration: a validated dataclass, from CLI flags or a TOML file, expanded into cells.

A *cell* is one (backend, device, scenario, batch size) combination. Every message says what was
expected and what was received.

Example TOML (``dlbench run --config bench.toml``)::

    model = "mlp"
    dataset = "digits"
    backends = ["torch", "onnxruntime"]
    scenarios = ["latency", "throughput"]
    batch_sizes = [1, 32, 128]
    intra_op_threads = 2

    [stop_rule]
    min_iters = 50
    min_time = 1.0

    [backend_options.torch]
    mode = "eager"
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from dlbench.errors import ConfigError
from dlbench.execution import scenarios as scenario_registry
from dlbench.execution.allocator import check as check_allocator
from dlbench.execution.measure import MODES, StopRule
from dlbench.execution.precision import PRECISIONS as _PRECISIONS
from dlbench.execution.precision import parse_precisions
from dlbench.export.requirements import SOURCES as _EXPORT_SOURCES
from dlbench.model.backend import parse_device
from dlbench.options import strict_from_dict
from dlbench.registry import VIA

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Backends a model can be exported to ONNX from (a live view of the registry: those whose
#: manifest declares ``export``), and the separator of a via-ONNX (composite) backend name.
EXPORT_SOURCES = _EXPORT_SOURCES
#: float32 | bfloat16 | float16 | int8 (:mod:`dlbench.execution.precision`)
PRECISIONS = _PRECISIONS
DEFAULT_SCENARIOS = ("latency", "throughput", "accuracy")
#: The float64 parity reference: left out of the default backends (``with_reference``).
REFERENCE_BACKEND = "numpy"


@dataclass(frozen=True)
class Cell:
    """One unit of work: a scenario on one backend and device at one batch size and precision
    (the id names a precision other than float32: ``onnxruntime/cpu/latency/bs1/int8``)."""

    backend: str
    device: str
    scenario: str
    batch_size: int
    precision: str = "float32"

    @property
    def id(self) -> str:
        tail = "" if self.precision == "float32" else f"/{self.precision}"
        return f"{self.backend}/{self.device}/{self.scenario}/bs{self.batch_size}{tail}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "id": self.id}


def via_onnx_source(backend: str) -> str | None:
    """``"torch"`` for ``"torch>onnxruntime"``; None for a backend that is not via ONNX (a
    composite backend resolved by the registry: an export source, then the ONNX runtime)."""
    from dlbench.registry import backends

    parts = backends.composite_parts(backend)
    return parts[0] if parts is not None else None


def onnx_runtime() -> str:
    """The backend that runs ONNX files (the target of ``--via-onnx`` rows)."""
    from dlbench.registry import backends

    name = backends.onnx_runtime()
    if name is None:
        raise ConfigError("Expected a backend that runs ONNX files. Received: none registered")
    return name


def default_threads() -> int:
    """CPU cores this process may use (its affinity mask), the default intra-op thread count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


@dataclass
class BenchmarkConfig:
    """Everything that defines a benchmark run.

    Attributes:
        model: Zoo name (``dlbench list models``) or a path to a saved ModelSpec ``.json``.
        dataset: Dataset name (``dlbench list datasets``).
        dataset_root: Where the dataset's files are (dataset default when None).
        split: The dataset split to use.
        backends: Backend names; ``None`` means every installed backend.
        devices: ``"cpu"``, ``"cuda"``...
        scenarios: Some of ``latency``, ``throughput``, ``server``, ``accuracy``.
        batch_sizes: Batch sizes for the throughput sweep (latency and server always use 1).
        accuracy_batch_size: Batch size used to run the split in the accuracy scenario.
        accuracy_limit: Evaluate only the first N samples (None: the whole split).
        precision: Numeric precision, or a list of them (a cell dimension): ``float32``,
            ``bfloat16``, ``float16``, ``int8`` (see :mod:`dlbench.execution.precision`).
        calibration_samples: Samples of the dataset's train split that int8 post-training
            quantization calibrates on (drawn with ``seed``: the same data every run).
        intra_op_threads: Threads inside one op, the same for every backend (default: usable cores).
        inter_op_threads: Threads running independent ops concurrently (default 1).
        timing_mode: ``compute`` (inputs on device, ends with sync) or ``end_to_end``.
        stop_rule: Warm-up and stopping options (see :class:`dlbench.execution.measure.StopRule`).
        backend_options: Per-backend options, e.g. ``{"torch": {"mode": "compile"}}``.
        model_options: Options for the zoo builder (``seed``...).
        dataset_options: Options for the dataset loader.
        parity_tolerance: Max abs difference to the numpy reference, relative to output scale.
        parity_samples: Samples in the parity batch.
        cell_timeout: Seconds a single cell may take before its worker is killed.
        seed: Seed for sampled inputs.
        server_rate: Target arrivals per second of the server scenario (default: the search's
            answer when a bound is given, else half the measured capacity).
        server_p99_bound: p99 latency bound (seconds) of the server scenario; also turns on the
            search for the highest rate under it.
        via_onnx: Also export the model from each of torch, tensorflow and jax among the
            backends to ONNX and time that file in ONNX Runtime: extra rows named
            ``torch>onnxruntime`` etc. (such names may also be listed in ``backends``).
        energy_baseline: Seconds of idling measured by each worker before its cells; the
            energy of a cell is then reported net of that idle power.
        price_per_hour: Machine price (USD per hour): cost per million samples from throughput.
        carbon_intensity: Grid carbon intensity (gCO2 per kWh): CO2 per million samples from
            the measured energy.
        allocator: Memory allocator settings of every worker, the same for each backend:
            ``"tuned"`` (glibc keeps freed activation memory instead of giving it back to the
            kernel and faulting it in again on the next call) or ``"system"`` (the C library's
            defaults). See :mod:`dlbench.execution.allocator`.
        reshape_model: Rebuild a zoo model that has trained weights for a dataset of another
            input shape or class count (a different, untrained network); refused otherwise.
        with_reference: With ``backends`` unset, also time the float64 NumPy reference
            (:data:`REFERENCE_BACKEND`); it always serves the parity check, but by default it
            is left out of the timing and accuracy cells (it dominates real runs' time).
        skip_memory_check: Start cells whose estimated peak memory exceeds the memory
            available (:mod:`dlbench.analysis.memory_estimate`); refused otherwise.
        executor: Where cell groups run: ``local`` (fresh processes here) or ``ray`` (Ray
            tasks on a cluster, :mod:`dlbench.execution.executors.ray`).
        ray_address: The cluster of the ray executor (``auto``, ``ray://host:port``...;
            None: ``ray.init()``'s default, a local cluster when none runs).
        nodes: Ray placement: ``all`` (every alive node runs the whole benchmark, a fleet
            comparison), ``KEY=VALUE`` (nodes with that label or custom resource), or None
            (groups spread over every node).
        allow_colocate: Let two timed groups run on one Ray node at the same time.
        retries: Times a group whose Ray node or worker died is re-run on another node.
        train_steps: Steps each ``training`` cell trains for (default 50 when ``train_epochs``
            is not given either).
        train_epochs: Epochs over the train split each ``training`` cell trains for (instead
            of ``train_steps``).
        target_accuracy: Test accuracy a ``training`` cell times its first reach of (0..1].
        train_options: Training fields of :class:`dlbench.train.TrainConfig` for the
            ``training`` cells (``optimizer``, ``lr``, ``momentum``, ``augment``...).
    """

    model: str = "digits_cnn"
    dataset: str = "digits"
    dataset_root: str | None = None
    split: str = "test"
    backends: list[str] | None = None
    devices: list[str] = field(default_factory=lambda: ["cpu"])
    scenarios: list[str] = field(default_factory=lambda: list(DEFAULT_SCENARIOS))
    batch_sizes: list[int] = field(default_factory=lambda: [32])
    accuracy_batch_size: int = 256
    accuracy_limit: int | None = None
    precision: str | list[str] = "float32"
    calibration_samples: int = 128
    intra_op_threads: int = field(default_factory=default_threads)
    inter_op_threads: int = 1
    timing_mode: str = "compute"
    stop_rule: dict[str, Any] = field(default_factory=dict)
    backend_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_options: dict[str, Any] = field(default_factory=dict)
    dataset_options: dict[str, Any] = field(default_factory=dict)
    parity_tolerance: float = 1e-4
    parity_samples: int = 16
    cell_timeout: float = 600.0
    seed: int = 0
    server_rate: float | None = None
    server_p99_bound: float | None = None
    via_onnx: bool = False
    energy_baseline: float | None = None
    price_per_hour: float | None = None
    carbon_intensity: float | None = None
    reshape_model: bool = False
    allocator: str = "tuned"
    with_reference: bool = False
    skip_memory_check: bool = False
    executor: str = "local"
    ray_address: str | None = None
    nodes: str | None = None
    allow_colocate: bool = False
    retries: int = 0
    train_steps: int | None = None
    train_epochs: int | None = None
    target_accuracy: float | None = None
    train_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # -- validation -------------------------------------------------------------------------
    def validate(self) -> None:
        def need_str(name: str) -> None:
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ConfigError(
                    f"Expected `{name}` to be a non-empty string. Received: {name}={value!r}"
                )

        def need_int(name: str, value: Any, low: int = 1) -> None:
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(
                    f"Expected `{name}` to be an int >= {low}. Received: {name}={value!r}"
                )

        def need_list(name: str, item_type: type, allow_none: bool = False) -> None:
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if not isinstance(value, (list, tuple)) or not value:
                raise ConfigError(
                    f"Expected `{name}` to be a non-empty list. Received: {name}={value!r}"
                )
            for item in value:
                if not isinstance(item, item_type) or isinstance(item, bool):
                    raise ConfigError(
                        f"Expected every item of `{name}` to be {item_type.__name__}. "
                        f"Received: {item!r} in {name}={value!r}"
                    )
            if len(set(value)) != len(value):
                raise ConfigError(
                    f"Expected `{name}` without duplicates. Received: {name}={value!r}"
                )
            setattr(self, name, list(value))

        need_str("model")
        need_str("dataset")
        need_str("split")
        need_list("backends", str, allow_none=True)
        need_list("devices", str)
        for d in self.devices:
            parse_device(d)
        need_list("scenarios", str)
        for s in self.scenarios:
            if s not in scenario_registry.SCENARIOS:
                raise ConfigError(
                    f"Expected scenarios from {tuple(scenario_registry.names())}. Received: {s!r}"
                )
        need_list("batch_sizes", int)
        for b in self.batch_sizes:
            need_int("batch_sizes item", b)
        need_int("accuracy_batch_size", self.accuracy_batch_size)
        if self.accuracy_limit is not None:
            need_int("accuracy_limit", self.accuracy_limit)
        wanted = parse_precisions(self.precision)
        self.precision = wanted[0] if len(wanted) == 1 else wanted
        need_int("calibration_samples", self.calibration_samples)
        need_int("intra_op_threads", self.intra_op_threads)
        need_int("inter_op_threads", self.inter_op_threads)
        if self.timing_mode not in MODES:
            raise ConfigError(
                f"Expected timing_mode in {MODES}. Received: timing_mode={self.timing_mode!r}"
            )
        if not isinstance(self.stop_rule, dict):
            raise ConfigError(
                f"Expected `stop_rule` to be a table/dict. Received: {self.stop_rule!r}"
            )
        StopRule.from_dict(self.stop_rule)
        for name in ("backend_options", "model_options", "dataset_options"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(
                    f"Expected `{name}` to be a table/dict. Received: {getattr(self, name)!r}"
                )
        for name in ("reshape_model", "with_reference", "skip_memory_check"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"Expected `{name}` to be true or false. Received: "
                    f"{name}={getattr(self, name)!r}"
                )
        check_allocator(self.allocator)
        from dlbench.execution.executors import check_executor_fields  # issue 18

        check_executor_fields(self)
        if not isinstance(self.via_onnx, bool):
            raise ConfigError(
                f"Expected `via_onnx` to be true or false. Received: via_onnx={self.via_onnx!r}"
            )
        for b in self.backends or []:
            if VIA in b and via_onnx_source(b) is None:
                raise ConfigError(
                    f"Expected a via-ONNX backend like '{EXPORT_SOURCES[0]}{VIA}{onnx_runtime()}' "
                    "(from one of "
                    f"{list(EXPORT_SOURCES)}). Received: {b!r}"
                )
        for b, opts in self.backend_options.items():
            if not isinstance(opts, dict):
                raise ConfigError(
                    f"Expected backend_options.{b} to be a table/dict. Received: {opts!r}"
                )
            uses_ort = self.via_onnx or any(VIA in x for x in self.backends or [])
            if b == onnx_runtime() and uses_ort:
                continue  # the via-ONNX rows run with onnxruntime's options
            if self.backends is not None and b not in self.backends:
                raise ConfigError(
                    f"backend_options names {b!r}, which is not among backends={self.backends}"
                )
        if not isinstance(self.parity_tolerance, (int, float)) or not self.parity_tolerance > 0:
            raise ConfigError(
                f"Expected `parity_tolerance` > 0. Received: {self.parity_tolerance!r}"
            )
        need_int("parity_samples", self.parity_samples)
        if not isinstance(self.cell_timeout, (int, float)) or not self.cell_timeout > 0:
            raise ConfigError(
                f"Expected `cell_timeout` > 0 seconds. Received: {self.cell_timeout!r}"
            )
        need_int("seed", self.seed, low=0)
        for name in (
            "server_rate",
            "server_p99_bound",
            "energy_baseline",
            "price_per_hour",
            "carbon_intensity",
        ):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0
            ):
                raise ConfigError(
                    f"Expected `{name}` to be a positive number or None. Received: {name}={value!r}"
                )
        self._check_training()

    def _check_training(self) -> None:
        """The training fields: checked by the scenario's options; refused without it."""
        given = [
            k
            for k in ("train_steps", "train_epochs", "target_accuracy")
            if getattr(self, k) is not None
        ] + (["train_options"] if self.train_options else [])
        if "training" in self.scenarios:
            from dlbench.execution.scenarios.training import train_config

            opts = self.scenario_options("training")
            for b in self.batch_sizes:  # unknown or bad training fields: refused here
                train_config(opts, b, "float32", self.intra_op_threads, self.inter_op_threads)
        elif given:
            raise ConfigError(
                f"Expected the training scenario (--scenario training) for {', '.join(given)}. "
                f"Received: scenarios={self.scenarios}"
            )

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchmarkConfig:
        return strict_from_dict(cls, data, "config key")

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], **overrides: Any) -> BenchmarkConfig:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"Config file not found: {p}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"Config file {p} is not valid TOML: {exc}") from None
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def stop(self) -> StopRule:
        return StopRule.from_dict(self.stop_rule)

    def scenario_options(self, name: str) -> Any:
        """The options of scenario ``name`` for this run, and only those (its own dataclass)."""
        scenario = scenario_registry.get(name)
        shared = {
            "timing_mode": self.timing_mode,
            "stop_rule": self.stop(),
            "seed": self.seed,
            "server_rate": self.server_rate,
            "server_p99_bound": self.server_p99_bound,
            "limit": self.accuracy_limit,
            "train_steps": self.train_steps,
            "epochs": self.train_epochs,
            "target_accuracy": self.target_accuracy,
            "train_options": self.train_options,
        }
        if self.accuracy_limit is not None:  # the training cells' evaluations too
            shared["eval_limit"] = self.accuracy_limit
        own = {f.name for f in fields(scenario.options)}
        return scenario.make_options({k: v for k, v in shared.items() if k in own})

    # -- expansion --------------------------------------------------------------------------
    def precisions(self) -> list[str]:
        """The precisions of the run (``precision`` as a list)."""
        return [self.precision] if isinstance(self.precision, str) else list(self.precision)

    def resolved_backends(self) -> list[str]:
        """Backend names of the run; with ``via_onnx``, ``<source>>onnxruntime`` follows them
        for every export source among them."""
        if self.backends is not None:
            names = list(self.backends)
        else:
            from dlbench.model.backend import available_backends

            names = available_backends()
            others = [n for n in names if n != REFERENCE_BACKEND]
            if others and not self.with_reference:  # the reference alone: keep it
                names = others
        if self.via_onnx:
            extra = [f"{b}{VIA}{onnx_runtime()}" for b in names if b in EXPORT_SOURCES]
            if not extra and not any(VIA in b for b in names):
                raise ConfigError(
                    f"Expected at least one of {list(EXPORT_SOURCES)} among the backends for "
                    f"--via-onnx. Received: backends={names}"
                )
            names += [b for b in extra if b not in names]
        return names

    def cells(self) -> list[Cell]:
        """The cells of this benchmark, grouped by backend, device then precision (one worker
        each)."""
        out: list[Cell] = []
        for backend in self.resolved_backends():
            for device in self.devices:
                for precision in self.precisions():
                    for scenario in self.scenarios:
                        if scenario in ("latency", "server"):
                            sizes = [1]
                        elif scenario == "accuracy":
                            sizes = [self.accuracy_batch_size]
                        else:
                            sizes = self.batch_sizes
                        out.extend(Cell(backend, device, scenario, b, precision) for b in sizes)
        return out
