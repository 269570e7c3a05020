"""Exceptions raised by dlbench. Every message says what was expected and what was received."""

from __future__ import annotations


class DlbenchError(Exception):
    """Base class of every error dlbench raises on purpose."""


class ConfigError(DlbenchError, ValueError):
    """A benchmark configuration value is invalid."""


class SpecError(DlbenchError, ValueError):
    """A ModelSpec is malformed: unknown op, bad attribute, weight shape that does not fit."""


class RegistryError(DlbenchError, KeyError):
    """A name is unknown to a registry, or registered twice."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingFrameworkError(DlbenchError, ImportError):
    """A backend or plugin needs a framework that is not installed."""


class DataError(DlbenchError, ValueError):
    """A dataset file is missing, corrupt, or not in the expected format."""


class UnsafeDataError(DataError):
    """A file tried to do something a dataset file must never do (code in a pickle, ../ paths)."""


class ChecksumError(DataError):
    """A downloaded or supplied archive does not match its published checksum."""


class MetricError(DlbenchError, ValueError):
    """Inputs to a metric are malformed (shapes, NaN, unknown ids)."""


class BackendError(DlbenchError, RuntimeError):
    """A backend failed to build or run a model."""
