"""Compare two result files cell by cell, with a significance test on the raw samples.

``dlbench compare a.json b.json`` matches cells by (backend, device, scenario, batch size) and,
for every timed cell, tests whether the per-call times of ``b`` differ from those of ``a``:

* a two-sided Mann-Whitney U test on the two sets of raw samples (scipy; without scipy the
  bootstrap below supplies the p-value), and
* a percentile-bootstrap 95% confidence interval of the ratio of medians ``median_b / median_a``.

A cell is a **regression** when the change is significant (p < alpha *and* the interval excludes
1), the median per-call time grew by more than the threshold, *and* by more than the cell's own
noise (half its IQR relative to its median, the larger of the two runs'); an **improvement** when
it is significant and shrank by more than both. A significant change beyond the threshold but
within the noise is **inconclusive: noisy**: with thousands of samples any drift is
"significant", so a shift smaller than the typical call-to-call spread tells nothing; it is not a
regression (``dlbench compare`` exits 0 for it and lists it). A cell that ran in ``a`` but failed in ``b``
is a regression too; an accuracy-type metric that dropped by more than ``metric_tolerance``
(absolute) is one as well. When both cells carry an ``energy`` record measured over the same
domains, energy per sample (lower is better) is gated too: it grew by more than
``energy_threshold`` (relative; one reading per cell, so there is no significance test and the
default threshold is wider than the time one). The exit code of the command is 1 when any regression is found, so it
can gate CI.

Runs whose model, data, precision, threads, timing mode, CPU, GPU or framework versions differ
are not comparable: :func:`compare` raises :class:`UnfairComparisonError` naming every
difference, unless ``force=True``.

Example:
    >>> from dlbench.analysis.compare import compare
    >>> result = compare("main.json", "branch.json", threshold=0.05)  # doctest: +SKIP
    >>> [c.cell for c in result.regressions]  # doctest: +SKIP
    ['torch/cpu/latency/bs1']
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from dlbench.analysis.stats import relative_noise
from dlbench.errors import ConfigError

#: Timing statistics whose change is shown (all from ``timing.stats``), plus throughput.
TIME_STATS = ("median", "p90", "p99")
#: Metrics where lower is better; every other numeric metric is higher-is-better.
LOWER_IS_BETTER = ("loss", "mae", "mse", "rmse", "error", "err")
#: Dataset fields that must match.
DATASET_KEYS = ("name", "split", "task", "input_shape", "num_classes", "synthetic", "transform")
#: Config fields that must match (a difference changes what is measured).
CONFIG_KEYS = (
    "precision",
    "intra_op_threads",
    "inter_op_threads",
    "timing_mode",
    "dataset_options",
    "model_options",
    "accuracy_limit",
)
#: Config fields of the training scenario that must match (None and {} are "not given").
TRAINING_CONFIG_KEYS = ("train_steps", "train_epochs", "train_options")


class UnfairComparisonError(ConfigError):
    """The two runs differ in a way that makes comparing their numbers unfair."""


def parse_threshold(text: str | float) -> float:
    """``"5%"``, ``"5"`` and ``5`` all mean 5%, returned as the fraction ``0.05``."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1] if raw.endswith("%") else raw)
    except ValueError:
        raise ConfigError(
            f"Expected a threshold in percent, like 5% or 2.5. Received: {text!r}"
        ) from None
    if not (0 <= value < 1000) or not math.isfinite(value):
        raise ConfigError(f"Expected a threshold between 0% and 1000%. Received: {text!r}")
    return value / 100.0


@dataclass
class CellChange:
    """How one matched cell changed from ``a`` to ``b``."""

    cell: str
    backend: str
    device: str
    scenario: str
    batch_size: int
    #: ``regression``, ``improvement``, ``unchanged`` (not significant), ``within threshold``
    #: (significant but smaller than the threshold), ``inconclusive: noisy`` (significant and
    #: beyond the threshold, but within the cell's own noise), ``failed`` (failed in both).
    verdict: str
    #: Statistic name -> {"a", "b", "change"} (relative change of b against a).
    stats: dict[str, dict[str, float | None]] = field(default_factory=dict)
    #: Median ratio b/a of per-call time and its bootstrap 95% interval.
    ratio: float | None = None
    ratio_ci: tuple[float, float] | None = None
    p_value: float | None = None
    test: str | None = None
    #: Metric name -> {"a", "b", "delta"} (absolute).
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: The cell's own noise: half its IQR over its median, the larger of the two runs'.
    noise: float | None = None


INCONCLUSIVE = "inconclusive: noisy"


@dataclass
class Comparison:
    """The outcome of :func:`compare`."""

    a: str
    b: str
    threshold: float
    alpha: float
    changes: list[CellChange]
    only_in_a: list[str]
    only_in_b: list[str]
    #: Differences that make the comparison unfair (empty unless forced).
    unfair: list[str]
    #: Differences worth knowing that do not invalidate the comparison.
    notes: list[str]
    forced: bool = False
    #: Smallest relative change of energy per sample that counts.
    energy_threshold: float = 0.10

    @property
    def regressions(self) -> list[CellChange]:
        return [c for c in self.changes if c.verdict == "regression"]

    @property
    def improvements(self) -> list[CellChange]:
        return [c for c in self.changes if c.verdict == "improvement"]

    @property
    def inconclusive(self) -> list[CellChange]:
        """Significant changes beyond the threshold but within the cells' own noise."""
        return [c for c in self.changes if c.verdict == INCONCLUSIVE]

    @property
    def regressed_backends(self) -> list[str]:
        """``backend/device`` of every regression, in order, without repeats."""
        return list(dict.fromkeys(f"{c.backend}/{c.device}" for c in self.regressions))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["regressed_backends"] = self.regressed_backends
        out["regressions"] = [c.cell for c in self.regressions]
        out["improvements"] = [c.cell for c in self.improvements]
        out["inconclusive"] = [c.cell for c in self.inconclusive]
        return out


# -- fairness ----------------------------------------------------------------------------------


def _fmt(v: Any) -> str:
    return json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else repr(v)


def fairness_differences(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[str], list[str]]:
    """``(unfair, notes)``: differences that forbid comparing the runs, and harmless ones."""
    unfair, notes = [], []
    fa, fb = (a.get("model") or {}).get("fingerprint"), (b.get("model") or {}).get("fingerprint")
    if fa != fb:
        unfair.append(
            f"model: fingerprint {fa} ({(a.get('model') or {}).get('name')}) vs "
            f"{fb} ({(b.get('model') or {}).get('name')}): different graph or weights"
        )
    da, db = a.get("dataset") or {}, b.get("dataset") or {}
    for k in DATASET_KEYS:
        if da.get(k) != db.get(k):
            unfair.append(f"dataset {k}: {_fmt(da.get(k))} vs {_fmt(db.get(k))}")
    ca, cb = a.get("config") or {}, b.get("config") or {}
    for k in CONFIG_KEYS:
        if ca.get(k) != cb.get(k):
            unfair.append(f"{k}: {_fmt(ca.get(k))} vs {_fmt(cb.get(k))}")
    for k in TRAINING_CONFIG_KEYS:  # a training cell's steps, epochs and recipe
        if (ca.get(k) or None) != (cb.get(k) or None):
            unfair.append(f"{k}: {_fmt(ca.get(k))} vs {_fmt(cb.get(k))}")
    sa = (a.get("model") or {}).get("training_start")
    sb = (b.get("model") or {}).get("training_start")
    if sa != sb:  # training from the seeded initialisation vs from trained weights
        unfair.append(f"training starts from: {_fmt(sa)} vs {_fmt(sb)}")
    ea, eb = a.get("environment") or {}, b.get("environment") or {}
    # issue 18: runs on a Ray cluster are timed on its nodes, compared node by node
    nodes_a = (ea.get("executor") or {}).get("nodes") or {}
    nodes_b = (eb.get("executor") or {}).get("nodes") or {}
    machines = [
        (f"node {n} ", nodes_a[n].get("environment") or {}, nodes_b[n].get("environment") or {})
        for n in sorted(set(nodes_a) & set(nodes_b))
    ]
    if not (nodes_a and nodes_b):
        machines = [("", ea, eb)]
    for who, ma, mb in machines:
        cpu_a, cpu_b = (ma.get("cpu") or {}).get("model"), (mb.get("cpu") or {}).get("model")
        if cpu_a != cpu_b:
            unfair.append(f"{who}CPU model: {cpu_a!r} vs {cpu_b!r}")
        gpus_a = [g.get("name") for g in ma.get("gpus") or []]
        gpus_b = [g.get("name") for g in mb.get("gpus") or []]
        uses_gpu = any(
            c.get("device", "cpu").split("@")[0] != "cpu" for c in (a.get("cells") or [])
        )
        if gpus_a != gpus_b and uses_gpu:
            unfair.append(f"{who}GPUs: {gpus_a} vs {gpus_b}")
    ba, bb = a.get("backends") or {}, b.get("backends") or {}
    for backend in sorted(set(ba) & set(bb)):
        for device in sorted(set(ba[backend]) & set(bb[backend])):
            ia, ib = ba[backend][device], bb[backend][device]
            va, vb = ia.get("versions") or {}, ib.get("versions") or {}
            if va and vb and va != vb:
                diff = ", ".join(
                    f"{k} {va.get(k)} vs {vb.get(k)}"
                    for k in sorted(set(va) | set(vb))
                    if va.get(k) != vb.get(k)
                )
                unfair.append(f"{backend}/{device} framework versions: {diff}")
            sa, sb = ia.get("settings") or {}, ib.get("settings") or {}
            changed = [k for k in sorted(set(sa) | set(sb)) if sa.get(k) != sb.get(k)]
            if changed:
                detail = ", ".join(f"{k} {_fmt(sa.get(k))} vs {_fmt(sb.get(k))}" for k in changed)
                notes.append(f"{backend}/{device} settings differ: {detail}")
    if ca.get("stop_rule") != cb.get("stop_rule"):
        notes.append(f"stop rule: {_fmt(ca.get('stop_rule'))} vs {_fmt(cb.get('stop_rule'))}")
    if ea.get("hostname") != eb.get("hostname"):
        notes.append(f"host: {ea.get('hostname')!r} vs {eb.get('hostname')!r}")
    dla, dlb = ea.get("dlbench") or {}, eb.get("dlbench") or {}
    if dla != dlb:
        notes.append(
            f"dlbench: {dla.get('version')} (git {dla.get('git_commit')}) vs "
            f"{dlb.get('version')} (git {dlb.get('git_commit')})"
        )
    return unfair, notes


# -- statistics --------------------------------------------------------------------------------


def bootstrap_ratio_ci(
    a: np.ndarray,
    b: np.ndarray,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, np.ndarray]:
    """Percentile-bootstrap interval of ``median(b) / median(a)``; also returns the resampled
    ratios. ``a`` and ``b`` are resampled independently."""
    rng = np.random.default_rng(seed)

    def medians(x: np.ndarray) -> np.ndarray:
        out = np.empty(resamples)
        chunk = max(1, 2_000_000 // x.size)
        for start in range(0, resamples, chunk):
            stop = min(start + chunk, resamples)
            idx = rng.integers(0, x.size, size=(stop - start, x.size))
            out[start:stop] = np.median(x[idx], axis=1)
        return out

    ratios = medians(b) / medians(a)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(ratios, [alpha, 1.0 - alpha])
    return float(lo), float(hi), ratios


def significance(a: np.ndarray, b: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """Test whether the per-call times ``b`` differ from ``a``.

    Returns ``ratio`` (median b / median a), ``ci`` (bootstrap 95% interval of the ratio),
    ``p_value`` and ``test`` (``mann-whitney-u`` with scipy, else ``bootstrap``).
    """
    ratio = float(np.median(b) / np.median(a))
    lo, hi, ratios = bootstrap_ratio_ci(a, b, seed=seed)
    try:
        from scipy.stats import mannwhitneyu
    except ImportError:
        # Two-sided bootstrap p-value: how often the resampled ratio falls on the far side of 1.
        p = 2.0 * min(float(np.mean(ratios <= 1.0)), float(np.mean(ratios >= 1.0)))
        return {"ratio": ratio, "ci": (lo, hi), "p_value": min(1.0, p), "test": "bootstrap"}
    if np.array_equal(np.sort(a), np.sort(b)):
        p = 1.0  # identical samples: scipy would still be right, this is just exact and quick
    else:
        p = float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
    return {"ratio": ratio, "ci": (lo, hi), "p_value": p, "test": "mann-whitney-u"}


def _rel(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or a == 0:
        return None
    return b / a - 1.0


def _lower_is_better(metric: str) -> bool:
    name = metric.lower()
    return any(
        name == k or name.endswith("_" + k) or name.startswith(k + "_") for k in LOWER_IS_BETTER
    )


def _energy_basis(energy: dict[str, Any]) -> tuple[tuple[str, ...], bool]:
    """The measured summed domains and whether the figure is net of the idle baseline."""
    domains = tuple(
        sorted(
            d
            for d, v in (energy.get("domains") or {}).items()
            if v.get("summed", True) and v.get("joules") is not None
        )
    )
    return domains, bool(energy.get("net"))


def _compare_energy(
    change: CellChange,
    ea: dict[str, Any] | None,
    eb: dict[str, Any] | None,
    energy_threshold: float,
    verdicts: list[str],
) -> None:
    """Gate on energy per sample (lower is better) when both runs measured it the same way."""
    ja = (ea or {}).get("joules_per_sample")
    jb = (eb or {}).get("joules_per_sample")
    if ja is None and jb is None:
        return
    if ja is None or jb is None:
        who, other = ("a", eb) if ja is not None else ("b", ea)
        why = (other or {}).get("reason") or "not measured"
        missing = "b" if who == "a" else "a"
        change.notes.append(
            f"energy per sample measured only in {who} ({missing}: {why}): not compared"
        )
        return
    basis_a, basis_b = _energy_basis(ea or {}), _energy_basis(eb or {})
    if basis_a != basis_b:
        change.notes.append(
            "energy not compared: measured over different domains or baselines "
            f"(a: {', '.join(basis_a[0])}{' net' if basis_a[1] else ''}; "
            f"b: {', '.join(basis_b[0])}{' net' if basis_b[1] else ''})"
        )
        return
    rel = _rel(ja, jb)
    change.stats["joules_per_sample"] = {"a": ja, "b": jb, "change": rel}
    if rel is None:
        return
    if rel > energy_threshold:
        verdicts.append("regression")
        change.notes.append(
            f"energy per sample {rel * 100:+.1f}% (beyond the {energy_threshold * 100:g}% "
            "energy threshold)"
        )
    elif rel < -energy_threshold:
        verdicts.append("improvement")
        change.notes.append(
            f"energy per sample {rel * 100:+.1f}% (beyond the {energy_threshold * 100:g}% "
            "energy threshold)"
        )


def _compare_cell(
    ca: dict[str, Any],
    cb: dict[str, Any],
    threshold: float,
    alpha: float,
    metric_tolerance: float,
    energy_threshold: float = 0.10,
) -> CellChange:
    change = CellChange(
        cell=ca["id"],
        backend=ca["backend"],
        device=ca["device"],
        scenario=ca["scenario"],
        batch_size=ca["batch_size"],
        verdict="unchanged",
    )
    sa, sb = ca.get("status"), cb.get("status")
    if sa == "skipped" or sb == "skipped":  # a precision its backend cannot run: no figure
        if sa == sb:
            change.verdict = "skipped"
            change.notes.append(f"skipped in both runs: {cb.get('skip_reason')}")
        elif sb == "skipped":  # b lost a precision that a ran
            change.verdict = "regression"
            change.notes.append(f"skipped in b: {cb.get('skip_reason')}")
        else:
            change.notes.append(f"skipped in a: {ca.get('skip_reason')}")
        return change
    if sa == "failed" or sb == "failed":
        if sa == "failed" and sb == "failed":
            change.verdict = "failed"
            change.notes.append("failed in both runs")
        elif sb == "failed":
            change.verdict = "regression"
            change.notes.append(f"failed in b: {cb.get('error')}")
        else:
            change.verdict = "improvement"
            change.notes.append(f"failed in a ({ca.get('error')}), runs in b")
        return change
    for who, c in (("a", ca), ("b", cb)):
        if c.get("status") == "invalid":
            reasons = "; ".join((c.get("validity") or {}).get("reasons") or [])
            change.notes.append(f"invalid in {who}: {reasons}")
    verdicts = []
    ta, tb = ca.get("timing") or {}, cb.get("timing") or {}
    xa, xb = ta.get("samples_s"), tb.get("samples_s")
    if xa and xb:
        a = np.asarray(xa, dtype=np.float64)
        b = np.asarray(xb, dtype=np.float64)
        stats_a, stats_b = ta.get("stats") or {}, tb.get("stats") or {}
        for k in TIME_STATS:
            change.stats[k] = {
                "a": stats_a.get(k),
                "b": stats_b.get(k),
                "change": _rel(stats_a.get(k), stats_b.get(k)),
            }
        change.stats["throughput"] = {
            "a": ta.get("throughput"),
            "b": tb.get("throughput"),
            "change": _rel(ta.get("throughput"), tb.get("throughput")),
        }
        sig = significance(a, b)
        change.ratio, change.ratio_ci = sig["ratio"], sig["ci"]
        change.p_value, change.test = sig["p_value"], sig["test"]
        lo, hi = sig["ci"]
        significant = sig["p_value"] < alpha and (lo > 1.0 or hi < 1.0)
        noise = [n for n in (relative_noise(stats_a), relative_noise(stats_b)) if n is not None]
        change.noise = max(noise) if noise else None
        beyond = abs(sig["ratio"] - 1.0) > threshold
        within_noise = change.noise is not None and abs(sig["ratio"] - 1.0) <= change.noise
        if significant and beyond and within_noise:
            verdicts.append(INCONCLUSIVE)
            change.notes.append(
                f"a {(sig['ratio'] - 1) * 100:+.1f}% change within the cell's own noise "
                f"(±{change.noise * 100:.0f}%: half its IQR)"
            )
        elif significant and sig["ratio"] > 1.0 + threshold:
            verdicts.append("regression")
        elif significant and sig["ratio"] < 1.0 - threshold:
            verdicts.append("improvement")
        elif significant:
            verdicts.append("within threshold")
        if stats_a.get("noisy") or stats_b.get("noisy"):
            change.notes.append("noisy samples (IQR above 10% of the median)")
    ea, eb = ca.get("energy"), cb.get("energy")
    if isinstance(ea, dict) or isinstance(eb, dict):
        _compare_energy(
            change,
            ea if isinstance(ea, dict) else None,
            eb if isinstance(eb, dict) else None,
            energy_threshold,
            verdicts,
        )
    ma, mb = ca.get("metrics") or {}, cb.get("metrics") or {}
    if ca.get("scenario") == "training":  # losses and accuracies are said, step time gated
        _training_notes(change, ca, cb, metric_tolerance)
        ma = mb = {}
    for k in sorted(set(ma) & set(mb)):
        va, vb = ma[k], mb[k]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (va, vb)):
            continue
        delta = float(vb) - float(va)
        change.metrics[k] = {"a": float(va), "b": float(vb), "delta": delta}
        worse = delta > 0 if _lower_is_better(k) else delta < 0
        if abs(delta) > metric_tolerance:
            verdicts.append("regression" if worse else "improvement")
    for v in ("regression", "improvement", INCONCLUSIVE, "within threshold"):
        if v in verdicts:
            change.verdict = v
            break
    return change


def _training_notes(
    change: CellChange, ca: dict[str, Any], cb: dict[str, Any], tolerance: float
) -> None:
    """A training cell: its final loss and accuracies are listed (``change.metrics``) and a
    change beyond ``tolerance`` is a note, not a verdict (the same steps on the same plan give
    the same losses up to rounding: a change says the computation changed, which the step-loss
    agreement of each run judges); an agreement lost or regained is a note too."""
    ma, mb = ca.get("metrics") or {}, cb.get("metrics") or {}
    for k in ("final_loss", "train_accuracy", "val_accuracy", "test_accuracy"):
        va, vb = ma.get(k), mb.get(k)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (va, vb)):
            continue
        delta = float(vb) - float(va)
        change.metrics[k] = {"a": float(va), "b": float(vb), "delta": delta}
        if abs(delta) > tolerance:
            what = "final loss" if k == "final_loss" else k.replace("_", " ")
            change.notes.append(f"{what} changed: {va:.4g} -> {vb:.4g} ({delta:+.2e})")
    ga = ((ca.get("training") or {}).get("agreement") or {}).get("ok")
    gb = ((cb.get("training") or {}).get("agreement") or {}).get("ok")
    if ga is True and gb is False:
        change.notes.append("step losses agreed with the reference backend in a, not in b")
    elif ga is False and gb is True:
        change.notes.append("step losses disagreed with the reference backend in a, agree in b")


def _load(doc_or_path: dict[str, Any] | str | os.PathLike[str]) -> tuple[dict[str, Any], str]:
    if isinstance(doc_or_path, dict):
        return doc_or_path, str(doc_or_path.get("run_id", "<document>"))
    from dlbench.report import load_results

    return load_results(doc_or_path), str(doc_or_path)


def compare(
    a: dict[str, Any] | str | os.PathLike[str],
    b: dict[str, Any] | str | os.PathLike[str],
    *,
    threshold: float = 0.05,
    alpha: float = 0.05,
    metric_tolerance: float = 1e-3,
    force: bool = False,
    energy_threshold: float = 0.10,
) -> Comparison:
    """Compare run ``b`` against the baseline ``a`` (documents or result file paths).

    Args:
        threshold: Smallest relative change of the median per-call time that counts (0.05 = 5%).
        alpha: Significance level of the tests.
        metric_tolerance: Smallest absolute change of a quality metric (accuracy...) that counts.
        force: Compare even when the runs are not comparable (the differences are kept in
            :attr:`Comparison.unfair`).
        energy_threshold: Smallest relative change of energy per sample that counts (cells
            whose ``energy`` records were measured over the same domains).

    Raises:
        UnfairComparisonError: The runs differ in model, data, settings or environment.
        ConfigError: A file is missing or not a dlbench result.
    """
    doc_a, name_a = _load(a)
    doc_b, name_b = _load(b)
    unfair, notes = fairness_differences(doc_a, doc_b)
    if unfair and not force:
        detail = "\n  - ".join(unfair)
        raise UnfairComparisonError(
            f"Expected two runs of the same benchmark under the same settings and environment. "
            f"Received runs that differ in:\n  - {detail}\n"
            "Their numbers would not measure the change you are after. Use --force "
            "(force=True) to compare anyway."
        )
    cells_a = {_key(c): c for c in doc_a.get("cells") or []}
    cells_b = {_key(c): c for c in doc_b.get("cells") or []}
    changes = [
        _compare_cell(cells_a[k], cells_b[k], threshold, alpha, metric_tolerance, energy_threshold)
        for k in cells_a
        if k in cells_b
    ]
    return Comparison(
        a=name_a,
        b=name_b,
        threshold=threshold,
        alpha=alpha,
        changes=changes,
        only_in_a=[cells_a[k]["id"] for k in cells_a if k not in cells_b],
        only_in_b=[cells_b[k]["id"] for k in cells_b if k not in cells_a],
        unfair=unfair,
        notes=notes,
        forced=force and bool(unfair),
        energy_threshold=energy_threshold,
    )


def _key(cell: dict[str, Any]) -> tuple[str, str, str, int, str]:
    """A cell is matched with the cell of the other run at the same precision only (an int8
    cell is never compared with a float32 one)."""
    from dlbench.execution.precision import cell_precision

    return (
        cell["backend"],
        cell["device"],
        cell["scenario"],
        int(cell["batch_size"]),
        cell_precision(cell),
    )
