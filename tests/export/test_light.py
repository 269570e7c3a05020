"""``dlbench.export`` stays framework-free until a model is exported."""

import subprocess
import sys

FRAMEWORKS = ("torch", "tensorflow", "jax", "onnxruntime", "keras", "onnx", "tf2onnx", "jax2onnx")


def test_import_export_package_imports_no_framework():
    code = (
        "import dlbench.export, dlbench.cli.export, dlbench.export.requirements, dlbench.cli\n"
        "dlbench.cli.build_parser(); dlbench.export.requirements.missing('torch')\n"
        "import sys\n"
        f"print(' '.join(m for m in {FRAMEWORKS!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []
