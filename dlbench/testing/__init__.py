"""Testing helpers shipped with dlbench, reusable by third-party backends.

- :class:`BackendConformance`: a pytest base class checking a backend op by op and model by
  model against the float64 NumPy reference (see :mod:`dlbench.testing.conformance`);
- :data:`OP_CASES`: single-op specs covering the op set and its attribute variants;
- :func:`op_table_problems`: a backend's op table against the op set and its family's signature.

Importing this module needs pytest but no deep learning framework.
"""

from __future__ import annotations

from dlbench.testing.cases import OP_CASES, OpCase
from dlbench.testing.conformance import SLOW_MODELS, BackendConformance
from dlbench.testing.optables import op_table_problems

__all__ = ["OP_CASES", "OpCase", "BackendConformance", "SLOW_MODELS", "op_table_problems"]
