"""The one JSON conversion every writer uses."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from dlbench.serialize import to_json_safe


def test_numpy_tuples_keys_paths_and_non_finite() -> None:
    value = {
        1: (np.float32(0.5), np.int64(3), np.bool_(True)),
        "arr": np.arange(4, dtype=np.int16).reshape(2, 2),
        "nan": float("nan"),
        "inf": np.float64("inf"),
        "path": Path("/tmp/x"),
        "raw": b"\x01\xff",
    }
    out = to_json_safe(value)
    assert out == {
        "1": [0.5, 3, True],
        "arr": [[0, 1], [2, 3]],
        "nan": None,
        "inf": None,
        "path": "/tmp/x",
        "raw": "01ff",
    }
    json.dumps(out, allow_nan=False)  # really JSON
    assert type(out["1"][1]) is int and type(out["1"][2]) is bool


def test_strict_refuses_what_json_cannot_hold() -> None:
    assert to_json_safe({"k": [1, 2.5, "s", None]}, strict=True) == {"k": [1, 2.5, "s", None]}
    with pytest.raises(ValueError, match="finite"):
        to_json_safe([math.nan], strict=True)
    with pytest.raises(TypeError, match="Expected a JSON value"):
        to_json_safe({"f": object()}, strict=True)
    with pytest.raises(TypeError, match="complex"):
        to_json_safe({"f": complex(1, 2)})
    assert to_json_safe({"f": complex(1, 2)}, stringify=True) == {"f": "(1+2j)"}


def test_only_one_json_conversion_in_the_core() -> None:
    root = Path(__file__).resolve().parents[1] / "dlbench"
    copies = [
        p.relative_to(root).as_posix()
        for p in root.rglob("*.py")
        if "def _jsonable(" in p.read_text(encoding="utf-8") and p.name != "spec.py"
    ]
    assert copies == []  # spec.py's is a strict wrapper of to_json_safe
