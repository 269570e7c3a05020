"""The terminal view of a training result: one row per backend, fold means ± std, agreement."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from dlbench.cli.args import EXIT_FAILED, EXIT_OK, csv, make_console
from dlbench.errors import ConfigError
from dlbench.train.runner import fold_metrics, summarize_folds


def _fmt(stat: dict[str, Any], scale: float = 1.0, fmt: str = "{:.2f}", pct: bool = False) -> str:
    m, s = stat.get("mean"), stat.get("std")
    if m is None:
        return "-"
    k = 100.0 if pct else scale
    text = fmt.format(m * k) + ("%" if pct else "")
    if s is not None:
        text += " ± " + fmt.format(s * k)
    return text


def _training_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict of formatted figures per backend (``failed`` holds why a backend has none)."""
    target = doc["config"]["train"].get("target_accuracy")
    out = []
    for b, info in doc["backends"].items():
        if info.get("status") != "ok" or not info.get("runs"):
            out.append({"backend": b, "failed": info.get("error") or "no result"})
            continue
        s = info.get("summary") or summarize_folds(info["runs"])
        tta = _fmt(s["time_to_accuracy_s"])
        if target and s["folds_reaching_target"] < len(info["runs"]):
            tta = (
                "not reached"
                if s["folds_reaching_target"] == 0
                else f"{tta} ({s['folds_reaching_target']}/{len(info['runs'])} folds)"
            )
        diag = "; ".join(
            dict.fromkeys(r["diagnosis"]["text"] for r in info["runs"])
            if len(info["runs"]) == 1
            else [f"fold {r['fold'] + 1}: {r['diagnosis']['label']}" for r in info["runs"]]
        )
        out.append(
            {
                "backend": b,
                "step_median": _fmt(s["step_time_median_s"], 1e3),
                "step_p99": _fmt(s["step_time_p99_s"], 1e3),
                "samples_s": _fmt(s["samples_per_s"], fmt="{:.0f}"),
                "epoch_s": _fmt(s["epoch_time_s"]),
                "tta": tta,
                "train": f"{_fmt(s['train_loss'], fmt='{:.3f}')} / "
                f"{_fmt(s['train_accuracy'], pct=True, fmt='{:.1f}')}",
                "val": f"{_fmt(s['val_loss'], fmt='{:.3f}')} / "
                f"{_fmt(s['val_accuracy'], pct=True, fmt='{:.1f}')}",
                "test": _fmt(s["test_accuracy"], pct=True, fmt="{:.1f}"),
                "rss": _fmt(s["peak_rss_bytes"], 1 / 2**20, fmt="{:.0f}"),
                "diagnosis": diag,
            }
        )
    return out


def print_training(doc: dict[str, Any], console: Console) -> None:
    """A table per run (rows: backends) plus the cross-framework agreement and warnings.

    When the table does not fit the terminal (80 columns, CI logs), one block per backend
    instead: whole words, nothing cut or wrapped letter by letter."""

    cfg = doc["config"]["train"]
    folds = doc["plan"]["folds"]
    title = (
        f"Training {doc['model']['name']} on {doc['config']['dataset']}: {cfg['optimizer']} "
        f"lr {cfg['lr']:g} ({cfg['schedule']}), {cfg['epochs']} epochs, batch {cfg['batch_size']}"
        + (f", {folds}-fold CV (mean ± std)" if folds > 1 else "")
    )
    target = cfg.get("target_accuracy")
    tta_head = f"time to {100 * target:.0f}% (s)" if target else "time to target"
    columns = (
        ("backend", "backend"),
        ("step_median", "step ms (median)"),
        ("step_p99", "step ms (p99)"),
        ("samples_s", "samples/s"),
        ("epoch_s", "s/epoch"),
        ("tta", tta_head),
        ("train", "train loss / acc"),
        ("val", "val loss / acc"),
        ("test", "test acc"),
        ("rss", "peak RSS MiB"),
    )
    rows = _training_rows(doc)

    def build(with_diagnosis: bool) -> Table:
        table = Table(title=title, title_justify="left")
        for key, head in columns:
            table.add_column(head, no_wrap=True, justify="left" if key == "backend" else "right")
        if with_diagnosis:
            table.add_column("diagnosis", min_width=24)
        for r in rows:
            if "failed" in r:
                table.add_row(r["backend"], f"[red]failed[/]: {r['failed']}")
                continue
            cells = [r[k] for k, _ in columns]
            table.add_row(*cells, *([r["diagnosis"]] if with_diagnosis else []))
        return table

    table = build(True)
    if _fits_table(console, build(False), reserve=24 + 3):
        console.print(table)
    else:
        console.print(f"[bold]{title}[/]", highlight=False)
        for r in rows:
            if "failed" in r:
                console.print(f"[bold]{r['backend']}[/]: [red]failed[/]: {r['failed']}")
                continue
            console.print(
                f"[bold]{r['backend']}[/]: step {r['step_median']} ms (p99 {r['step_p99']}), "
                f"{r['samples_s']} samples/s, {r['epoch_s']} s/epoch, {tta_head}: {r['tta']}",
                highlight=False,
            )
            console.print(
                f"  train loss/acc {r['train']}; val {r['val']}; test acc {r['test']}; "
                f"peak RSS {r['rss']} MiB",
                highlight=False,
            )
            console.print(f"  diagnosis: {r['diagnosis']}", highlight=False)
    agree = doc.get("agreement") or {}
    for b, a in (agree.get("backends") or {}).items():
        d, acc = a.get("max_abs_loss_diff_first_steps"), a.get("test_accuracy_diff_pp")
        console.print(
            f"{b} vs {agree['reference']}: per-step loss max |diff| "
            f"{d:.2e} over the first {agree['steps']} steps "
            f"({a.get('max_abs_loss_diff'):.2e} over all), final test accuracy differs by "
            f"{acc:.2f} points"
            if d is not None and acc is not None
            else f"{b} vs {agree['reference']}: no comparable steps"
        )
    for line in precision_lines(doc):
        console.print(line, highlight=False)
    for w in doc.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}")


def precision_lines(doc: dict[str, Any]) -> list[str]:
    """One line per backend saying what precision it ran (none for an all-float32 run):
    its idiom, the dtypes its step's matrix products ran in, the final loss scale and the
    steps skipped (float16)."""
    if doc["config"]["train"].get("precision", "float32") == "float32":
        return []
    out = []
    for b, info in doc["backends"].items():
        recs = [r["precision"] for r in info.get("runs") or [] if r.get("precision")]
        if not recs:
            continue
        p = recs[-1]
        seen = ", ".join(f"{k} x{v}" for k, v in (p.get("observed_compute_dtypes") or {}).items())
        line = (
            f"{b} precision {p['requested']}: {p['mechanism']}; matmuls/convs ran in {seen or '?'}"
        )
        ls = [r["loss_scale"] for r in recs if r.get("loss_scale")]
        if ls:
            skipped = sum(x["skipped_steps"] or 0 for x in ls)
            line += f"; loss scale {ls[-1]['final']:g} at the end, {skipped} step(s) skipped"
        out.append(line + (f" [yellow]({p['warning']})[/]" if p.get("warning") else ""))
    return out


def _fits_table(console: Console, table: Table, reserve: int = 0) -> bool:
    """Whether ``table`` fits whole (headers included) with ``reserve`` columns to spare."""
    from rich.measure import Measurement

    unbounded = console.options.update(width=100_000, max_width=100_000)
    return Measurement.get(console, unbounded, table).maximum + reserve <= console.width


__all__ = ["fold_metrics", "print_training"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    tr = sub.add_parser(
        "train", help="train the same model in torch, tensorflow and jax; compare cost and curves"
    )
    tr.add_argument("--model", default="digits_cnn", help="zoo model or saved spec .json")
    tr.add_argument("--dataset", default="digits", help="classification dataset (train/test)")
    tr.add_argument(
        "--root", "--dataset-root", dest="dataset_root", help="where the dataset's files are"
    )
    tr.add_argument("--backends", type=csv, help="torch,tensorflow,jax (default: installed)")
    tr.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    tr.add_argument("--epochs", type=int, help="passes over the train split")
    tr.add_argument("--batch-size", type=int, help="samples per step")
    tr.add_argument("--preset", help="a named recipe whose fields the other flags override (cifar)")
    tr.add_argument("--optimizer", help="sgd, adam or adamw")
    tr.add_argument("--lr", type=float, help="peak learning rate")
    tr.add_argument("--momentum", type=float, help="SGD momentum")
    tr.add_argument("--weight-decay", type=float, help="coupled L2 added to the gradient")
    tr.add_argument("--schedule", help="constant, step, cosine or onecycle")
    tr.add_argument("--label-smoothing", type=float, help="cross-entropy label smoothing")
    tr.add_argument("--clip-grad-norm", type=float, help="clip the gradients' global norm")
    tr.add_argument("--augment", help="none or crop_flip (NumPy, the same bytes everywhere)")
    tr.add_argument("--dropout-rng", help="shared (the same masks in every framework) or framework")
    tr.add_argument(
        "--precision",
        help="float32, bfloat16 or float16 (mixed: float32 weights; float16 with loss scaling)",
    )
    tr.add_argument("--bn-momentum", type=float, help="batch-norm momentum (PyTorch's, 0.1)")
    tr.add_argument("--warmup-epochs", type=float, help="linear warm-up length in epochs")
    tr.add_argument("--folds", type=int, help="K-fold cross-validation on the train split")
    tr.add_argument("--val-fraction", type=float, help="held-out validation share (no folds)")
    tr.add_argument("--target-accuracy", type=float, help="test accuracy timed to (0..1)")
    tr.add_argument("--seed", type=int, help="seed of the initial weights, folds and order")
    tr.add_argument("--threads", dest="intra_op_threads", type=int, help="intra-op threads")
    tr.add_argument("--timeout", type=float, default=3600.0, help="seconds without progress")
    tr.add_argument("--out", help="result file (default dlbench-results/train-<time>.json)")
    tr.add_argument("--force", action="store_true", help="replace an existing --out result file")
    tr.add_argument("--save-weights", metavar="DIR", help="save each backend's trained spec here")
    tr.add_argument("--quiet", "-q", action="store_true", help="no per-epoch lines")


def command(args: argparse.Namespace) -> int:
    from dlbench.train import TrainConfig, train

    console = make_console()
    keys = (
        "epochs",
        "batch_size",
        "optimizer",
        "lr",
        "momentum",
        "weight_decay",
        "schedule",
        "warmup_epochs",
        "folds",
        "val_fraction",
        "target_accuracy",
        "seed",
        "intra_op_threads",
        "label_smoothing",
        "clip_grad_norm",
        "augment",
        "dropout_rng",
        "bn_momentum",
        "precision",
    )
    given = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    config = (
        TrainConfig.preset(args.preset, **given) if args.preset else TrainConfig.from_dict(given)
    )
    out = (
        Path(args.out)
        if args.out
        else Path("dlbench-results") / f"train-{datetime.now():%Y%m%d-%H%M%S}.json"
    )

    from dlbench.cli.run import check_output_path

    check_output_path(out, resume=False, force=True)  # a folder, a lock holder, not writable
    if out.exists() and not args.force:
        raise ConfigError(
            f"Expected a new result file. Received: {out}, which exists; replace it with --force "
            "or choose another --out"
        )

    def on_event(kind: str, p: dict[str, Any]) -> None:
        if args.quiet:
            return
        if kind == "epoch":
            r = p["row"]
            val = f", val {100 * r['val_accuracy']:.1f}%" if "val_accuracy" in r else ""
            test = f", test {100 * r['test_accuracy']:.1f}%" if "test_accuracy" in r else ""
            console.print(
                f"  {p['backend']} fold {p['fold'] + 1} epoch {p['epoch'] + 1}: "
                f"train loss {r['train_loss']:.4f} acc {100 * r['train_accuracy']:.1f}%{val}{test} "
                f"({r['epoch_time_s']:.2f} s)"
            )
        elif kind == "backend" and p.get("status") != "ok":
            console.print(f"[red]{p['backend']} failed:[/] {p.get('error')}")

    console.print(
        f"[bold]dlbench train[/]: model [cyan]{args.model}[/] on [cyan]{args.dataset}[/], "
        f"{config.optimizer} lr {config.lr:g}, {config.epochs} epochs, "
        f"{config.intra_op_threads} intra-op threads"
        + (f", {config.precision}" if config.precision != "float32" else "")
    )
    from dlbench.execution.results import locked

    with locked(out):  # one writer per result file: a second run is refused (exit 2)
        doc = train(
            config,
            model=args.model,
            dataset=args.dataset,
            backends=args.backends,
            device=args.device,
            dataset_root=args.dataset_root,
            out=out,
            save_weights=args.save_weights,
            timeout=args.timeout,
            on_event=on_event,
        )
    print_training(doc, console)
    console.print(f"Results: {out}")
    if args.save_weights:
        console.print(f"Trained weights: {args.save_weights}")
    failed = [b for b, i in doc["backends"].items() if i.get("status") != "ok"]
    return EXIT_FAILED if failed else EXIT_OK
