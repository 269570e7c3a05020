"""The Ray executor: cell groups as Ray tasks on a cluster, the result file on the driver.

Each (backend, device) group is one Ray task declared with ``max_calls=1`` (its Ray worker
process exits after it: never a pooled process that already ran another group) and
``max_retries=0`` (a crash is reported, never silently re-timed). The task writes the spec (and
the dataset split, when it is shipped) sent through the object store into the node's own temp
folder, then runs the normal dlbench worker through :func:`~dlbench.execution.supervisor.supervise`
in a fresh process with the thread environment set before any framework is imported. The
worker's events stream back to the driver as the task's generator items; the driver applies
them exactly as the local runner does and owns the one atomic result file.

Placement: every group asks for the CPUs it will use (``intra_op_threads x inter_op_threads``)
and a GPU for a CUDA device, and is pinned to one node (``NodeAffinitySchedulingStrategy``,
hard). Unless ``allow_colocate``, the driver starts at most one timed group per node at a time,
so two groups never share a node's cores; groups spread over the nodes that are free, least
used first. ``nodes="all"`` runs every group on every node (the node becomes part of the device:
``cpu@<node>``); ``nodes="KEY=VALUE"`` keeps the nodes whose label KEY is VALUE or whose custom
resource KEY is at least VALUE.

Faults: a node that dies or a Ray worker killed mid-group ends that attempt; the runner fails
the cell in progress with the reason (a fresh worker elsewhere goes on with the rest), unless
``retries`` allows the group to be re-run on another node first. Ctrl-C on the driver cancels
every remote task (their workers die with them) and leaves the result file valid.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlbench.errors import ConfigError
from dlbench.execution.executors import ALL_NODES, NODE_SEP, split_device
from dlbench.execution.supervisor import EventHandler, Outcome

try:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
except ImportError as exc:  # pragma: no cover - the extra is not installed
    raise ConfigError(
        "Expected Ray for --executor ray. Received: it is not installed; pip install "
        f"'dlbench[ray]' ({exc})"
    ) from None

#: The dataset split is shipped to the nodes when its inputs are at most this big (bytes);
#: a larger one is loaded by each node from its own files (said in a warning).
SHIP_LIMIT_BYTES = 1 << 30
#: Environment variables of the driver that every remote worker gets as they are.
FORWARDED_PREFIX = "DLBENCH_"


class _Cancelled(BaseException):
    """The run was interrupted: a group thread ends without recording anything more."""


@dataclass
class Node:
    """One alive Ray node as the executor sees it."""

    name: str
    node_id: str
    address: str
    resources: dict[str, float]
    labels: dict[str, str]
    busy: bool = False
    started: int = 0
    alive: bool = True
    environment: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "address": self.address,
            "resources": self.resources,
            "labels": self.labels,
            "environment": self.environment,
        }


class _RemoteWorker:
    """What the runner's ``on_start`` reads of a worker (``worker.proc.pid``), for a remote one."""

    def __init__(self, pid: int) -> None:
        self.proc = type("RemoteProc", (), {"pid": pid})()


def _node_name(node: dict[str, Any], hosts: list[str]) -> str:
    host = node.get("NodeManagerHostname") or node.get("NodeManagerAddress") or "node"
    label = (node.get("Labels") or {}).get("dlbench.node")
    if label:
        return str(label)
    return host if hosts.count(host) == 1 else f"{host}-{node['NodeID'][:6]}"


@ray.remote(max_calls=1, max_retries=0, num_cpus=0)
def _capture_environment() -> dict[str, Any]:
    """A node's environment (the same capture as a local run's) and whether it is busy now, in
    a fresh Ray worker."""
    from dlbench.execution import environment

    return {**environment.capture(), "busy": environment.busy_message(environment.machine_load())}


@ray.remote(max_calls=1, max_retries=0)
def _group_task(*args: Any) -> Iterator[dict[str, Any]]:
    """One group on this node (:func:`_group_items`), its items streamed as generator items."""
    yield from _group_items(*args)


@ray.remote(max_calls=1, max_retries=0)
def _group_task_queued(out: Any, *args: Any) -> None:
    """The same through a ``ray.util.queue.Queue`` ``out``: Ray Client (``ray://``) has no
    generator tasks."""
    for item in _group_items(*args):
        out.put(item)


def _group_items(
    job: dict[str, Any],
    env_set: dict[str, str],
    env_unset: list[str],
    files: dict[str, bytes],
    data: Any,
    tag: str,
    timeout: float,
) -> Iterator[dict[str, Any]]:
    """One group on this node: its files written here, the dlbench worker supervised in a fresh
    process, each event yielded as it comes (a parity event carries its outputs)."""
    import queue

    from dlbench.execution import environment
    from dlbench.execution.executors import shipped
    from dlbench.execution.supervisor import run_workdir, supervise

    job = dict(job)
    want = job.pop("driver_nice", None)  # Ray starts its workers at a niceness of its own (15)
    if want is not None and os.nice(0) != want:
        with contextlib.suppress(OSError):  # lowering it needs the privilege: else recorded
            os.setpriority(os.PRIO_PROCESS, 0, want)
    yield {
        "kind": "node",
        "pid": os.getpid(),
        "node_id": ray.get_runtime_context().get_node_id(),
        "nice": os.nice(0),
    }
    with run_workdir() as workdir:
        for name, blob in files.items():
            (workdir / name).write_bytes(blob)
        job["spec_path"] = str(workdir / Path(job["spec_path"]).name)
        if job.get("onnx_path"):
            job["onnx_path"] = str(workdir / Path(job["onnx_path"]).name)
        job["parity_path"] = str(workdir / Path(job["parity_path"]).name)
        env = {k: v for k, v in os.environ.items() if k not in env_unset}
        env.update(env_set)
        if data is not None:
            name, inputs, targets, info = data
            env[shipped.ENV_VAR] = str(shipped.write(workdir / "data", name, inputs, targets, info))
            plugins = [p for p in env.get("DLBENCH_WORKER_PLUGINS", "").split(",") if p]
            env["DLBENCH_WORKER_PLUGINS"] = ",".join([shipped.__name__, *plugins])
        events: queue.Queue = queue.Queue()
        before: dict[str, Any] = {}

        def on_event(ev: dict[str, Any]) -> bool:
            kind = ev.get("type")
            if kind == "parity":
                ev = {**ev, "outputs": np.load(ev["path"], allow_pickle=False)}
            elif kind == "start":  # this node's load around each cell, not the driver's
                before[ev["id"]] = environment.machine_load()
            elif kind == "cell" and isinstance(ev.get("record"), dict):
                after = environment.machine_load()
                machine = {"before": before.get(ev["id"], after), "after": after}
                ev = {**ev, "record": {**ev["record"], "machine": machine}}
            events.put({"kind": "event", "event": ev})
            return ev.get("type") == "fatal"

        def target() -> None:
            try:
                out = supervise(
                    job,
                    env,
                    workdir,
                    tag,
                    on_event,
                    timeout,
                    lambda w: events.put({"kind": "worker", "pid": w.proc.pid}),
                )
                events.put({"kind": "outcome", "outcome": asdict(out)})
            except BaseException as exc:  # report it, whatever it was
                events.put({"kind": "error", "error": f"{type(exc).__name__}: {exc}"})

        thread = threading.Thread(target=target, daemon=True, name=f"dlbench-{tag}")
        thread.start()
        while True:
            item = events.get()
            yield item
            if item["kind"] in ("outcome", "error"):
                break
        thread.join()


class RayExecutor:
    """Runs cell groups as Ray tasks (see the module docstring)."""

    name = "ray"
    concurrent = True

    def __init__(self, config: Any) -> None:
        self.config = config
        self.lock = threading.RLock()  # the runner's state: held by a group except while waiting
        self.changed = threading.Condition(self.lock)
        self.nodes: dict[str, Node] = {}
        self.fleet = config.nodes == ALL_NODES
        self.cancelled = False
        self.inflight: set[Any] = set()
        self.doc: dict[str, Any] | None = None
        self._owns_ray = False
        self._files: dict[str, Any] = {}
        self._data: Any = None
        self._groups: dict[str, list[dict[str, Any]]] = {}

    # -- the cluster ------------------------------------------------------------------------
    def _connect(self) -> None:
        if not ray.is_initialized():
            ray.init(
                address=self.config.ray_address,
                log_to_driver=False,
                include_dashboard=False,
                configure_logging=False,
            )
            self._owns_ray = True

    def _discover(self) -> list[Node]:
        alive = [n for n in ray.nodes() if n.get("Alive")]
        hosts = [n.get("NodeManagerHostname") or n.get("NodeManagerAddress") for n in alive]
        found = [
            Node(
                name=_node_name(n, hosts),
                node_id=n["NodeID"],
                address=n.get("NodeManagerAddress", ""),
                resources={k: float(v) for k, v in (n.get("Resources") or {}).items()},
                labels={str(k): str(v) for k, v in (n.get("Labels") or {}).items()},
            )
            for n in alive
        ]
        return sorted(found, key=lambda n: n.name)

    def cpus_needed(self) -> float:
        return float(self.config.intra_op_threads * self.config.inter_op_threads)

    def _select(self, nodes: list[Node]) -> list[Node]:
        spec = self.config.nodes
        if spec is None or spec == ALL_NODES:
            chosen = list(nodes)
        else:
            key, _, value = (s.strip() for s in spec.partition("="))
            chosen = [n for n in nodes if _matches(n, key, value)]
            if not chosen:
                seen = "; ".join(
                    f"{n.name}: labels {n.labels}, resources {_custom(n.resources)}" for n in nodes
                )
                raise ConfigError(
                    f"Expected an alive Ray node with label or custom resource {spec}. "
                    f"Received: {seen or 'no alive node'}"
                )
        need = self.cpus_needed()
        enough = [n for n in chosen if n.resources.get("CPU", 0) >= need]
        if not enough:
            raise ConfigError(
                f"Expected a Ray node with at least {need:g} CPUs (intra-op x inter-op "
                "threads). Received: "
                + ", ".join(f"{n.name} ({n.resources.get('CPU', 0):g})" for n in chosen)
            )
        return enough

    # -- the executor interface --------------------------------------------------------------
    def expand(self, cells: list[Any], doc: dict[str, Any], dataset: Any = None) -> list[Any]:
        """Connect, choose the nodes and record them (with each one's environment); in a fleet
        run (``nodes="all"``) one copy of every cell per node, its device ``<device>@<node>``."""
        self.doc = doc
        self._connect()
        chosen = self._select(self._discover())
        self.nodes = {n.name: n for n in chosen}
        envs = ray.get(
            [
                _capture_environment.options(
                    scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, soft=False)
                ).remote()
                for n in chosen
            ]
        )
        for node, env in zip(chosen, envs):
            busy = env.pop("busy", None)
            node.environment = env
            if busy:
                self._warn(f"Ray node {node.name}: {busy}")
        doc["environment"]["executor"] = {
            "name": self.name,
            "ray_version": ray.__version__,
            "address": self.config.ray_address,
            "nodes_selector": self.config.nodes,
            "fleet": self.fleet,
            "allow_colocate": self.config.allow_colocate,
            "retries": self.config.retries,
            "cpus_per_group": self.cpus_needed(),
            "nodes": {n.name: n.describe() for n in chosen},
            "groups": self._groups,
        }
        if dataset is not None:
            self._data = self._ship(dataset)
        if not self.fleet:
            return cells
        return [
            dataclasses.replace(c, device=f"{c.device}{NODE_SEP}{name}")
            for name in self.nodes
            for c in cells
        ]

    def _ship(self, dataset: Any) -> Any:
        """The split through the object store (inputs, targets, info), or None when it is too
        big or its targets are not one numeric array (then each node loads it itself)."""
        name = self.config.dataset
        why = None
        size = len(dataset)
        try:
            batch = dataset.get_batch(np.arange(size))
            inputs, targets = np.asarray(batch.inputs), batch.targets
            if not isinstance(targets, np.ndarray) or targets.dtype == object:
                why = "its targets are not one numeric array"
            elif inputs.nbytes > SHIP_LIMIT_BYTES:
                why = f"its inputs take {inputs.nbytes / 2**20:.0f} MiB"
        except Exception as exc:  # a dataset that cannot be read whole: loaded on each node
            why = f"it could not be read whole here ({type(exc).__name__}: {exc})"
        if why is not None:
            self._warn(
                f"Dataset {name!r} is not shipped to the Ray nodes ({why}): each node loads it "
                "from its own files (dataset_root must exist there)."
            )
            return None
        return ray.put((name, inputs, targets, dataset.info.to_dict()))

    def run_groups(self, groups: list[tuple[Any, Any]], run_one: Callable[..., None]) -> None:
        """``run_one(job, cells)`` for every group at once, each in a driver thread holding
        :attr:`lock` except while it waits on Ray; Ctrl-C cancels every remote task."""
        errors: list[BaseException] = []

        def body(job: Any, cells: Any) -> None:
            try:
                with self.lock:
                    run_one(job, cells)
            except _Cancelled:
                pass
            except BaseException as exc:  # the others are stopped, the error raised in the caller
                errors.append(exc)
                self.cancel()

        threads = [
            threading.Thread(target=body, args=group, daemon=True, name="dlbench-group")
            for group in groups
        ]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except KeyboardInterrupt:
            self.cancel()
            for t in threads:
                t.join(30)
            raise
        if errors:
            raise errors[0]

    def cancel(self) -> None:
        """Stop every remote task (force: its Ray worker, and the dlbench worker with it)."""
        with self.lock:
            self.cancelled = True
            refs = list(self.inflight)
            self.changed.notify_all()
        for ref in refs:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)

    def close(self) -> None:
        """Disconnect from a cluster this executor connected to."""
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()

    # -- one attempt of a group ---------------------------------------------------------------
    def supervise(
        self,
        job: dict[str, Any],
        env: dict[str, str],
        workdir: Path,
        tag: str,
        on_event: EventHandler,
        timeout: float,
        on_start: Callable[[Any], None] | None = None,
    ) -> Outcome:
        """Run ``job`` as a Ray task, feeding its events to ``on_event`` as they arrive; the
        same contract as :func:`~dlbench.execution.supervisor.supervise`. A node or Ray worker
        that dies is an :class:`Outcome` that crashed with the reason, after ``retries``
        re-runs of the cells it had not finished on other nodes."""
        group = f"{job['backend']}/{job['device']}"
        device, pinned = split_device(job["device"])
        job = {**job, "device": device}
        gpus = 0 if device.startswith("cpu") else 1
        env_set = {k: v for k, v in env.items() if os.environ.get(k) != v}
        env_set.update({k: v for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIX)})
        env_unset = [k for k in os.environ if k not in env]
        files = self._job_files(job)
        retries_left = self.config.retries
        tried: list[str] = []
        record = self._groups.setdefault(group, [])
        reported: set[str] = set()
        while True:
            node = self._acquire(pinned, gpus, tried)
            if isinstance(node, str):  # why no node can run it
                return Outcome(exit_reason=node)
            attempt = {"node": node.name, "tag": tag, "started": time.time()}
            record.append(attempt)
            try:
                outcome, lost = self._attempt(
                    node,
                    job,
                    env_set,
                    env_unset,
                    files,
                    tag,
                    on_event,
                    timeout,
                    on_start,
                    reported,
                    gpus,
                    attempt,
                )
            finally:
                self._release(node)
            attempt.update(finished=time.time(), lost=lost, exit_reason=outcome.exit_reason)
            if lost is None or retries_left <= 0 or self.cancelled:
                return outcome
            retries_left -= 1
            tried.append(node.name)
            job = {**job, "cells": [c for c in job["cells"] if c["id"] not in reported]}
            if not job["cells"]:
                return outcome
            self._warn(f"{lost}; {job['backend']} on {device} is re-run on another node.")

    def _attempt(
        self,
        node: Node,
        job: dict[str, Any],
        env_set: dict[str, str],
        env_unset: list[str],
        files: Any,
        tag: str,
        on_event: EventHandler,
        timeout: float,
        on_start: Callable[[Any], None] | None,
        reported: set[str],
        gpus: int,
        attempt: dict[str, Any],
    ) -> tuple[Outcome, str | None]:
        """One remote task on ``node``: its outcome, and why the node or Ray worker was lost
        (None when the worker ended on its own terms)."""
        options = {
            "num_cpus": self.cpus_needed(),
            "num_gpus": gpus,
            "scheduling_strategy": NodeAffinitySchedulingStrategy(node.node_id, soft=False),
        }
        job = {**job, "driver_nice": os.nice(0)}
        args = (job, env_set, env_unset, files, self._data, tag, timeout)
        if _client_mode():
            from ray.util.queue import Queue

            out = Queue(actor_options={"num_cpus": 0})
            ref = _group_task_queued.options(**options).remote(out, *args)
            stream = _from_queue(ref, out, timeout)
        else:
            ref = _group_task.options(**options).remote(*args)
            stream = _from_generator(ref, timeout)
        self.inflight.add(ref)
        parity_path = job["parity_path"]
        try:
            while True:
                with self._unlocked():
                    try:
                        item = next(stream, None)
                    except ray.exceptions.TaskCancelledError:
                        raise _Cancelled from None
                    except _NotStarted as exc:  # pending: resources taken by other work
                        with contextlib.suppress(Exception):
                            ray.cancel(ref, force=True)
                        lost = f"the Ray task did not start on node {node.name} within {exc}"
                        return Outcome(exit_reason=lost), lost
                    except ray.exceptions.RayError as exc:
                        if self.cancelled:
                            raise _Cancelled from None
                        lost = self._lost(node, exc)
                        return Outcome(exit_reason=lost), lost
                if self.cancelled:
                    raise _Cancelled
                if item is None:
                    why = f"the Ray task on node {node.name} ended without an outcome"
                    return Outcome(exit_reason=why), why
                kind = item["kind"]
                if kind == "node":  # the Ray worker process (max_calls=1: a fresh one)
                    attempt["ray_worker_pid"] = item["pid"]
                    attempt["nice"] = item.get("nice")
                    if item.get("nice") != os.nice(0):
                        self._warn(
                            f"Ray workers on node {node.name} run at niceness {item.get('nice')} "
                            f"(this driver at {os.nice(0)}) and could not be set back: under "
                            "contention they get less CPU than a local run."
                        )
                elif kind == "worker":  # the dlbench worker it started
                    attempt["worker_pid"] = item["pid"]
                    if on_start is not None:
                        on_start(_RemoteWorker(item["pid"]))
                elif kind == "event":
                    ev = item["event"]
                    if ev.get("type") == "parity":
                        np.save(parity_path, ev.pop("outputs"), allow_pickle=False)
                        ev["path"] = parity_path
                    elif ev.get("type") == "cell" and isinstance(ev.get("record"), dict):
                        ev["record"]["node"] = node.name
                    elif ev.get("type") == "cell_error":
                        ev["error"] = f"{ev.get('error')} (on node {node.name})"
                    if ev.get("type") in ("cell", "cell_error"):
                        reported.add(ev["id"])
                    on_event(ev)
                elif kind == "outcome":
                    out = Outcome(**item["outcome"])
                    if not out.finished:
                        out.exit_reason = f"{out.exit_reason} on node {node.name}"
                    return out, None
                elif kind == "error":
                    why = f"the Ray task on node {node.name} failed: {item['error']}"
                    return Outcome(exit_reason=why), None
        finally:
            self.inflight.discard(ref)

    def _lost(self, node: Node, exc: BaseException) -> str:
        """Why an attempt was lost, naming the node (marked dead when Ray says it is)."""
        alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
        if node.node_id not in alive:
            node.alive = False
            return f"node {node.name} died ({type(exc).__name__})"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"the Ray worker on node {node.name} was lost ({type(exc).__name__}: {first[:300]})"

    # -- node slots ---------------------------------------------------------------------------
    def _acquire(self, pinned: str | None, gpus: int, tried: list[str]) -> Node | str:
        """A node for one attempt (marked busy unless ``allow_colocate``), waiting while every
        candidate is busy; a string saying why when no alive node can run it."""
        while True:
            if self.cancelled:
                raise _Cancelled
            if pinned is not None:
                candidates = [self.nodes[pinned]] if pinned in self.nodes else []
            else:
                candidates = list(self.nodes.values())
                fresh = [n for n in candidates if n.name not in tried]
                candidates = fresh or candidates
            candidates = [n for n in candidates if n.alive]
            if gpus:
                candidates = [n for n in candidates if n.resources.get("GPU", 0) >= gpus]
            if not candidates:
                where = f"node {pinned}" if pinned else "the nodes chosen"
                what = "alive with a GPU" if gpus else "alive"
                return f"no Ray node to run it: {where} not {what}"
            free = [n for n in candidates if self.config.allow_colocate or not n.busy]
            if free:
                node = min(free, key=lambda n: (n.started, n.name))
                node.started += 1
                node.busy = not self.config.allow_colocate
                return node
            self.changed.wait(0.5)

    def _release(self, node: Node) -> None:
        node.busy = False
        self.changed.notify_all()

    @contextlib.contextmanager
    def _unlocked(self) -> Iterator[None]:
        self.lock.release()
        try:
            yield
        finally:
            self.lock.acquire()

    # -- what travels --------------------------------------------------------------------------
    def _job_files(self, job: dict[str, Any]) -> Any:
        """The files of ``job`` (the spec's ``.json`` and ``.npz``, an exported ONNX file) as
        one object-store reference, put once per set of files."""
        paths: list[Path] = []
        spec = Path(job["spec_path"])
        paths += [p for p in (spec, spec.with_suffix(".npz")) if p.exists()]
        if job.get("onnx_path"):
            paths.append(Path(job["onnx_path"]))
        key = "|".join(str(p) for p in paths)
        if key not in self._files:
            self._files[key] = ray.put({p.name: p.read_bytes() for p in paths})
        return self._files[key]

    def _warn(self, message: str) -> None:
        if self.doc is not None and message not in self.doc["warnings"]:
            self.doc["warnings"].append(message)


def _client_mode() -> bool:
    """Whether the driver is a Ray Client (``ray://``)."""
    try:
        from ray.util.client import ray as client

        return bool(client.is_connected())
    except Exception:  # pragma: no cover - an older or newer layout: assume a plain driver
        return False


class _NotStarted(Exception):
    """A group's task had not started when its start deadline passed."""


def _from_generator(ref: Any, start_timeout: float) -> Iterator[dict[str, Any]]:
    """The items of a generator task; :class:`_NotStarted` when none came within
    ``start_timeout`` seconds (the task is still pending: its node's resources are taken)."""
    deadline = time.monotonic() + start_timeout
    while not ray.wait([ref], timeout=1.0)[0]:
        if time.monotonic() > deadline:
            raise _NotStarted(f"{start_timeout:g} s")
    for item in ref:
        yield ray.get(item)


def _from_queue(
    ref: Any, out: Any, start_timeout: float, poll_s: float = 0.2
) -> Iterator[dict[str, Any]]:
    """The items a queued task puts into ``out``, until it has ended and ``out`` is drained;
    the task's own error (a lost node or worker, a cancel) is raised here, and
    :class:`_NotStarted` when nothing came within ``start_timeout`` seconds."""
    from ray.util.queue import Empty

    deadline = time.monotonic() + start_timeout
    started = False
    try:
        while True:
            try:
                yield out.get(block=True, timeout=poll_s)
                started = True
                continue
            except Empty:
                pass
            if not started and time.monotonic() > deadline:
                raise _NotStarted(f"{start_timeout:g} s")
            done, _ = ray.wait([ref], timeout=0)
            if done:
                while True:
                    try:
                        yield out.get_nowait()
                    except Empty:
                        break
                ray.get(ref)  # raises when the task failed
                return
    finally:
        with contextlib.suppress(Exception):
            ray.kill(out.actor)


def _custom(resources: dict[str, float]) -> dict[str, float]:
    return {
        k: v
        for k, v in resources.items()
        if k not in ("CPU", "GPU", "memory", "object_store_memory") and not k.startswith("node:")
    }


def _matches(node: Node, key: str, value: str) -> bool:
    if node.labels.get(key) == value:
        return True
    if key in node.resources:
        try:
            return node.resources[key] >= float(value)
        except ValueError:
            return False
    return False
