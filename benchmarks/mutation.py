"""Mutation score of the test suite: plant one documented bug at a time, see whether tests fail.

Each entry of :data:`mutation_list.MUTATIONS` names a file, an exact snippet of it (which must
occur exactly once), the snippet that replaces it (the planted bug), the class of bug, and the
test files that should catch it. For every mutation this script, in a private COPY of the
repository (never the working tree you run it from):

1. replaces the snippet (a snippet that is no longer there is reported as ``stale``, one found
   more than once as ``ambiguous``: never silently skipped);
2. runs the mutation's tests there: ``python -m pytest -q -x -p no:cacheprovider <tests>`` with
   the project's interpreter, cwd = the copy, ``--import-mode=importlib`` (from pyproject) and
   ``PYTHONPATH`` = the copy plus a ``sitecustomize`` that points the editable install's
   ``dlbench``, ``dlbench.backends`` and ``dlbench.adapters`` at the copy (worker subprocesses
   inherit it);
3. records ``killed`` (the tests fail or time out), ``survived`` (they pass) or ``error`` (the
   tests cannot even run: pytest usage error / nothing collected, or they already fail on the
   unmutated copy, checked once per test selection before any mutation);
4. restores the file.

Before any mutation it checks that ``dlbench``, ``dlbench.backends`` and ``dlbench.adapters``
import from the copy, in the test process and in a subprocess, and runs the *canary* mutations
(deliberately broken code that any import of the copy must trip): if a canary survives, the
tests are importing some other tree and the run stops.

The score is ``killed / (killed + survived)`` per class and overall; stale, ambiguous and error
entries are listed apart (they are bugs of the mutation list or of the tests, not a score).

Usage:
    nice -n 10 .venv/bin/python benchmarks/mutation.py                 # all mutations
    .venv/bin/python benchmarks/mutation.py --check                    # snippets only (stale?)
    .venv/bin/python benchmarks/mutation.py --only parity-tol-1000x,compare-lower-better
    .venv/bin/python benchmarks/mutation.py --cls stats --json mutation.json
    .venv/bin/python benchmarks/mutation.py --rev HEAD                 # a committed tree

By default the copy is the working tree's tracked and untracked-not-ignored files (what you have,
including uncommitted tests); ``--rev REV`` copies a commit instead (``git archive``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from mutation_list import CANARIES, MUTATIONS, Mutation  # noqa: E402

SITECUSTOMIZE = '''\
"""Written by benchmarks/mutation.py: import dlbench (and its mapped subpackages) from the copy."""
import os
import sys
from importlib.util import spec_from_file_location

_ROOT = os.environ["DLBENCH_MUTATION_ROOT"]
_MAP = {
    "dlbench": os.path.join(_ROOT, "dlbench"),
    "dlbench.backends": os.path.join(_ROOT, "backends"),
    "dlbench.adapters": os.path.join(_ROOT, "adapters"),
}
for _mod in list(sys.modules.values()):  # the editable install's finder: repoint it
    _mapping = getattr(_mod, "MAPPING", None)
    if isinstance(_mapping, dict) and "dlbench" in _mapping:
        _mapping.update(_MAP)


class _CopyFinder:
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname in _MAP:
            return spec_from_file_location(fullname, os.path.join(_MAP[fullname], "__init__.py"))
        return None


sys.meta_path.insert(0, _CopyFinder)
'''

PROBE = (
    "import json, dlbench, dlbench.backends, dlbench.adapters, dlbench.backends.numpy.ops as o;"
    "print(json.dumps([dlbench.__file__, dlbench.backends.__file__, dlbench.adapters.__file__,"
    " o.__file__]))"
)


def _copy_tree(dest: Path, rev: str | None) -> None:
    if rev:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        return
    listing = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in listing:
        if not raw:
            continue
        rel = raw.decode()
        src = REPO / rel
        if not src.is_file():  # deleted but still in the index
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


class Sandbox:
    """A copy of the repository, the environment that imports from it, and a test runner."""

    def __init__(self, rev: str | None, python: str, timeout: float, verbose: bool) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="dlbench-mutation-"))
        self.root = self.tmp / "repo"
        self.root.mkdir()
        _copy_tree(self.root, rev)
        site = self.tmp / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        self.python = os.path.abspath(python)  # not resolve(): keep the venv's own path
        self.timeout = timeout
        self.verbose = verbose
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(self.root), str(site)]),
            "DLBENCH_MUTATION_ROOT": str(self.root),
            "PYTHONDONTWRITEBYTECODE": "1",  # no .pyc of a mutated file can outlive it
            "HOME": os.environ.get("HOME", str(self.tmp)),
        }
        self.env.pop("PYTEST_ADDOPTS", None)

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def check_imports(self) -> None:
        """Fail loudly unless the copy's modules are the ones imported (here and in children)."""
        out = subprocess.run(
            [self.python, "-c", PROBE],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode:
            raise SystemExit(f"import probe failed in the copy:\n{out.stderr}")
        files = json.loads(out.stdout.strip().splitlines()[-1])
        wrong = [f for f in files if not Path(f).resolve().is_relative_to(self.root.resolve())]
        if wrong:
            raise SystemExit(f"the copy is not what is imported: {wrong} (copy: {self.root})")

    def run_tests(self, tests: tuple[str, ...]) -> tuple[str, float, str]:
        """``(outcome, seconds, tail)`` with outcome ``pass``, ``fail``, ``timeout`` or ``error``."""
        cmd = [self.python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
        t0 = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            return "timeout", time.monotonic() - t0, out[-2000:]
        dt = time.monotonic() - t0
        tail = out[-2000:]
        if proc.returncode == 0:
            return "pass", dt, tail
        if proc.returncode in (1, 2):  # tests failed / collection failed (an import error)
            return "fail", dt, tail
        return "error", dt, tail  # 3 internal error, 4 usage error, 5 no tests collected

    def apply(self, m: Mutation) -> tuple[Path, str] | str:
        """Plant ``m``; returns (path, original text) or a status (``stale``/``ambiguous``)."""
        path = self.root / m.file
        if not path.is_file():
            return "stale"
        text = path.read_text()
        n = text.count(m.original)
        if n == 0:
            return "stale"
        if n > 1:
            return "ambiguous"
        path.write_text(text.replace(m.original, m.mutated))
        return path, text


def check_snippets(mutations: list[Mutation]) -> dict[str, str]:
    """Status of every snippet in the working tree: ``ok``, ``stale`` or ``ambiguous``."""
    out = {}
    for m in mutations:
        path = REPO / m.file
        n = path.read_text().count(m.original) if path.is_file() else 0
        out[m.id] = "ok" if n == 1 else ("stale" if n == 0 else "ambiguous")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated mutation ids")
    parser.add_argument("--cls", help="comma-separated classes")
    parser.add_argument("--check", action="store_true", help="only check that snippets exist")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--rev", help="copy this commit instead of the working tree")
    parser.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"))
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per test run")
    parser.add_argument("--json", help="write the outcome of every mutation here")
    parser.add_argument("--keep", action="store_true", help="keep the copy (its path is printed)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print the tail of each run")
    args = parser.parse_args(argv)

    ids = [m.id for m in MUTATIONS + CANARIES]
    dup = [k for k, v in Counter(ids).items() if v > 1]
    if dup:
        raise SystemExit(f"duplicate mutation ids: {dup}")
    selected = list(MUTATIONS)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - set(ids)
        if unknown:
            raise SystemExit(f"unknown mutation ids: {sorted(unknown)}")
        selected = [m for m in MUTATIONS if m.id in wanted]
    if args.cls:
        classes = set(args.cls.split(","))
        selected = [m for m in selected if m.cls in classes]
    if args.list:
        for m in selected:
            print(f"{m.id:38s} {m.cls:10s} {m.file}  -- {m.bug}")
        print(f"{len(selected)} mutations")
        return 0
    if args.check:
        status = check_snippets(selected + CANARIES)
        bad = {k: v for k, v in status.items() if v != "ok"}
        for k, v in bad.items():
            print(f"{v.upper():9s} {k}")
        print(f"{len(status) - len(bad)} of {len(status)} snippets found exactly once")
        return 1 if bad else 0

    box = Sandbox(args.rev, args.python, args.timeout, args.verbose)
    print(f"copy: {box.root}", flush=True)
    results: list[dict] = []
    try:
        box.check_imports()
        print("imports resolve to the copy (probe subprocess)", flush=True)
        baseline: dict[tuple[str, ...], tuple[str, str]] = {}

        def baseline_of(tests: tuple[str, ...]) -> tuple[str, str]:
            if tests not in baseline:
                outcome, dt, tail = box.run_tests(tests)
                baseline[tests] = (outcome, tail)
                print(f"  baseline {' '.join(tests)}: {outcome} ({dt:.0f} s)", flush=True)
            return baseline[tests]

        def one(m: Mutation) -> dict:
            rec = {"id": m.id, "cls": m.cls, "file": m.file, "bug": m.bug, "tests": list(m.tests)}
            base, base_tail = baseline_of(m.tests)
            if base != "pass":
                rec.update(status="error", detail=f"tests do not pass unmutated: {base_tail}")
                return rec
            planted = box.apply(m)
            if isinstance(planted, str):
                rec.update(status=planted, detail="snippet not found exactly once")
                return rec
            path, original = planted
            try:
                outcome, dt, tail = box.run_tests(m.tests)
            finally:
                path.write_text(original)
            status = {"pass": "survived", "fail": "killed", "timeout": "killed"}.get(
                outcome, "error"
            )
            rec.update(status=status, seconds=round(dt, 1), outcome=outcome)
            if status != "killed" or box.verbose:
                rec["detail"] = tail
            return rec

        for c in CANARIES:
            rec = one(c)
            print(f"canary {c.id}: {rec['status']}", flush=True)
            if rec["status"] != "killed":
                raise SystemExit(
                    f"canary {c.id} was not caught ({rec['status']}): the tests do not run the "
                    f"copy's code, so no score would mean anything.\n{rec.get('detail', '')}"
                )
        for i, m in enumerate(selected, 1):
            rec = one(m)
            results.append(rec)
            extra = f" ({rec['seconds']} s)" if "seconds" in rec else ""
            print(f"[{i}/{len(selected)}] {rec['status']:9s} {m.id}{extra}", flush=True)
            if box.verbose and rec.get("detail"):
                print(rec["detail"])
    finally:
        if args.keep:
            print(f"kept: {box.tmp}")
        else:
            box.close()

    per: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        per[r["cls"]][r["status"]] += 1
    print("\nclass        killed  survived  score   other")
    tot = Counter()
    for cls in sorted(per):
        c = per[cls]
        tot.update(c)
        scored = c["killed"] + c["survived"]
        score = f"{100 * c['killed'] / scored:5.1f}%" if scored else "  n/a "
        other = ", ".join(f"{k} {v}" for k, v in c.items() if k not in ("killed", "survived"))
        print(f"{cls:12s} {c['killed']:6d} {c['survived']:9d}  {score}  {other}")
    scored = tot["killed"] + tot["survived"]
    total_score = 100 * tot["killed"] / scored if scored else float("nan")
    other = ", ".join(f"{k} {v}" for k, v in tot.items() if k not in ("killed", "survived"))
    print(f"{'overall':12s} {tot['killed']:6d} {tot['survived']:9d}  {total_score:5.1f}%  {other}")
    for label in ("survived", "stale", "ambiguous", "error"):
        rows = [r for r in results if r["status"] == label]
        if rows:
            print(f"\n{label.upper()}:")
            for r in rows:
                print(f"  {r['id']} ({r['file']}): {r['bug']}")
                if label == "error":
                    print("    " + (r.get("detail") or "").strip().replace("\n", "\n    ")[-600:])
    if args.json:
        Path(args.json).write_text(json.dumps({"score": total_score, "results": results}, indent=1))
    return 0 if not any(r["status"] in ("stale", "ambiguous", "error") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
