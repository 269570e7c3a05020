import pytest

from dlbench.errors import ConfigError
from dlbench.execution.config import BenchmarkConfig


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"batch_sizes": [0]},
            r"Expected `batch_sizes item` to be an int >= 1. Received: batch_sizes item=0",
        ),
        (
            {"batch_sizes": []},
            r"Expected `batch_sizes` to be a non-empty list. Received: batch_sizes=\[\]",
        ),
        ({"batch_sizes": [1, 1]}, r"without duplicates"),
        ({"batch_sizes": ["8"]}, r"Expected every item of `batch_sizes` to be int. Received: '8'"),
        ({"scenarios": ["speed"]}, r"Expected scenarios from .*Received: 'speed'"),
        (
            {"devices": ["gpu"]},
            r"Expected device to be one of 'cpu', 'cuda' or 'cuda:N'. Received: device='gpu'",
        ),
        ({"intra_op_threads": 0}, r"Expected `intra_op_threads` to be an int >= 1"),
        (
            {"timing_mode": "wall"},
            r"Expected timing_mode in \('compute', 'end_to_end'\). Received: timing_mode='wall'",
        ),
        ({"precision": "float8"}, r"Expected precision in"),
        ({"model": ""}, r"Expected `model` to be a non-empty string"),
        ({"stop_rule": {"min_iters": -1}}, r"Expected `min_iters` to be a positive int"),
        ({"stop_rule": {"min_time": 5, "max_time": 1}}, r"Expected min_time <= max_time"),
        ({"stop_rule": {"bogus": 1}}, r"Unknown stop-rule option\(s\) \['bogus'\]"),
        ({"backends": ["torch"], "backend_options": {"jax": {}}}, r"backend_options names 'jax'"),
        ({"cell_timeout": 0}, r"Expected `cell_timeout` > 0"),
    ],
)
def test_validation_errors_say_expected_and_received(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        BenchmarkConfig(**kwargs)


def test_unknown_key_in_dict():
    with pytest.raises(ConfigError, match=r"Unknown config key\(s\) \['modle'\]"):
        BenchmarkConfig.from_dict({"modle": "mlp"})


def test_toml_round_trip_and_overrides(tmp_path):
    path = tmp_path / "bench.toml"
    path.write_text(
        'model = "mlp"\nbackends = ["numpy"]\nbatch_sizes = [4, 8]\nscenarios = ["throughput"]\n'
        "[stop_rule]\nmin_iters = 7\n[backend_options.numpy]\n"
    )
    cfg = BenchmarkConfig.from_toml(path, seed=3)
    assert cfg.batch_sizes == [4, 8] and cfg.seed == 3 and cfg.stop().min_iters == 7
    assert [c.id for c in cfg.cells()] == ["numpy/cpu/throughput/bs4", "numpy/cpu/throughput/bs8"]


def test_bad_toml_is_a_config_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("model = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        BenchmarkConfig.from_toml(path)
    with pytest.raises(ConfigError, match="not found"):
        BenchmarkConfig.from_toml(tmp_path / "missing.toml")


def test_cells_expand_backend_device_scenario_batch():
    cfg = BenchmarkConfig(
        backends=["a", "b"],
        devices=["cpu", "cuda"],
        scenarios=["latency", "throughput", "accuracy"],
        batch_sizes=[2, 4],
        accuracy_batch_size=64,
    )
    ids = [c.id for c in cfg.cells()]
    assert len(ids) == 2 * 2 * (1 + 2 + 1)
    assert ids[:4] == [
        "a/cpu/latency/bs1",
        "a/cpu/throughput/bs2",
        "a/cpu/throughput/bs4",
        "a/cpu/accuracy/bs64",
    ]
