"""The README's Python snippets run as written (issue 22: "the README's examples run").

Every ```python block of README.md is executed, in README order, each in a fresh namespace, all
in one temporary working directory (a block may read a file an earlier block wrote, as a reader
following the README would). Markers on a block's first line:

* ``# not run``: an illustrative fragment (kept to a minimum; prefer a snippet that runs);
* ``# slow``: runs only with ``-m slow`` (it starts benchmark workers, times models); the slow
  blocks run together, in README order, in a directory of their own.

A block naming a framework that is not installed (``import torch``, ``get_backend("jax")``...)
is skipped with that reason. The default blocks run in one subprocess (one interpreter start),
each ``exec``'d into its own namespace.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
FRAMEWORKS = ("torch", "tensorflow", "jax", "onnxruntime", "onnx")


def _blocks() -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    return [
        (text[: m.start()].count("\n") + 2, m.group(1))
        for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M)
    ]


BLOCKS = _blocks()


def _marker(code: str) -> str | None:
    first = code.splitlines()[0] if code.strip() else ""
    found = re.search(r"#\s*(not run|slow)\b", first)
    return found.group(1) if found else None


def _missing(code: str) -> list[str]:
    """Frameworks the block names that are not installed."""
    named = [
        fw
        for fw in FRAMEWORKS
        if re.search(rf"(import {fw}\b|from {fw}\b|[\"']{fw}[\"']|from_{fw}\b)", code)
    ]
    if re.search(r"\bfrom_onnx\b|\bto_onnx\b", code):
        named.append("onnx")
    return sorted({fw for fw in named if importlib.util.find_spec(fw) is None})


_RUNNER = r"""
import json, os, sys, time, traceback
blocks = json.loads(sys.stdin.read())
results = {}
for line, code in blocks:
    start = time.perf_counter()
    try:
        exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "__main__"})
        results[line] = {"ok": True}
    except BaseException:
        results[line] = {"ok": False, "error": traceback.format_exc(limit=8)}
    results[line]["seconds"] = round(time.perf_counter() - start, 2)
print("@@RESULTS@@" + json.dumps(results))
"""


def _run(blocks: list[tuple[int, str]], cwd: Path) -> dict[int, dict]:
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=json.dumps(blocks),
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=900,
    )
    tail = proc.stdout.rsplit("@@RESULTS@@", 1)
    assert len(tail) == 2, f"runner died (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    return {int(k): v for k, v in json.loads(tail[1]).items()}


@pytest.fixture(scope="module")
def default_results(tmp_path_factory) -> dict[int, dict]:
    todo = [(ln, c) for ln, c in BLOCKS if _marker(c) is None and not _missing(c)]
    return _run(todo, tmp_path_factory.mktemp("readme"))


def test_the_readme_has_python_snippets_and_few_are_not_run():
    assert len(BLOCKS) >= 8
    not_run = [ln for ln, c in BLOCKS if _marker(c) == "not run"]
    assert len(not_run) <= 3, f"too many '# not run' blocks at README lines {not_run}"


@pytest.mark.parametrize(
    "line,code",
    [b for b in BLOCKS if _marker(b[1]) is None],
    ids=lambda b: f"line{b}" if isinstance(b, int) else "",
)
def test_readme_snippet_runs(line, code, default_results):
    missing = _missing(code)
    if missing:
        pytest.skip(f"README.md:{line} needs {', '.join(missing)} (not installed)")
    result = default_results[line]
    assert result["ok"], f"README.md:{line} fails as written:\n{result['error']}"


@pytest.fixture(scope="module")
def slow_results(tmp_path_factory) -> dict[int, dict]:
    todo = [(ln, c) for ln, c in BLOCKS if _marker(c) == "slow" and not _missing(c)]
    return _run(todo, tmp_path_factory.mktemp("readme_slow"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "line,code",
    [b for b in BLOCKS if _marker(b[1]) == "slow"],
    ids=lambda b: f"line{b}" if isinstance(b, int) else "",
)
def test_readme_slow_snippet_runs(line, code, slow_results):
    missing = _missing(code)
    if missing:
        pytest.skip(f"README.md:{line} needs {', '.join(missing)} (not installed)")
    result = slow_results[line]
    assert result["ok"], f"README.md:{line} fails as written:\n{result['error']}"


def test_the_runner_reports_a_failing_snippet(tmp_path):
    """A snippet using an undefined name fails here (the check can fail)."""
    results = _run([(1, "x = 1\n"), (2, "print(undefined_name)\n")], tmp_path)
    assert results[1]["ok"] and not results[2]["ok"]
    assert "NameError" in results[2]["error"] and "README.md:2" in results[2]["error"]
