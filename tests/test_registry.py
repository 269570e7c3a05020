import subprocess
import sys
import textwrap

import pytest

from dlbench.errors import MissingFrameworkError, RegistryError
from dlbench.registry import Registry, backends, is_installed


def test_builtin_backends_are_listed_without_importing():
    assert {"numpy", "torch", "tensorflow", "jax", "onnxruntime"} <= set(backends.names())
    assert "numpy" in backends.available()


def test_register_twice_is_an_error_unless_overwrite():
    reg = Registry("thing", "dlbench.test-nothing")
    reg.register("a", "json:dumps")
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("a", "json:loads")
    reg.register("a", "json:loads", overwrite=True)
    import json

    assert reg.get("a") is json.loads


def test_unknown_name_lists_known_ones():
    reg = Registry("thing", "dlbench.test-nothing")
    reg.register("alpha", "json:dumps")
    with pytest.raises(RegistryError, match=r"Unknown thing 'beta'. Expected one of: alpha"):
        reg.get("beta")


def test_missing_framework_names_the_extra():
    reg = Registry("backend", "dlbench.test-nothing")
    reg.register("ghost", "ghost_fw.backend:B", requires=["ghost_fw_not_installed"], extra="ghost")
    assert reg.available() == []
    with pytest.raises(MissingFrameworkError, match=r"pip install 'dlbench\[ghost\]'"):
        reg.get("ghost")


def test_lazy_import_happens_once():
    reg = Registry("thing", "dlbench.test-nothing")
    reg.register("d", "collections:OrderedDict")
    assert reg.get("d") is reg.get("d")


def test_is_installed():
    assert is_installed("json")
    assert not is_installed("surely_not_a_module_xyz")


def _make_plugin_dist(root, group, name, target, module_name, module_source):
    """A real installed distribution (dist-info with entry_points.txt) on a sys.path entry."""
    (root / f"{module_name}.py").write_text(textwrap.dedent(module_source))
    dist = root / f"{module_name}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module_name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\n{name} = {target}\n")


def test_entry_point_plugin_backend_joins_like_a_builtin(tmp_path):
    _make_plugin_dist(
        tmp_path,
        "dlbench.backends",
        "echo",
        "echo_plugin:EchoBackend",
        "echo_plugin",
        """
        from dlbench.backends.numpy.backend import NumpyBackend

        class EchoBackend(NumpyBackend):
            name = "echo"
        """,
    )
    code = textwrap.dedent(
        """
        import numpy as np, dlbench
        assert "echo" in dlbench.available_backends(), dlbench.available_backends()
        from dlbench.registry import backends
        assert backends.entry("echo").origin == "entry point of echo_plugin"
        spec = dlbench.zoo.get("mlp", input_shape=(1, 8, 8), num_classes=10)
        out = dlbench.get_backend("echo").build(spec).predict(np.zeros((3, 1, 8, 8), np.float32))
        print(out.shape)
        """
    )
    env = {"PYTHONPATH": str(tmp_path)}
    import os

    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(3, 10)"


def test_entry_point_clashing_with_builtin_is_an_error(tmp_path):
    _make_plugin_dist(tmp_path, "dlbench.backends", "numpy", "json:dumps", "clash_plugin", "")
    code = "import dlbench; dlbench.available_backends()"
    import os

    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        timeout=60,
    )
    assert proc.returncode != 0
    assert "already registered" in proc.stderr
