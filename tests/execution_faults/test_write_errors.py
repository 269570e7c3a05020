"""A result file that cannot be written (full disk, read-only, I/O error) never loses a cell:
the run goes on into a rescue file it names, and when nothing at all can be written the
document itself is handed over (the CLI prints it on stdout)."""

from __future__ import annotations

import errno
import json
import os
import textwrap

import pytest

import dlbench
from dlbench.execution import results

CONFIG = {
    "backends": ["numpy"],
    "model": "mlp",
    "scenarios": ["throughput"],
    "batch_sizes": [1, 2, 3],
    "stop_rule": {"warmup_min": 1, "warmup_max": 2, "min_iters": 3, "min_time": 0.0},
}
IDS = [f"numpy/cpu/throughput/bs{b}" for b in (1, 2, 3)]
TOML = (
    'model = "mlp"\nbackends = ["numpy"]\nscenarios = ["throughput"]\nbatch_sizes = [1, 2, 3]\n'
    "[stop_rule]\nwarmup_min = 1\nwarmup_max = 2\nmin_iters = 3\nmin_time = 0.0\n"
)


def _full_disk(monkeypatch, broken, after):
    """``write_atomic`` raises ENOSPC for paths in ``broken`` after ``after`` good writes."""
    real = results.write_atomic
    calls = {"n": 0}

    def write_atomic(path, data):
        if broken(os.fspath(path)):
            calls["n"] += 1
            if calls["n"] > after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))
        return real(path, data)

    monkeypatch.setattr(results, "write_atomic", write_atomic)


@pytest.fixture
def rescue_dir(tmp_path, monkeypatch):
    folder = tmp_path / "rescue"
    folder.mkdir()
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(folder))
    return folder


def test_a_full_disk_moves_the_results_to_a_named_rescue_file(tmp_path, monkeypatch, rescue_dir):
    out = tmp_path / "r.json"
    # writes: the plan, then parity/ready saves, then one per cell: fail from the first cell on
    _full_disk(monkeypatch, lambda p: p == str(out), after=3)
    events, holders = [], []

    def on_event(kind, payload):
        events.append((kind, payload))
        if kind in ("plan", "cell"):  # the run holds its result file from start to end
            holders.append(results.lock_holder(out))

    doc = dlbench.run(CONFIG, out=out, on_event=on_event)
    assert holders == [os.getpid()] * 4
    assert results.lock_holder(out) is None and not results.lock_path(out).exists()
    moved = [p for k, p in events if k == "saved_elsewhere"]
    assert len(moved) == 1
    rescue = rescue_dir / f"r.rescue-{doc['run_id'][:8]}.json"
    assert moved[0] == {"path": str(rescue), "failed": str(out), "error": "No space left on device"}
    saved = results.load(rescue)  # a valid result file, every cell in it
    assert [c["id"] for c in saved["cells"]] == IDS and saved["status"] == "complete"
    assert saved["cells"] == json.loads(json.dumps(doc["cells"]))
    assert any(f"they are written to {rescue} instead" in w for w in saved["warnings"])
    before = results.load(out)  # the last good version stays whole
    assert before["status"] == "running" and len(before["cells"]) < 3


def test_when_nothing_can_be_written_the_document_is_printed(tmp_path, monkeypatch, capsys):
    """Through the command's own code (in-process, to inject the fault): the document that
    could not be written anywhere ends on stdout, with a warning and an error (exit 1)."""
    from dlbench.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    out = tmp_path / "r.json"
    _full_disk(monkeypatch, lambda p: p.endswith(".json"), after=2)  # rescue files too
    config = tmp_path / "c.toml"
    config.write_text(TOML)
    code = main(["run", "--config", str(config), "--out", str(out), "--quiet"])
    printed = capsys.readouterr()
    assert code == 1
    assert printed.err.count("nor any rescue file; measuring on, the results are kept") == 1
    last = printed.err.strip().splitlines()[-1]
    assert last.startswith(f"dlbench: error: Could not write the results to {out} (No space left")
    assert "nor to any rescue file" in last and last.endswith("the result is on stdout above")
    doc = json.loads(printed.out[printed.out.index('{\n "schema"') :])
    results.check_document(doc)
    assert [c["id"] for c in doc["cells"]] == IDS and doc["status"] == "complete"
    assert all(c["status"] == "ok" for c in doc["cells"])


def test_a_disk_that_frees_up_again_gets_the_results(tmp_path, monkeypatch):
    """Nowhere to write for a while: kept in memory, written as soon as a save succeeds."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    out = tmp_path / "r.json"
    real = results.write_atomic
    failing = {"on": False, "failed": 0}

    def write_atomic(path, data):
        if failing["on"]:
            failing["failed"] += 1
            raise OSError(errno.EIO, os.strerror(errno.EIO), os.fspath(path))
        return real(path, data)

    def on_event(kind, payload):
        if kind == "cell":
            failing["on"] = payload["id"] == IDS[0]  # fails for the second cell's save only

    monkeypatch.setattr(results, "write_atomic", write_atomic)
    doc = dlbench.run(CONFIG, out=out, on_event=on_event)
    assert failing["failed"] > 1  # the target, then the rescue files
    assert [c["id"] for c in results.load(out)["cells"]] == IDS
    assert doc["status"] == "complete"


PLUGIN = textwrap.dedent(
    """
    import errno, os
    from dlbench.execution import results

    _real, _n = results.write_atomic, [0]

    def write_atomic(path, data):
        target = os.environ["FAIL_WRITES_TO"]
        if os.path.abspath(path) == target:
            _n[0] += 1
            if _n[0] > 3:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return _real(path, data)

    results.write_atomic = write_atomic
    """
)


def test_the_command_line_says_where_the_results_went(run_cli, tmp_path):
    (tmp_path / "failing_writes.py").write_text(PLUGIN)
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "r.json"
    config = tmp_path / "c.toml"
    config.write_text(TOML)
    pythonpath = [str(tmp_path), os.environ.get("PYTHONPATH")]
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, pythonpath)),
        "TMPDIR": str(tmp_path / "tmp"),
        "FAIL_WRITES_TO": str(out),
    }
    args = ["run", "--config", str(config), "--plugin", "failing_writes", "--out", str(out)]
    proc = run_cli(*args, "--quiet", env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    (rescue,) = (tmp_path / "tmp").glob("r.rescue-*.json")
    assert (
        f"dlbench: warning: could not write {out} (No space left on device); the results "
        f"are written to {rescue} instead" in proc.stderr
    )
    assert f"Results: {rescue}" in " ".join(proc.stdout.split())
    assert [c["id"] for c in results.load(rescue)["cells"]] == IDS
