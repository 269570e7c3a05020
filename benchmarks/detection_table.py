"""The README's detection table: fcos_mobilenet_v2 (shipped shapes weights) on shapes val, every
installed backend and the float64 NumPy reference, CPU.

Runs the benchmark (``dlbench.run``: one worker process per backend, the same cells as
``dlbench run --task detection`` with the reference added) and prints a Markdown table: COCO AP
and AP50 of each backend, the largest AP difference to the reference, the median time per image
of each stage (pre-process = JPEG decode + letterbox, model = host NumPy in to host NumPy out,
post-process = decode + top-k + NMS in the backend's native path), the end-to-end images/s of
that per-image pipeline, and the model's throughput at batch 8.

    nice -n 5 .venv/bin/python benchmarks/detection_table.py --out detection.json
    .venv/bin/python benchmarks/detection_table.py --from detection.json   # table only

Equivalent command line::

    dlbench run --task detection --with-reference --threads 1 --accuracy-limit 128 \\
        --out detection.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run(out: Path, limit: int | None, threads: int, backends: list[str] | None) -> dict:
    import dlbench
    from dlbench.execution.scenarios.detection import TASK_PRESETS

    preset = dict(TASK_PRESETS["detection"])
    cfg = {
        **preset,
        "accuracy_limit": limit,
        "backends": backends,
        "with_reference": True,
        "intra_op_threads": threads,
        "inter_op_threads": 1,
    }
    return dlbench.run(cfg, out=out)


def table(doc: dict) -> str:
    from dlbench.report.detection import detection_summary
    from dlbench.report.table import fmt_rate, summary_rows

    s = doc.get("detection") or detection_summary(doc)
    rows = {r["label"]: r for r in summary_rows(doc)}
    ref = (s["backends"].get("numpy") or {}).get("stats", {}).get("AP")
    head = (
        "| backend | AP | AP50 | AP - numpy | pre-process p50 | model p50 | post-process p50 "
        "| end to end p50 | pipeline images/s | model throughput (batch 8) |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]

    def ms(v):
        return "-" if v is None else f"{v * 1e3:.1f} ms"

    for name, b in s["backends"].items():
        st, stages = b["stats"], b["stages"]
        diff = "-" if ref is None else f"{st['AP'] - ref:+.4f}"
        r = rows.get(name, {})
        tput = fmt_rate(r.get("throughput"))
        if r.get("throughput") is not None and r.get("throughput_invalid"):
            tput += " INVALID"
        lines.append(
            f"| {name} | {st['AP']:.4f} | {st['AP50']:.4f} | {diff} "
            f"| {ms((stages.get('preprocess') or {}).get('median'))} "
            f"| {ms((stages.get('model') or {}).get('median'))} "
            f"| {ms((stages.get('postprocess') or {}).get('median'))} "
            f"| {ms((stages.get('end_to_end') or {}).get('median'))} "
            f"| {b['throughput']:.1f} | {tput} |"
        )
    n = {b["evaluated_images"] for b in s["backends"].values()}
    lines.append("")
    lines.append(
        f"{'/'.join(str(v) for v in sorted(n))} shapes val images, "
        f"{doc['config']['intra_op_threads']} thread(s); largest AP difference between "
        f"backends: {s['max_ap_diff']:.4f} ({' vs '.join(s['max_ap_diff_between'] or [])})."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="detection.json", help="result file")
    ap.add_argument("--from", dest="src", help="print the table of an existing result file")
    ap.add_argument("--limit", type=int, default=None, help="val images (default all 128)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--backends", help="comma-separated (default: every installed one)")
    args = ap.parse_args(argv)
    if args.src:
        doc = json.loads(Path(args.src).read_text())
    else:
        backends = args.backends.split(",") if args.backends else None
        doc = run(Path(args.out), args.limit, args.threads, backends)
    print(table(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
