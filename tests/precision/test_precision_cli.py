"""``dlbench run --precision`` / ``--calibration-samples`` / ``--profile edge`` become the config."""

from __future__ import annotations

import pytest

from dlbench.cli import build_parser
from dlbench.cli.run import config_from_args
from dlbench.errors import ConfigError


def _config(*argv: str):
    return config_from_args(build_parser().parse_args(["run", "--backends", "numpy", *argv]))


def test_precision_flag() -> None:
    cfg = _config("--precision", "float32,int8", "--calibration-samples", "64")
    assert cfg.precisions() == ["float32", "int8"] and cfg.calibration_samples == 64
    assert _config().precision == "float32"


def test_bad_precision_flag() -> None:
    with pytest.raises(ConfigError, match="Expected precision"):
        _config("--precision", "int4")


def test_edge_profile_and_flags_over_it() -> None:
    cfg = _config("--profile", "edge")
    assert cfg.intra_op_threads == 1 and cfg.inter_op_threads == 1
    assert cfg.scenarios == ["latency", "accuracy"] and cfg.batch_sizes == [1]
    assert cfg.precisions() == ["float32", "float16", "int8"]
    cfg = _config("--profile", "edge", "--precision", "int8", "--threads", "2")
    assert cfg.precisions() == ["int8"] and cfg.intra_op_threads == 2
