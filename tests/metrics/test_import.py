"""dlbench.metrics stays cheap to import and framework-free; the registry finds every class."""

from __future__ import annotations

import subprocess
import sys

from dlbench.registry import metrics as registry


def test_import_loads_no_framework_and_no_engine():
    code = (
        "import sys, dlbench.metrics\n"
        "heavy = {'torch', 'tensorflow', 'jax', 'onnxruntime', 'sklearn', 'scipy',"
        " 'faster_coco_eval', 'pycocotools'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_registry_names_resolve():
    for name in registry.names():
        if registry.entry(name).origin == "builtin":
            assert isinstance(registry.get(name), type)
