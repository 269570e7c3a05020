"""Peak memory of a cell, estimated from the ModelSpec before any worker starts (issue 22).

A classification model rebuilt for 3x640x640 input ran for minutes and was then killed by the
kernel at 24 GB. The run now estimates each cell's peak memory from the graph's static shapes
and refuses, before any worker starts, a cell that cannot fit in the memory available.

The model is deliberately simple and conservative (it should over-estimate, never under):

* **weights**: every parameter array twice: as the spec holds it (float32) and as the backend
  holds it, at the backend's element size (the NumPy reference computes in float64: 8 bytes;
  the other backends 4);
* **input**: the batch twice, as loaded (float32) and as the backend holds it;
* **activations**: ``batch x element size x`` the sum of

  - **every** node's output (an interpreter such as the NumPy reference keeps every tensor of
    the forward pass alive until it returns; assumed for every backend not known to free, JAX
    and TensorFlow included: JAX compiling resnet20 for a batch of 64 grew by about the freeing
    bound below, so it is not trusted to stay under it), or for a
    backend that frees each tensor after its last use (torch's ``fx`` module, ONNX Runtime:
    :func:`frees_tensors`) twice the largest set of tensors alive at once (freed memory
    the allocator keeps, layout copies such as oneDNN's blocked formats: torch on resnet20
    measured above 1x), and
  - a workspace of ``2 x`` the larger of the largest sum of two consecutive activation
    tensors (padded copies, im2col and GEMM buffers: a node's input and output twice) and the
    largest temporaries inside one op (an LSTM's gates for every step, an attention's
    ``heads x T x T`` scores and its Q, K, V projections, a convolution's padded input and
    im2col patches);

* **training** (``training=True``): the activations are kept for the backward pass and each gets
  a gradient (``2 x`` the sum of every node's output), and the backend's weights count 4
  times (weights, gradients and two optimiser moments, as Adam keeps).

It does not count the framework's own runtime (hundreds of MB for torch or TensorFlow), the
dataset held by the worker, or GPU memory (a ``cuda`` cell is not checked: the device's free
memory cannot be read without a framework). ``tests/trust/test_memory_estimate.py`` checks the
estimate is at least the measured activation memory of real forward passes (NumPy reference,
traced with :mod:`tracemalloc`; torch, as the process's peak resident memory) for zoo models.

Example:
    >>> import dlbench
    >>> from dlbench.analysis.memory_estimate import estimate
    >>> e = estimate(dlbench.zoo.get("digits_cnn"), 32)
    >>> e.total_bytes == e.weights_bytes + e.input_bytes + e.activation_bytes
    True
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dlbench.errors import ConfigError

#: Estimates at or above this fraction of the available memory are warned about.
WARN_FRACTION = 0.5

#: Backends that compute in float64 (8 bytes per element).
FLOAT64_BACKENDS = frozenset({"numpy"})


def frees_tensors(backend: str) -> bool:
    """Whether ``backend`` frees each activation after its last use: its manifest's
    ``frees_activations`` (a composite ``x>target`` runs in its target). A backend the registry
    does not know is assumed to keep every tensor of the forward pass."""
    from dlbench.registry import backends as registry

    try:
        return bool(registry.manifest(backend.rsplit(">", 1)[-1]).frees_activations)
    except Exception:  # unknown or undescribable: the conservative estimate
        return False


@dataclass(frozen=True)
class MemoryEstimate:
    """The estimated peak memory of one model at one batch size, in bytes."""

    model: str
    batch_size: int
    weights_bytes: int
    input_bytes: int
    activation_bytes: int
    training: bool = False

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.input_bytes + self.activation_bytes

    @property
    def per_sample_bytes(self) -> float:
        """The part of the estimate that grows with the batch, per sample."""
        return (self.input_bytes + self.activation_bytes) / self.batch_size

    def max_batch(self, available: int) -> int:
        """The largest batch size whose estimate fits in ``available`` bytes (0: none)."""
        room = available - self.weights_bytes
        return max(0, int(room // self.per_sample_bytes)) if self.per_sample_bytes else 0


def _op_temporaries(rn: Any) -> int:
    """Elements per sample an op holds inside itself beyond its input and output: the gates of
    every step of an LSTM, the (heads, T, T) scores and the projections of an attention."""
    if rn.op == "lstm":
        t = rn.in_shapes[0][0]
        return t * (int(rn.params["weight_ih"].shape[0]) + rn.attrs["hidden_size"])
    if rn.op == "multi_head_attention":
        t, d = rn.in_shapes[0][0], math.prod(rn.in_shapes[0][1:])
        return rn.attrs["num_heads"] * t * t + 3 * t * d
    if rn.op == "conv2d" and not (rn.attrs["groups"] > 1 and rn.params["weight"].shape[1] == 1):
        # the padded copy of the input and the im2col patches (KH * KW * C/groups per output
        # position) of a convolution computed as one matrix product (the NumPy reference)
        c, h, w = rn.in_shapes[0]
        t, b, l, r = rn.attrs["pads"]  # noqa: E741
        _, cg, kh, kw = rn.params["weight"].shape
        return c * (h + t + b) * (w + l + r) + math.prod(rn.out_shape[1:]) * kh * kw * cg
    return 0


def _peak_live(spec: Any) -> int:
    """Largest sum of the tensors alive at once when each is freed after its last use (the
    graph's outputs are kept), elements per sample."""
    shapes = spec.shapes()
    last = {o: len(spec.nodes) for o in spec.outputs}
    for i, n in enumerate(spec.nodes):
        for name in n.inputs:
            last[name] = max(last.get(name, i), i)
    live = {t.name: math.prod(shapes[t.name]) for t in spec.inputs}
    peak = sum(live.values())
    for i, n in enumerate(spec.nodes):
        live[n.name] = math.prod(shapes[n.name])
        peak = max(peak, sum(live.values()))
        for name in [k for k in live if last.get(k, i) <= i]:
            del live[name]
    return peak


def _activation_elements(spec: Any, keeps_every_tensor: bool) -> tuple[int, int, int]:
    """(input elements, activations, workspace) per sample."""
    shapes = spec.shapes()
    sizes = [math.prod(shapes[n.name]) for n in spec.nodes]
    inp = sum(math.prod(shapes[t.name]) for t in spec.inputs)
    chain = [inp, *sizes]
    pair = max((a + b for a, b in zip(chain, chain[1:], strict=False)), default=inp)
    inside = max((_op_temporaries(rn) for rn in spec.resolved()), default=0)
    kept = sum(sizes) if keeps_every_tensor else 2 * _peak_live(spec)
    return inp, kept, 2 * max(pair, inside)


def estimate(
    spec: Any,
    batch_size: int,
    *,
    bytes_per_element: int = 4,
    training: bool = False,
    keeps_every_tensor: bool = True,
) -> MemoryEstimate:
    """Estimate the peak memory of ``spec`` run on batches of ``batch_size`` (see the module).

    Args:
        spec: A :class:`~dlbench.model.spec.ModelSpec`.
        batch_size: Samples per call.
        bytes_per_element: 4 for float32 backends, 8 for the float64 NumPy reference.
        training: Count what a training step keeps (activations, gradients, optimiser state).
        keeps_every_tensor: The backend holds every node's output until the forward pass
            returns (an interpreter); ``False`` for one that frees a tensor after its last use.
    """
    if batch_size < 1:
        raise ConfigError(f"Expected a positive batch size. Received: {batch_size}")
    inp, kept, workspace = _activation_elements(spec, keeps_every_tensor or training)
    weights = sum(int(a.size) for a in spec.params.values()) * (4 + bytes_per_element)
    if training:
        act = 2 * kept
        weights += 3 * sum(int(a.size) for a in spec.params.values()) * bytes_per_element
    else:
        act = kept + workspace
    return MemoryEstimate(
        model=spec.name,
        batch_size=int(batch_size),
        weights_bytes=int(weights),
        input_bytes=int(batch_size * inp * (4 + bytes_per_element)),
        activation_bytes=int(batch_size * act * bytes_per_element),
        training=training,
    )


def available_memory() -> int | None:
    """Bytes of memory available to a new process: ``MemAvailable`` of ``/proc/meminfo``, else
    free pages from ``os.sysconf``; ``None`` when neither can be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def human_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KB'`` (powers of 1024, the unit /proc/meminfo uses)."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def check_cells(
    spec: Any,
    cells: Iterable[Any],
    *,
    available: int | None = None,
    training: bool = False,
) -> list[str]:
    """Refuse cells whose estimated peak memory exceeds ``available`` (default: this machine's).

    ``cells`` have ``backend``, ``device`` and ``batch_size`` (:class:`Cell`). Returns the
    warnings to show: estimates between :data:`WARN_FRACTION` and 100% of the available memory,
    and a note when ``cuda`` cells are not checked or the available memory cannot be read.

    Raises:
        ConfigError: a CPU cell's estimate exceeds the available memory (exit 2), naming the
            model, the batch size, the estimate, the memory available and the largest batch
            size that would fit.
    """
    cells = list(cells)
    warnings: list[str] = []
    cuda = sorted({c.device for c in cells if not str(c.device).startswith("cpu")})
    if cuda:
        warnings.append(
            f"Memory not checked for {', '.join(cuda)}: the device's free memory cannot be read "
            "before a framework loads it."
        )
    cpu = [c for c in cells if str(c.device).startswith("cpu")]
    if not cpu:
        return warnings
    if available is None:
        available = available_memory()
    if available is None:
        return [*warnings, "Memory not checked: this machine's available memory is unknown."]
    worst: dict[tuple[int, int, bool], tuple[MemoryEstimate, list[str]]] = {}
    for c in cpu:
        size = 8 if c.backend in FLOAT64_BACKENDS else 4
        keeps = not frees_tensors(c.backend)
        key = (c.batch_size, size, keeps)
        if key not in worst:
            worst[key] = (
                estimate(
                    spec,
                    c.batch_size,
                    bytes_per_element=size,
                    training=training,
                    keeps_every_tensor=keeps,
                ),
                [],
            )
        if c.backend not in worst[key][1]:
            worst[key][1].append(c.backend)
    refused = [(e, b) for e, b in worst.values() if e.total_bytes > available]
    if refused:
        e, backends = max(refused, key=lambda eb: eb[0].total_bytes)
        fit = e.max_batch(available)
        hint = f"at most {fit} fits" if fit else "the weights alone do not fit"
        raise ConfigError(
            f"Expected cells that fit in this machine's memory. Received: model {spec.name!r} "
            f"at batch size {e.batch_size} ({', '.join(backends)}) needs about "
            f"{human_bytes(e.total_bytes)} (weights {human_bytes(e.weights_bytes)}, input "
            f"{human_bytes(e.input_bytes)}, activations {human_bytes(e.activation_bytes)}), "
            f"but {human_bytes(available)} is available. Use a smaller batch size ({hint}), "
            "or pass --skip-memory-check if the estimate is too high."
        )
    for e, backends in sorted(worst.values(), key=lambda eb: eb[0].batch_size):
        if e.total_bytes >= WARN_FRACTION * available:
            warnings.append(
                f"Model {spec.name!r} at batch size {e.batch_size} ({', '.join(backends)}) may "
                f"need about {human_bytes(e.total_bytes)}, "
                f"{100 * e.total_bytes / available:.0f}% of the {human_bytes(available)} "
                "available: other programs may be pushed to swap or the worker killed."
            )
    return warnings
