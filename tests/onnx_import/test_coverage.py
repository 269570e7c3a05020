"""Networks of other libraries (keras.applications via tf2onnx, Hugging Face transformers via
torch.onnx, Flax via jax2onnx) with random weights, exported to ONNX, imported, and run on all
five backends: each backend within 1e-4 of the float64 reference's scale with 100% argmax
agreement, and the reference itself within the same bound of the source framework's output.

A tiny BERT-style encoder (on int64 token ids) runs by default; every source (tiny) and every real
architecture at its real input size are ``slow``."""

from __future__ import annotations

import importlib.util

import pytest

pytest.importorskip("onnx")
from onnx_import_sources import BACKENDS, SOURCES, coverage  # noqa: E402

#: default selection (one, to stay within the CPU budget): erf GELU, attention, layer norm
FAST = ("hf_bert",)
#: the text models, which take int64 token ids (``input_ids``)
TOKEN_IDS = ("hf_bert", "hf_gpt2")


def _check(name: str, small: bool) -> None:
    for module in SOURCES[name].needs:
        pytest.importorskip(module)
    backends = tuple(b for b in BACKENDS if b == "numpy" or importlib.util.find_spec(b) is not None)
    result = coverage(name, small, backends)
    src = result["source"]
    assert src["ok"] and src["argmax_agreement"] == 1.0, src
    for rec in result["records"]:
        assert rec["ok"] and rec["argmax_agreement"] == 1.0, rec
    assert {r["backend"] for r in result["records"]} == set(backends)
    if name in TOKEN_IDS:  # the word-embedding lookup imported, fed int64 ids
        spec = result["spec"]
        assert spec.inputs[0].dtype == "int64" and "embedding" in {n.op for n in spec.nodes}


def _cases(small: bool):
    for name in SOURCES:
        marks = [] if small and name in FAST else [pytest.mark.slow]
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", list(_cases(True)))
def test_tiny_network_on_every_backend(name):
    _check(name, small=True)


@pytest.mark.parametrize("name", list(_cases(False)))
def test_real_network_on_every_backend(name):
    _check(name, small=False)
