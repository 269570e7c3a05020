"""Executors: where a run's cell groups run (issue 18).

- ``local`` (default): each (backend, device) group in a fresh worker process on this machine,
  one group after another (:mod:`dlbench.execution.executors.local`, the supervisor as always).
- ``ray``: each group as a Ray task on a cluster that starts the same worker in a fresh process
  on its node (:mod:`dlbench.execution.executors.ray`); the driver keeps the one result file.

Nothing here imports Ray: :func:`get_executor` loads the Ray executor only when it is asked for.
"""

from __future__ import annotations

from typing import Any

from dlbench.errors import ConfigError

EXECUTORS = ("local", "ray")
#: ``--nodes all``: every alive node runs the whole benchmark (a fleet comparison).
ALL_NODES = "all"
#: In a fleet run a cell's device is ``<device>@<node>``: the node is a column of every view.
NODE_SEP = "@"


def check_executor_fields(config: Any) -> None:
    """Validate the executor fields of a :class:`~dlbench.execution.config.BenchmarkConfig`.

    Raises:
        ConfigError: "Expected X. Received: Y" for the first bad field.
    """
    if config.executor not in EXECUTORS:
        raise ConfigError(
            f"Expected executor in {EXECUTORS}. Received: executor={config.executor!r}"
        )
    for name in ("ray_address", "nodes"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(
                f"Expected `{name}` to be a non-empty string or None. Received: {name}={value!r}"
            )
    if config.nodes is not None and config.nodes != ALL_NODES:
        key, sep, value = config.nodes.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(
                "Expected `nodes` to be 'all' or KEY=VALUE (a node label or a custom resource). "
                f"Received: nodes={config.nodes!r}"
            )
    if not isinstance(config.allow_colocate, bool):
        raise ConfigError(
            "Expected `allow_colocate` to be true or false. Received: "
            f"allow_colocate={config.allow_colocate!r}"
        )
    retries = config.retries
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ConfigError(f"Expected `retries` to be an int >= 0. Received: retries={retries!r}")
    if config.executor == "local":
        given = [
            f"{name}={getattr(config, name)!r}"
            for name, default in (
                ("ray_address", None),
                ("nodes", None),
                ("allow_colocate", False),
                ("retries", 0),
            )
            if getattr(config, name) != default
        ]
        if given:
            raise ConfigError(
                "Expected executor='ray' for the Ray settings. Received: executor='local' with "
                + ", ".join(given)
            )


def split_device(device: str) -> tuple[str, str | None]:
    """``("cpu", "node-a")`` for a fleet cell's ``cpu@node-a``; ``(device, None)`` otherwise."""
    base, sep, node = device.partition(NODE_SEP)
    return base, (node if sep else None)


def get_executor(config: Any) -> Any:
    """The executor of ``config``: a :class:`~dlbench.execution.executors.local.LocalExecutor`
    (the supervisor path as it always was) or a Ray one, imported only here."""
    if config.executor == "local":
        from dlbench.execution.executors.local import LocalExecutor

        return LocalExecutor(config)
    from dlbench.execution.executors.ray import RayExecutor

    return RayExecutor(config)
