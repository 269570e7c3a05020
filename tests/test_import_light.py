"""``import dlbench`` (and its framework-free modules) must not import any framework."""

import subprocess
import sys

FRAMEWORKS = ("torch", "tensorflow", "jax", "onnxruntime", "keras", "onnx")


def _imported_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {FRAMEWORKS!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_import_dlbench_imports_no_framework():
    assert _imported_after("import dlbench") == []


def test_core_modules_import_no_framework():
    code = (
        "import dlbench, dlbench.execution.config, dlbench.execution.runner, dlbench.cli, dlbench.execution.results, "
        "dlbench.execution.environment, dlbench.execution.measure, dlbench.execution.scenarios, dlbench.data\n"
        "dlbench.available_backends(); dlbench.execution.environment.capture()"
    )
    assert _imported_after(code) == []


def test_no_top_level_backends_or_adapters_package_installed():
    import importlib.util

    for name in ("backends", "adapters"):
        spec = importlib.util.find_spec(name)
        # Only acceptable if it is the source checkout on sys.path (running from the repo root).
        if spec is not None:
            assert "site-packages" not in (spec.origin or "")
