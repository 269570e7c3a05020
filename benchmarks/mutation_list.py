"""The planted bugs of ``benchmarks/mutation.py``: one plausible mistake each, and its catchers.

Every :class:`Mutation` replaces ``original`` (an exact snippet that must occur once in ``file``)
by ``mutated`` and names the test files that should then fail. Classes (issue 24):

- ``verdict``: exit codes of ``dlbench run``/``compare``, cell status, runner parity, ``--resume``
- ``async``: timing on asynchronous devices (sync inside the timed region, and really waiting)
- ``presented``: secondary and presented numbers (per-category COCO, report table columns,
  curve metadata, data-check counts, wall time net of pauses, throughput)
- ``reference``: the float64 NumPy reference ops
- ``metrics``: classification and COCO metrics
- ``stats``: :mod:`dlbench.analysis.stats`
- ``parity``: :mod:`dlbench.analysis.parity`
- ``report``: the report tables (:mod:`dlbench.report.table`)
- ``compare``: :mod:`dlbench.analysis.compare` verdicts

When a snippet drifts because the code changed, the run reports the mutation as ``stale``:
update the snippet (keep the bug it plants) rather than deleting the entry.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class Mutation:
    id: str
    cls: str
    file: str
    original: str
    mutated: str
    tests: tuple[str, ...]
    bug: str


def M(id, cls, file, original, mutated, tests, bug):  # noqa: N802 - a table, kept short
    if isinstance(tests, str):
        tests = tuple(shlex.split(tests))
    return Mutation(id, cls, file, original, mutated, tuple(tests), bug)


# Tests used by several entries.
T_PARITY = "tests/test_parity.py tests/test_parity_informative.py tests/mutation_killers/test_parity_numbers.py"
T_STATS = "tests/measure/test_stats.py"
T_COMPARE = "tests/test_compare.py tests/mutation_killers/test_compare_verdicts.py"
T_CLI_RUN = "tests/mutation_killers/test_cli_verdicts.py"
T_RUNNER = "tests/mutation_killers/test_runner_verdicts.py"
T_MEASURE = (
    "tests/measure/test_measure.py tests/measure/test_async_sync.py tests/measure/test_wall_time.py"
)
T_REF = "tests/reference_ops/test_numpy_reference.py"
T_CLS = (
    "tests/mutation_killers/test_metric_defaults.py tests/metrics/test_classification.py"
    " -k 'sklearn or auto_average or top_k'"
)
T_COCO = "tests/metrics/test_coco.py tests/metrics/test_coco_per_category.py"
T_TABLE = "tests/report/test_table_numbers.py tests/report/test_console.py"
T_CHECK = "tests/datasets/test_datacheck.py tests/datasets/test_datacheck_failures.py"

P = "dlbench/analysis/parity.py"
S = "dlbench/analysis/stats.py"
C = "dlbench/analysis/compare.py"
R = "dlbench/execution/runner.py"
RES = "dlbench/execution/results.py"
CLI = "dlbench/cli/run.py"
MEAS = "dlbench/execution/measure.py"
OPS = "backends/numpy/ops.py"
CLS = "dlbench/metrics/classification.py"
SC = "dlbench/metrics/scores.py"
EV = "dlbench/metrics/coco/evaluate.py"
TAB = "dlbench/report/table.py"
CHK = "dlbench/data/check.py"

#: Deliberately broken code every test run of the copy must trip: if one survives, the tests
#: import some other tree than the copy and no score would mean anything.
CANARIES: list[Mutation] = [
    M(
        "canary-core",
        "canary",
        P,
        "DEFAULT_TOLERANCE = 1e-4\n",
        "DEFAULT_TOLERANCE = 1e-4\nraise RuntimeError('mutation canary')\n",
        "tests/test_parity.py",
        "dlbench.analysis.parity cannot be imported",
    ),
    M(
        "canary-backends",
        "canary",
        OPS,
        'OPS = InterpreterTable("NumPy")\n',
        "OPS = InterpreterTable(\"NumPy\")\nraise RuntimeError('mutation canary')\n",
        T_REF,
        "dlbench.backends.numpy.ops (mapped from backends/) cannot be imported",
    ),
    M(
        "canary-worker",
        "canary",
        "dlbench/execution/worker.py",
        '    die_with_parent(job.get("parent_pid"))  # never an orphan computing on after its run\n',
        "    raise SystemExit('mutation canary')\n",
        T_RUNNER,
        "the worker subprocess dies at once (code only a worker runs: the worker imports the copy)",
    ),
]

MUTATIONS: list[Mutation] = [
    # ----------------------------------------------------------------------------- verdicts
    M(
        "run-exit0-failed-cell",
        "verdict",
        CLI,
        "return EXIT_FAILED if failed or parity_bad or invalid else EXIT_OK",
        "return EXIT_FAILED if parity_bad or invalid else EXIT_OK",
        T_CLI_RUN,
        "dlbench run returns 0 when a cell failed",
    ),
    M(
        "run-exit0-parity",
        "verdict",
        CLI,
        "return EXIT_FAILED if failed or parity_bad or invalid else EXIT_OK",
        "return EXIT_FAILED if failed or invalid else EXIT_OK",
        T_CLI_RUN,
        "dlbench run returns 0 when a parity check failed",
    ),
    M(
        "run-exit-parity-any-not-ok",
        "verdict",
        CLI,
        'if parity_failed(i.get("parity"))',
        'if not (i.get("parity") or {}).get("ok", True)',
        T_CLI_RUN,
        "dlbench run fails on a parity that is merely not informative",
    ),
    M(
        "run-strict-ignored",
        "verdict",
        CLI,
        'invalid = [c for c in doc["cells"] if c["status"] == "invalid"] if args.strict else []',
        "invalid = []",
        T_CLI_RUN,
        "--strict no longer fails on invalid cells",
    ),
    M(
        "cell-invalid-as-ok",
        "verdict",
        RES,
        '"status": "ok" if validity.get("valid", True) else "invalid",',
        '"status": "ok",',
        T_RUNNER + " tests/test_results.py",
        "an invalid cell is recorded as ok",
    ),
    M(
        "resume-never-retries-failed",
        "verdict",
        RES,
        'if c.get("status") in ("ok", "invalid")}',
        'if c.get("status") in ("ok", "invalid", "failed")}',
        T_RUNNER + " tests/test_results.py",
        "--resume skips failed cells instead of retrying them",
    ),
    M(
        "runner-parity-tol-1000x",
        "verdict",
        R,
        "parity = _parity(compare, reference, out, config.parity_tolerance)",
        "parity = _parity(compare, reference, out, config.parity_tolerance * 1000)",
        T_RUNNER,
        "the runner's parity tolerance loosened 1000x",
    ),
    M(
        "runner-parity-no-warning",
        "verdict",
        R,
        'elif not parity["ok"]:\n                    state.warn(',
        "elif False:\n                    state.warn(",
        T_RUNNER,
        "a failed parity check is not warned about",
    ),
    M(
        "runner-parity-shape-ok",
        "verdict",
        R,
        """    if out.shape != reference.shape:
        return {
            "ok": False,""",
        """    if out.shape != reference.shape:
        return {
            "ok": True,""",
        T_RUNNER,
        "an output of the wrong shape passes the runner's parity check",
    ),
    M(
        "runner-crash-cell-not-failed",
        "verdict",
        R,
        """            if current is not None:
                state.fail(current, reason)
                remaining.remove(current)""",
        """            if current is not None:
                remaining.remove(current)""",
        "tests/test_runner.py::test_a_failing_cell_is_marked_and_the_others_are_kept",
        "a cell whose worker crashed is dropped instead of recorded as failed",
    ),
    M(
        "cell-parity-ok-copied-wrong",
        "verdict",
        RES,
        '"parity_ok": (backend_info.get("parity") or {}).get("ok"),',
        '"parity_ok": True,',
        T_RUNNER,
        "every cell claims parity_ok regardless of its backend's check",
    ),
    M(
        "compare-exit0-regression",
        "verdict",
        "dlbench/cli/compare.py",
        "return EXIT_FAILED if result.regressions else EXIT_OK",
        "return EXIT_OK",
        T_COMPARE,
        "dlbench compare returns 0 with regressions",
    ),
    # ----------------------------------------------------------------------------- compare
    M(
        "compare-lower-better-swapped",
        "compare",
        C,
        "worse = delta > 0 if _lower_is_better(k) else delta < 0",
        "worse = delta < 0 if _lower_is_better(k) else delta > 0",
        T_COMPARE,
        "compare reports higher/lower-is-better metrics the wrong way round",
    ),
    M(
        "compare-lower-better-suffix",
        "compare",
        C,
        'name == k or name.endswith("_" + k) or name.startswith(k + "_")',
        "name == k",
        T_COMPARE,
        "val_loss / top1_error count as higher-is-better",
    ),
    M(
        "compare-failed-in-b-ok",
        "compare",
        C,
        """        elif sb == "failed":
            change.verdict = "regression\"""",
        """        elif sb == "failed":
            change.verdict = "unchanged\"""",
        T_COMPARE,
        "a cell that ran in a but failed in b is not a regression",
    ),
    M(
        "compare-threshold-10x",
        "compare",
        C,
        'if significant and sig["ratio"] > 1.0 + threshold:',
        'if significant and sig["ratio"] > 1.0 + 10 * threshold:',
        T_COMPARE,
        "the regression threshold is 10x what was asked",
    ),
    M(
        "compare-ci-ignored",
        "compare",
        C,
        'significant = sig["p_value"] < alpha and (lo > 1.0 or hi < 1.0)',
        'significant = sig["p_value"] < alpha',
        T_COMPARE,
        "a change whose ratio interval includes 1 counts as significant",
    ),
    M(
        "compare-pvalue-ignored",
        "compare",
        C,
        'significant = sig["p_value"] < alpha and (lo > 1.0 or hi < 1.0)',
        "significant = lo > 1.0 or hi < 1.0",
        T_COMPARE,
        "the significance test's p-value is ignored",
    ),
    M(
        "compare-metric-tolerance",
        "compare",
        C,
        "if abs(delta) > metric_tolerance:",
        "if abs(delta) > 100 * metric_tolerance:",
        T_COMPARE,
        "an accuracy drop of several points is within tolerance",
    ),
    M(
        "compare-rel-inverted",
        "compare",
        C,
        "    return b / a - 1.0",
        "    return a / b - 1.0",
        T_COMPARE,
        "relative changes (and energy per sample) computed as a/b",
    ),
    M(
        "compare-energy-direction",
        "compare",
        C,
        """    if rel > energy_threshold:
        verdicts.append("regression")""",
        """    if rel < -energy_threshold:
        verdicts.append("regression")""",
        T_COMPARE,
        "lower energy per sample reported as the regression",
    ),
    M(
        "compare-ratio-inverted",
        "compare",
        C,
        "ratio = float(np.median(b) / np.median(a))",
        "ratio = float(np.median(a) / np.median(b))",
        T_COMPARE,
        "the median ratio is a/b: slower looks faster",
    ),
    M(
        "compare-fairness-precision",
        "compare",
        C,
        """    "precision",
    "intra_op_threads",""",
        """    "intra_op_threads",""",
        T_COMPARE,
        "runs at different precisions are compared as if comparable",
    ),
    # ----------------------------------------------------------------------------- parity
    M(
        "parity-argmax-ignored",
        "parity",
        P,
        "agreed = finite and abs_diff <= bound and agreement == 1.0",
        "agreed = finite and abs_diff <= bound",
        T_PARITY,
        "argmax disagreement does not fail parity",
    ),
    M(
        "parity-bound-1000x",
        "parity",
        P,
        "bound = tolerance * scale  # one bound",
        "bound = 1000 * tolerance * scale  # one bound",
        T_PARITY,
        "parity bound 1000x looser",
    ),
    M(
        "parity-near-tie-loose",
        "parity",
        P,
        "near_tie = ~same & (np.abs(r2[idx, ra] - r2[idx, oa]) <= bound)",
        "near_tie = ~same & (np.abs(r2[idx, ra] - r2[idx, oa]) <= 100 * bound)",
        T_PARITY,
        "argmax near-ties accepted 100x beyond the bound",
    ),
    M(
        "parity-constant-ref-informative",
        "parity",
        P,
        "    if spread <= 2 * bound:",
        "    if spread < 0:",
        T_PARITY,
        "a constant reference counts as informative",
    ),
    M(
        "parity-per-input-check-dropped",
        "parity",
        P,
        "        if per_input <= 2 * bound:",
        "        if per_input < 0:",
        T_PARITY,
        "an output that ignores its input counts as informative",
    ),
    M(
        "parity-failed-ignores-informative",
        "parity",
        P,
        'return not record.get("ok") and record.get("informative", True) is not False',
        'return not record.get("ok")',
        T_PARITY + " " + T_CLI_RUN,
        "a not-informative parity counts as a failure",
    ),
    M(
        "parity-failed-never",
        "parity",
        P,
        'return not record.get("ok") and record.get("informative", True) is not False',
        'return not record.get("ok") and record.get("informative", False) is not False',
        T_PARITY,
        "an old record without `informative` never counts as failed",
    ),
    M(
        "parity-cosine-self",
        "parity",
        P,
        "cosine = float(np.clip(np.dot(r, o) / (nr * no), -1.0, 1.0))",
        "cosine = float(np.clip(np.dot(r, r) / (nr * nr), -1.0, 1.0))",
        T_PARITY,
        "the cosine similarity compares the reference with itself",
    ),
    M(
        "parity-rel-l2-wrong-norm",
        "parity",
        P,
        "rel_l2 = float(np.linalg.norm(o - r) / nr)",
        "rel_l2 = float(np.linalg.norm(o - r) / (nr + no))",
        T_PARITY,
        "relative L2 error divided by the wrong norm",
    ),
    M(
        "parity-rel-diff-output",
        "parity",
        P,
        "rel_diff = float((diff / np.maximum(np.abs(ref), scale * 1e-6)).max())",
        "rel_diff = float((diff / np.maximum(np.abs(out), scale * 1e-6)).max())",
        T_PARITY,
        "max relative diff relative to the output instead of the reference",
    ),
    M(
        "parity-scale-floor-eps",
        "parity",
        P,
        "SCALE_FLOOR = float(np.finfo(np.float32).tiny)",
        "SCALE_FLOOR = float(np.finfo(np.float32).eps)",
        T_PARITY,
        "the output-scale floor is float32 eps: tiny logits are compared at 1e-11 absolute",
    ),
    M(
        "parity-status-error-mismatch",
        "parity",
        P,
        'return "error" if record.get("error") else "mismatch"',
        'return "mismatch"',
        T_PARITY,
        "a backend that crashed is reported as a mismatch",
    ),
    M(
        "parity-nan-not-flagged",
        "parity",
        P,
        "finite = bool(np.isfinite(out).all())",
        "finite = bool(np.isfinite(out).any())",
        T_PARITY,
        "an output with some NaN is treated as finite",
    ),
    # ----------------------------------------------------------------------------- stats
    M(
        "stats-p99-is-p98",
        "stats",
        S,
        '"p95": 95, "p99": 99}',
        '"p95": 95, "p99": 98}',
        T_STATS,
        "p99 computed at the 98th percentile",
    ),
    M(
        "stats-std-ddof0",
        "stats",
        S,
        '"std": float(x.std(ddof=1)) if x.size > 1 else 0.0,',
        '"std": float(x.std()) if x.size > 1 else 0.0,',
        T_STATS,
        "population instead of sample standard deviation",
    ),
    M(
        "stats-noisy-threshold",
        "stats",
        S,
        "NOISY_IQR_RATIO = 0.10",
        "NOISY_IQR_RATIO = 0.20",
        T_STATS,
        "the noisy flag at 20% IQR/median instead of 10%",
    ),
    M(
        "stats-bootstrap-rank",
        "stats",
        S,
        "m = (n + 1) // 2  # 1-based rank",
        "m = n // 2 + 1  # 1-based rank",
        T_STATS,
        "bootstrap median of odd n uses the rank above the middle",
    ),
    M(
        "stats-bootstrap-even-upper",
        "stats",
        S,
        "    u_next = u_m + (1.0 - u_m) * rng.beta(1, n - m, size=resamples)",
        "    u_next = u_m",
        T_STATS,
        "bootstrap median of even n ignores the upper middle element",
    ),
    M(
        "stats-ci-alpha",
        "stats",
        S,
        "    alpha = (1.0 - confidence) / 2.0\n    lo, hi = np.quantile(medians",
        "    alpha = (1.0 - confidence)\n    lo, hi = np.quantile(medians",
        T_STATS,
        "a 90% interval reported as the 95% CI",
    ),
    M(
        "stats-ci-width-half",
        "stats",
        S,
        "    return (hi - lo) / med",
        "    return (hi - lo) / (2 * med)",
        T_STATS,
        "the relative CI width is half the true one (the target_ci stop rule stops early)",
    ),
    M(
        "stats-iqr-ratio-mean",
        "stats",
        S,
        "ratio = iqr / median if median > 0 else",
        "ratio = iqr / float(x.mean()) if median > 0 else",
        T_STATS,
        "IQR ratio against the mean instead of the median",
    ),
    # ----------------------------------------------------------------------------- async / timing
    M(
        "measure-compute-no-sync",
        "async",
        MEAS,
        "            sync(forward(x))",
        "            forward(x)",
        T_MEASURE,
        "the compute-mode timer does not wait for the device (sync dropped)",
    ),
    M(
        "measure-e2e-no-sync",
        "async",
        MEAS,
        "            sync(y)\n            to_numpy(y)",
        "            to_numpy(y)",
        T_MEASURE,
        "the end-to-end timer does not wait for the device (sync dropped)",
    ),
    M(
        "measure-sync-after-clock",
        "async",
        MEAS,
        "            sync(forward(x))\n            t1 = clock()",
        "            y = forward(x)\n            t1 = clock()\n            sync(y)",
        T_MEASURE,
        "sync called after the timed region closes",
    ),
    M(
        "torch-cuda-sync-nothing",
        "async",
        "backends/torch/backend.py",
        "            torch.cuda.synchronize(self.torch_device)",
        "            pass",
        "tests/measure/test_async_sync.py",
        "torch's CUDA synchronisation replaced with nothing",
    ),
    M(
        "jax-sync-nothing",
        "async",
        "backends/jax/backend.py",
        "        jax.block_until_ready(y)",
        "        pass",
        "tests/measure/test_backend_sync.py tests/measure/test_async_sync.py",
        "JAX's block_until_ready replaced with nothing",
    ),
    M(
        "measure-wall-time-with-pauses",
        "presented",
        MEAS,
        "wall_time=(t1 - start - before_t1) * 1e-9,",
        "wall_time=(t1 - start) * 1e-9,",
        T_MEASURE,
        "wall time (and throughput) include the CI-test pauses",
    ),
    M(
        "measure-wall-time-last-pause",
        "presented",
        MEAS,
        "wall_time=(t1 - start - before_t1) * 1e-9,",
        "wall_time=(t1 - start - paused) * 1e-9,",
        T_MEASURE,
        "the last CI test's pause (after the last call) subtracted too: wall time too short",
    ),
    M(
        "measure-throughput-per-call",
        "presented",
        MEAS,
        "return self.batch_size * self.n / self.wall_time if",
        "return self.n / self.wall_time if",
        T_MEASURE,
        "throughput in calls per second instead of samples per second",
    ),
    M(
        "measure-first-call-last",
        "presented",
        MEAS,
        "first_call=warm[0] * 1e-9,",
        "first_call=warm[-1] * 1e-9,",
        T_MEASURE,
        "first-call time is the last warm-up call",
    ),
    M(
        "measure-steady-loose",
        "presented",
        MEAS,
        "return before > 0 and abs(recent - before) <= tolerance * before",
        "return before > 0 and abs(recent - before) <= 10 * tolerance * before",
        T_MEASURE,
        "warm-up declared steady at 10x the tolerance",
    ),
    # ----------------------------------------------------------------------------- presented
    M(
        "coco-percat-ap50-is-ap55",
        "presented",
        EV,
        '"AP50": _mean_defined(prec[0, :, k, 0, m]),',
        '"AP50": _mean_defined(prec[1, :, k, 0, m]),',
        T_COCO,
        "per-category AP50 taken at IoU 0.55",
    ),
    M(
        "coco-percat-ar100-one-iou",
        "presented",
        EV,
        'f"AR{max_dets[-1]}": _mean_defined(rec[:, k, 0, m]),',
        'f"AR{max_dets[-1]}": _mean_defined(rec[0, k, 0, m]),',
        T_COCO,
        "per-category AR100 at IoU 0.5 only",
    ),
    M(
        "coco-percat-aps-apm-swapped",
        "presented",
        EV,
        """            "APs": _mean_defined(prec[:, :, k, 1, m]),
            "APm": _mean_defined(prec[:, :, k, 2, m]),""",
        """            "APs": _mean_defined(prec[:, :, k, 2, m]),
            "APm": _mean_defined(prec[:, :, k, 1, m]),""",
        T_COCO,
        "per-category APs and APm swapped",
    ),
    M(
        "coco-percat-num-gt-crowd",
        "presented",
        EV,
        "np.searchsorted(gt.category_ids, gt.ann_category[~gt.ann_iscrowd]),",
        "np.searchsorted(gt.category_ids, gt.ann_category),",
        T_COCO,
        "per-category num_gt counts crowd boxes",
    ),
    M(
        "coco-curve-recall-thresholds",
        "presented",
        EV,
        '"recall_thresholds": np.linspace(0.0, 1.0, 101),',
        '"recall_thresholds": np.linspace(0.0, 1.0, 100),',
        T_COCO,
        "curve metadata: recall thresholds off by one",
    ),
    M(
        "coco-curve-iou-thresholds",
        "presented",
        EV,
        '"iou_thresholds": np.linspace(0.5, 0.95, 10),',
        '"iou_thresholds": np.linspace(0.5, 1.0, 10),',
        T_COCO,
        "curve metadata: IoU thresholds 0.5..1.0",
    ),
    M(
        "datacheck-duplicate-count",
        "presented",
        CHK,
        "extra = sum(len(g) - 1 for g in dups)",
        "extra = sum(len(g) for g in dups)",
        T_CHECK,
        "duplicate count includes the first of each group",
    ),
    M(
        "datacheck-imbalance-ratio",
        "presented",
        CHK,
        "ratio = hi / lo if lo else math.inf",
        "ratio = hi / (lo + 1) if lo else math.inf",
        T_CHECK,
        "class imbalance ratio off",
    ),
    M(
        "datacheck-leak-count",
        "presented",
        CHK,
        "count=len(leaked),",
        "count=len(set(hs)),",
        T_CHECK,
        "leakage count is the split size",
    ),
    # ----------------------------------------------------------------------------- report tables
    M(
        "table-p99-is-p90",
        "report",
        TAB,
        'row["latency_p99"] = stats.get("p99")',
        'row["latency_p99"] = stats.get("p90")',
        T_TABLE,
        "the summary table's p99 column shows p90",
    ),
    M(
        "table-cell-p99-is-p90",
        "report",
        TAB,
        '"p99_s": stats.get("p99"),',
        '"p99_s": stats.get("p90"),',
        T_TABLE + " tests/report/test_report.py",
        "the per-cell export's p99 column shows p90",
    ),
    M(
        "table-best-worst-swapped",
        "report",
        TAB,
        'return (lo, hi) if column.better == "lower" else (hi, lo)',
        'return (hi, lo) if column.better == "lower" else (lo, hi)',
        T_TABLE,
        "best and worst swapped (colouring the slowest as best)",
    ),
    M(
        "table-throughput-min",
        "report",
        TAB,
        'better = tput > (row.get("throughput") or 0)',
        'better = tput < (row.get("throughput") or float("inf"))',
        T_TABLE,
        "a backend's throughput is its worst batch size, not its best",
    ),
    M(
        "table-winner-ratio-inverted",
        "report",
        TAB,
        'return v2 / v1 if col.better == "lower" else v1 / v2',
        'return v1 / v2 if col.better == "lower" else v2 / v1',
        T_TABLE,
        "the winner sentence's 'x better' ratio inverted",
    ),
    M(
        "table-parity-text-mismatch-ok",
        "report",
        TAB,
        'return "not informative" if status(parity) == "not informative" else "MISMATCH"',
        'return "not informative"',
        T_TABLE,
        "a parity mismatch shown as 'not informative'",
    ),
    M(
        "table-failed-cell-counted",
        "report",
        TAB,
        """            row.setdefault("failed", []).append(cell["scenario"])
            continue""",
        """            continue""",
        T_TABLE,
        "a backend's failed cells are not listed in its summary row",
    ),
    M(
        "table-rss-min",
        "report",
        TAB,
        'row["peak_rss_bytes"] = max(row.get("peak_rss_bytes") or 0, mem)',
        'row["peak_rss_bytes"] = mem',
        T_TABLE,
        "peak RSS is the last cell's, not the peak over cells",
    ),
    M(
        "table-tie-overlap",
        "report",
        TAB,
        'if not intervals_separate(ci1, figure_flags(r, col.key)["ci"])',
        "if True",
        T_TABLE,
        "any two latency intervals called a statistical tie",
    ),
    # ----------------------------------------------------------------------------- metrics
    M(
        "cls-confusion-transposed",
        "metrics",
        CLS,
        "counts = np.bincount(t * size + p, minlength=size * size)",
        "counts = np.bincount(p * size + t, minlength=size * size)",
        T_CLS,
        "confusion matrix transposed (precision and recall swapped)",
    ),
    M(
        "cls-auto-average-micro",
        "metrics",
        CLS,
        'return "binary" if labels is None and matrix.shape[0] <= 2 else "macro"',
        'return "binary" if labels is None and matrix.shape[0] <= 2 else "micro"',
        T_CLS,
        "multiclass precision/recall averaged micro instead of macro",
    ),
    M(
        "cls-topk-ties-optimistic",
        "metrics",
        SC,
        "ahead = (s > true_score) | ((s == true_score) & (cols > t[:, None]))",
        "ahead = s > true_score",
        T_CLS,
        "top-k counts every tie in the true class's favour",
    ),
    M(
        "cls-topk-off-by-one",
        "metrics",
        SC,
        "return int((ahead.sum(axis=1) < k).sum())",
        "return int((ahead.sum(axis=1) <= k).sum())",
        T_CLS,
        "top-k is top-(k+1)",
    ),
    M(
        "coco-ap75-is-ap80",
        "metrics",
        EV,
        '"AP75": _mean_defined(prec[5, :, :, 0, m]),',
        '"AP75": _mean_defined(prec[6, :, :, 0, m]),',
        T_COCO,
        "AP75 at IoU 0.8",
    ),
    M(
        "coco-mean-defined-includes-undefined",
        "metrics",
        EV,
        "    s = s[s > -1]",
        "    s = s[s >= -1]",
        T_COCO,
        "undefined (-1) entries averaged into AP",
    ),
    M(
        "coco-arl-is-arm",
        "metrics",
        EV,
        'out["ARl"] = _mean_defined(rec[:, :, 3, m])',
        'out["ARl"] = _mean_defined(rec[:, :, 2, m])',
        T_COCO,
        "ARl from the medium area range",
    ),
    # ----------------------------------------------------------------------------- reference ops
    M(
        "ref-gelu-tanh",
        "reference",
        OPS,
        "    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))",
        "    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))",
        T_REF,
        "exact GELU computed with the tanh approximation",
    ),
    M(
        "ref-sigmoid-scale",
        "reference",
        OPS,
        "return 0.5 * (1.0 + np.tanh(0.5 * x))",
        "return 0.5 * (1.0 + np.tanh(0.5 * x * 1.001))",
        T_REF,
        "sigmoid slightly off (0.1% slope error)",
    ),
    M(
        "ref-softmax-no-shift",
        "reference",
        OPS,
        "e = np.exp(x - x.max(axis=axis, keepdims=True))",
        "e = np.exp(x)",
        T_REF,
        "softmax without the max shift (overflows on large logits)",
    ),
    M(
        "ref-bn-no-eps",
        "reference",
        OPS,
        'scale = p["weight"] / np.sqrt(p["var"] + n.attrs["eps"])',
        'scale = p["weight"] / np.sqrt(p["var"])',
        T_REF,
        "batch norm ignores eps",
    ),
    M(
        "ref-layernorm-no-eps",
        "reference",
        OPS,
        'return (x - mu) / np.sqrt(var + n.attrs["eps"]) * p["weight"] + p["bias"]',
        'return (x - mu) / np.sqrt(var + 1e-5) * p["weight"] + p["bias"]',
        T_REF,
        "layer norm's eps fixed at 1e-5 whatever the node says",
    ),
    M(
        "ref-hard-swish",
        "reference",
        OPS,
        "xs[0] * np.clip(xs[0] + 3.0, 0.0, 6.0) / 6.0",
        "xs[0] * np.clip(xs[0] + 3.0, 0.0, 6.0) / 6.5",
        T_REF,
        "hard swish divided by 6.5",
    ),
    M(
        "ref-relu6-unclipped",
        "reference",
        OPS,
        "np.clip(xs[0], 0.0, 6.0)",
        "np.maximum(xs[0], 0.0)",
        T_REF,
        "relu6 not clipped at 6",
    ),
    M(
        "ref-conv-kernel-transposed",
        "reference",
        OPS,
        "w_ij = w[:, :, i, j]  # (O, Cg)",
        "w_ij = w[:, :, j, i]  # (O, Cg)",
        T_REF,
        "conv kernel transposed (only square kernels run; wrong unless symmetric)",
    ),
    M(
        "ref-conv-groups",
        "reference",
        OPS,
        "xs_ij[:, k * cg : (k + 1) * cg],",
        "xs_ij[:, 0:cg],",
        T_REF,
        "grouped conv reads the first group's channels for every group",
    ),
    M(
        "ref-maxpool-zero-pad",
        "reference",
        OPS,
        "return _windows(xs[0], n, -np.inf).max(axis=(4, 5))",
        "return _windows(xs[0], n, 0.0).max(axis=(4, 5))",
        T_REF,
        "max pool pads with 0 instead of -inf",
    ),
    M(
        "ref-mha-scale",
        "reference",
        OPS,
        "/ math.sqrt(d // h), axis=-1)",
        "/ math.sqrt(d), axis=-1)",
        T_REF,
        "attention scaled by sqrt(d_model) instead of sqrt(d_head)",
    ),
    M(
        "ref-lstm-gate-order",
        "reference",
        OPS,
        "i, f, g, o = np.split(z, 4, axis=1)",
        "i, f, o, g = np.split(z, 4, axis=1)",
        T_REF,
        "LSTM gates in the wrong order",
    ),
    M(
        "ref-upsample-axes",
        "reference",
        OPS,
        "return xs[0].repeat(sh, axis=2).repeat(sw, axis=3)",
        "return xs[0].repeat(sw, axis=2).repeat(sh, axis=3)",
        T_REF,
        "upsample scale factors swapped between height and width",
    ),
    M(
        "ref-silu",
        "reference",
        OPS,
        'OPS["silu"] = lambda xs, p, n: xs[0] * sigmoid(xs[0])',
        'OPS["silu"] = lambda xs, p, n: xs[0] * sigmoid(1.702 * xs[0])',
        T_REF,
        "SiLU computed as the sigmoid-GELU approximation",
    ),
    M(
        "ref-avgpool-divisor",
        "reference",
        OPS,
        "return s / avg_pool_divisor(n.in_shapes[0][1:], n.attrs, n.out_shape[1:])",
        "return s / (n.attrs['kernel_size'][0] * n.attrs['kernel_size'][1])",
        T_REF,
        "avg pool always divides by the full window (count_include_pad ignored)",
    ),
    M(
        "ref-div-swapped",
        "reference",
        OPS,
        'return xs[0] / (xs[1] if len(xs) == 2 else p["other"])',
        'return (xs[1] if len(xs) == 2 else p["other"]) / xs[0]',
        T_REF,
        "div computes other / x",
    ),
    M(
        "ref-erf-approx",
        "reference",
        OPS,
        'OPS["erf"] = lambda xs, p, n: _erf(xs[0])',
        'OPS["erf"] = lambda xs, p, n: np.tanh(1.202760580 * xs[0])',
        T_REF,
        "erf replaced by a tanh approximation (max error ~1e-2)",
    ),
    M(
        "ref-gelu-case-insensitive",
        "reference",
        "backends/torch/ops.py",
        '"gelu": lambda rn: nn.GELU(approximate=rn.attrs["approximate"]),',
        '"gelu": lambda rn: nn.GELU(approximate="tanh"),',
        "tests/backends/test_torch.py -k gelu",
        "a backend that always uses tanh-GELU passes its conformance op cases",
    ),
]
