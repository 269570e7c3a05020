"""Write a result document as TensorBoard event files: scalars and latency histograms.

One run folder per backend and device (``DIR/torch_cpu/``), so TensorBoard overlays the
backends on the same charts:

* ``latency/median_ms``, ``latency/p90_ms``, ``latency/p99_ms`` (step 0);
* ``latency/samples_ms``: histogram of every single-sample call, and ``latency/trace_ms``: the
  same calls in order (step = call index), to spot drift or throttling;
* ``throughput/samples_per_s`` and ``throughput/median_ms`` with **step = batch size**, so the
  chart is throughput against batch size; ``throughput/bsN/samples_ms`` histograms;
* ``accuracy/<metric>`` and ``memory/peak_rss_mib``.

Only the ``tensorboard`` package's protobufs and record writer are used: no TensorFlow or torch
import (``pip install 'dlbench[tensorboard]'``).

Example:
    >>> from dlbench.adapters.tracking.tensorboard import write_events
    >>> files = write_events(doc, "runs/tb")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from dlbench.adapters.tracking import require

#: At most this many points of ``latency/trace_ms`` per run (evenly thinned beyond it).
MAX_TRACE_POINTS = 5000
HISTOGRAM_BUCKETS = 60


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


class EventWriter:
    """A minimal TensorBoard event file writer (records framed as TFRecord, masked CRC32C)."""

    def __init__(self, logdir: str | os.PathLike[str]) -> None:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        self._event_pb2 = event_pb2
        Path(logdir).mkdir(parents=True, exist_ok=True)
        self.path = Path(logdir) / (
            f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.dlbench"
        )
        self._writer = RecordWriter(open(self.path, "wb"))  # noqa: SIM115 - closed in close()
        self._write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def _write(self, event: Any) -> None:
        self._writer.write(event.SerializeToString())

    def _summary(self, value: Any, step: int, wall_time: float | None) -> None:
        from tensorboard.compat.proto import summary_pb2

        event = self._event_pb2.Event(
            wall_time=time.time() if wall_time is None else wall_time,
            step=int(step),
            summary=summary_pb2.Summary(value=[value]),
        )
        self._write(event)

    def scalar(self, tag: str, value: float, step: int = 0, wall_time: float | None = None) -> None:
        from tensorboard.compat.proto import summary_pb2

        self._summary(
            summary_pb2.Summary.Value(tag=tag, simple_value=float(value)), step, wall_time
        )

    def histogram(
        self, tag: str, values: np.ndarray, step: int = 0, wall_time: float | None = None
    ) -> None:
        from tensorboard.compat.proto import summary_pb2

        values = np.asarray(values, dtype=np.float64)
        lo, hi = float(values.min()), float(values.max())
        if hi <= lo:
            hi = lo + max(abs(lo) * 1e-6, 1e-12)
        counts, edges = np.histogram(values, bins=HISTOGRAM_BUCKETS, range=(lo, hi))
        histo = summary_pb2.HistogramProto(
            min=lo,
            max=float(values.max()),
            num=float(values.size),
            sum=float(values.sum()),
            sum_squares=float(np.sum(values**2)),
            bucket_limit=[float(e) for e in edges[1:]],
            bucket=[float(c) for c in counts],
        )
        self._summary(summary_pb2.Summary.Value(tag=tag, histo=histo), step, wall_time)

    def close(self) -> None:
        self._writer.flush()
        self._writer.close()


def write_events(doc: dict[str, Any], logdir: str | os.PathLike[str]) -> list[Path]:
    """Write one event file per backend and device under ``logdir``; returns their paths."""
    require("tensorboard")
    logdir = Path(logdir)
    by_run: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for cell in doc.get("cells") or []:
        if cell.get("status") != "failed":
            by_run.setdefault((cell["backend"], cell["device"]), []).append(cell)
    paths = []
    for (backend, device), cells in by_run.items():
        writer = EventWriter(logdir / _safe(f"{backend}_{device}"))
        try:
            for cell in cells:
                _write_cell(writer, cell)
        finally:
            writer.close()
        paths.append(writer.path)
    return paths


def _write_cell(writer: EventWriter, cell: dict[str, Any]) -> None:
    timing = cell.get("timing") or {}
    stats = timing.get("stats") or {}
    samples = np.asarray(timing.get("samples_s") or [], dtype=np.float64) * 1e3
    bs = int(cell["batch_size"])
    scenario = cell["scenario"]
    if scenario == "latency" and samples.size:
        for key in ("median", "p90", "p99"):
            if stats.get(key) is not None:
                writer.scalar(f"latency/{key}_ms", stats[key] * 1e3)
        writer.histogram("latency/samples_ms", samples)
        idx = np.linspace(0, samples.size - 1, min(samples.size, MAX_TRACE_POINTS)).astype(int)
        for i in np.unique(idx):
            writer.scalar("latency/trace_ms", samples[i], step=int(i))
    elif scenario == "throughput" and samples.size:
        if timing.get("throughput") is not None:
            writer.scalar("throughput/samples_per_s", timing["throughput"], step=bs)
        if stats.get("median") is not None:
            writer.scalar("throughput/median_ms", stats["median"] * 1e3, step=bs)
        writer.histogram(f"throughput/bs{bs}/samples_ms", samples, step=bs)
    for key, value in (cell.get("metrics") or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            writer.scalar(f"{scenario}/{key}", value)
    mem = (cell.get("memory") or {}).get("peak_rss_bytes")
    if mem is not None:
        writer.scalar("memory/peak_rss_mib", mem / 2**20, step=bs)
