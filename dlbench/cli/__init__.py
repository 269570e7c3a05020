"""The ``dlbench`` command line.

Exit codes: 0 success; 1 the run finished but some cells failed or a backend failed the parity
check (or a check found an error); 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from dlbench.errors import DlbenchError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _csv(value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {value!r}")
    return items


def _csv_ints(value: str) -> list[int]:
    try:
        return [int(v) for v in _csv(value)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers like 1,32,128, got {value!r}"
        ) from None


def _option(value: str) -> tuple[str, str, Any]:
    """``backend.key=value`` with value parsed as JSON when possible (``true``, ``2``, ``"x"``)."""
    head, sep, raw = value.partition("=")
    backend, dot, key = head.partition(".")
    if not sep or not dot or not backend or not key:
        raise argparse.ArgumentTypeError(
            f"expected BACKEND.KEY=VALUE, e.g. torch.mode=compile; got {value!r}"
        )
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        parsed = raw
    return backend, key, parsed


def build_parser() -> argparse.ArgumentParser:
    from dlbench import __version__

    parser = argparse.ArgumentParser(
        prog="dlbench",
        description="Benchmark the same model across PyTorch, TensorFlow, JAX and ONNX Runtime, fairly.",
    )
    parser.add_argument("--version", action="version", version=f"dlbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run", help="run a benchmark (no arguments: digits on every installed backend)"
    )
    run.add_argument("--config", help="TOML config file; flags given here override it")
    run.add_argument("--model", help="zoo model name or a saved ModelSpec .json (default mlp)")
    run.add_argument("--dataset", help="dataset name (default digits)")
    run.add_argument("--dataset-root", help="where the dataset's files are")
    run.add_argument("--split", help="dataset split (default test)")
    run.add_argument(
        "--backends", type=_csv, help="comma-separated backends (default: all installed)"
    )
    run.add_argument(
        "--device", dest="devices", type=_csv, help="cpu, cuda or cuda:N (comma-separated)"
    )
    run.add_argument(
        "--scenario", dest="scenarios", type=_csv, help="latency,throughput,server,accuracy"
    )
    run.add_argument("--batch-sizes", type=_csv_ints, help="throughput batch sizes, e.g. 1,32,128")
    run.add_argument(
        "--threads", dest="intra_op_threads", type=int, help="intra-op threads for every backend"
    )
    run.add_argument(
        "--inter-op-threads", type=int, help="inter-op threads for every backend (default 1)"
    )
    run.add_argument("--timing-mode", choices=["compute", "end_to_end"])
    run.add_argument("--min-iters", type=int, help="measure at least this many calls")
    run.add_argument("--min-time", type=float, help="measure at least this many seconds")
    run.add_argument("--max-time", type=float, help="measure at most this many seconds")
    run.add_argument(
        "--target-ci",
        type=float,
        help="measure until the 95%% CI of the median is this narrow (relative)",
    )
    run.add_argument("--server-rate", type=float, help="server scenario: target queries per second")
    run.add_argument(
        "--server-p99-bound",
        type=float,
        help="server scenario: p99 bound in seconds; searches the highest rate under it",
    )
    run.add_argument("--accuracy-limit", type=int, help="evaluate only the first N samples")
    run.add_argument(
        "--cell-timeout", type=float, help="seconds a cell may take before its worker is killed"
    )
    run.add_argument("--seed", type=int)
    run.add_argument(
        "--option",
        "-O",
        dest="options",
        action="append",
        type=_option,
        default=[],
        metavar="BACKEND.KEY=VALUE",
        help="a backend option, e.g. -O torch.mode=compile",
    )
    run.add_argument(
        "--plugin",
        dest="plugins",
        action="append",
        default=[],
        help="a module every worker imports first (registers extra backends/datasets)",
    )
    run.add_argument("--out", help="result file (default dlbench-results/run-<time>.json)")
    run.add_argument("--resume", action="store_true", help="skip cells already finished in --out")
    run.add_argument(
        "--via-onnx",
        action="store_true",
        default=None,
        help="also export the model from each of torch/tensorflow/jax to ONNX and time it in "
        "ONNX Runtime (rows like torch>onnxruntime)",
    )
    run.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    run.add_argument(
        "--mlflow",
        nargs="?",
        const="",
        metavar="URI",
        help="log to MLflow (default store ./mlruns); needs dlbench[mlflow]",
    )
    run.add_argument(
        "--tensorboard", metavar="DIR", help="write TensorBoard events; needs dlbench[tensorboard]"
    )

    lst = sub.add_parser("list", help="list backends, models, datasets, metrics or scenarios")
    lst.add_argument(
        "what",
        nargs="?",
        default="backends",
        choices=["backends", "models", "datasets", "metrics", "scenarios"],
    )

    env = sub.add_parser("env", help="show the environment a result would record")
    env.add_argument("--json", action="store_true", help="print JSON")

    par = sub.add_parser("parity", help="check that backends agree with the numpy reference")
    par.add_argument("--model", default="mlp")
    par.add_argument("--backends", type=_csv)
    par.add_argument("--batch-size", type=int, default=256)
    par.add_argument("--device", default="cpu")

    data = sub.add_parser("data", help="dataset tools")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    check = data_sub.add_parser(
        "check", help="data-quality checks (balance, duplicates, leakage, ...)"
    )
    check.add_argument("name")
    check.add_argument("--root")
    check.add_argument("--split")
    check.add_argument("--json", dest="json_out", help="write the JSON report here")
    rep = sub.add_parser("report", help="HTML report, PNG figures, Markdown and CSV tables")
    rep.add_argument("results", help="a result file from dlbench run")
    rep.add_argument("--out", help="output folder (default <results>-report next to the file)")

    exp = sub.add_parser(
        "export", help="export a model to ONNX from torch, tensorflow or jax; check it in ORT"
    )
    from dlbench.cli.export import add_arguments as add_export_arguments

    add_export_arguments(exp)

    cmp_ = sub.add_parser("compare", help="compare two result files (exit 1 on a regression)")
    cmp_.add_argument("a", help="baseline result file")
    cmp_.add_argument("b", help="result file to check against the baseline")
    cmp_.add_argument("--threshold", default="5%", help="smallest change that counts (default 5%%)")
    cmp_.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    cmp_.add_argument("--force", action="store_true", help="compare runs that are not comparable")
    cmp_.add_argument("--json", dest="json_out", help="also write the comparison as JSON here")

    tr = sub.add_parser(
        "train", help="train the same model in torch, tensorflow and jax; compare cost and curves"
    )
    tr.add_argument("--model", default="digits_cnn", help="zoo model or saved spec .json")
    tr.add_argument("--dataset", default="digits", help="classification dataset (train/test)")
    tr.add_argument("--dataset-root", help="where the dataset's files are")
    tr.add_argument("--backends", type=_csv, help="torch,tensorflow,jax (default: installed)")
    tr.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    tr.add_argument("--epochs", type=int)
    tr.add_argument("--batch-size", type=int)
    tr.add_argument("--optimizer", help="sgd or adam")
    tr.add_argument("--lr", type=float, help="peak learning rate")
    tr.add_argument("--momentum", type=float, help="SGD momentum")
    tr.add_argument("--weight-decay", type=float, help="coupled L2 added to the gradient")
    tr.add_argument("--schedule", help="constant, step or cosine")
    tr.add_argument("--warmup-epochs", type=float, help="linear warm-up length in epochs")
    tr.add_argument("--folds", type=int, help="K-fold cross-validation on the train split")
    tr.add_argument("--val-fraction", type=float, help="held-out validation share (no folds)")
    tr.add_argument("--target-accuracy", type=float, help="test accuracy timed to (0..1)")
    tr.add_argument("--seed", type=int)
    tr.add_argument("--threads", dest="intra_op_threads", type=int, help="intra-op threads")
    tr.add_argument("--timeout", type=float, default=3600.0, help="seconds without progress")
    tr.add_argument("--out", help="result file (default dlbench-results/train-<time>.json)")
    tr.add_argument("--save-weights", metavar="DIR", help="save each backend's trained spec here")
    tr.add_argument("--quiet", "-q", action="store_true", help="no per-epoch lines")
    return parser


def _console():
    from rich.console import Console

    return Console(stderr=False)


def _config_from_args(args: argparse.Namespace):
    from dlbench.execution.config import BenchmarkConfig

    flat = {
        k: getattr(args, k)
        for k in (
            "model",
            "dataset",
            "dataset_root",
            "split",
            "backends",
            "devices",
            "scenarios",
            "batch_sizes",
            "intra_op_threads",
            "inter_op_threads",
            "timing_mode",
            "accuracy_limit",
            "cell_timeout",
            "seed",
            "server_rate",
            "server_p99_bound",
            "via_onnx",
        )
        if getattr(args, k) is not None
    }
    stop = {
        k: getattr(args, k)
        for k in ("min_iters", "min_time", "max_time", "target_ci")
        if getattr(args, k) is not None
    }
    if args.config:
        cfg = BenchmarkConfig.from_toml(args.config)
        data = cfg.to_dict()
        data.update(flat)
        data["stop_rule"] = {**data["stop_rule"], **stop}
    else:
        data = {**flat, "stop_rule": stop}
    options = data.setdefault("backend_options", {})
    for backend, key, value in args.options:
        options.setdefault(backend, {})[key] = value
    return BenchmarkConfig.from_dict(data)


def cmd_run(args: argparse.Namespace) -> int:
    from dlbench.cli.console import print_summary, progress_callback
    from dlbench.execution.runner import run

    console = _console()
    config = _config_from_args(args)
    out = (
        Path(args.out)
        if args.out
        else Path("dlbench-results") / f"run-{datetime.now():%Y%m%d-%H%M%S}.json"
    )
    backends = config.resolved_backends()
    if not backends:
        console.print(
            "[red]No backend is installed.[/] Install one, e.g. pip install 'dlbench[torch]'"
        )
        return EXIT_FAILED
    from dlbench.adapters import tracking

    tracking.check(args.mlflow, args.tensorboard)  # before a long run, not after it
    console.print(
        f"[bold]dlbench run[/]: model [cyan]{config.model}[/] on [cyan]{config.dataset}[/]/{config.split}, "
        f"backends {', '.join(backends)}, devices {', '.join(config.devices)}, "
        f"{config.intra_op_threads} intra-op / {config.inter_op_threads} inter-op threads"
    )
    with progress_callback(console, enabled=not args.quiet) as on_event:
        try:
            doc = run(config, out=out, resume=args.resume, on_event=on_event, plugins=args.plugins)
        except KeyboardInterrupt:
            console.print(
                f"[yellow]Interrupted.[/] Finished cells are kept in {out}; continue with --resume."
            )
            return 130
    print_summary(doc, console)
    console.print(f"Results: {out}")
    tracking.log_all(
        doc, out, mlflow_uri=args.mlflow, tensorboard_dir=args.tensorboard, console=console
    )
    failed = [c for c in doc["cells"] if c["status"] == "failed"]
    parity_bad = [
        f"{b}/{d}"
        for b, per in doc["backends"].items()
        for d, i in per.items()
        if (i.get("parity") or {}).get("ok") is False
    ]
    return EXIT_FAILED if failed or parity_bad else EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from dlbench import registry

    console = _console()
    what = args.what
    if what == "scenarios":
        from dlbench.execution.scenarios import SCENARIOS

        table = Table("scenario", "what it measures")
        for name, fn in SCENARIOS.items():
            table.add_row(name, (fn.__doc__ or "").strip().splitlines()[0])
        console.print(table)
        return EXIT_OK
    if what == "models":
        from dlbench import zoo

        rows = zoo.describe()
        table = Table("model", "input shape", "params")
        for row in rows:
            table.add_row(row["name"], str(tuple(row["input_shape"])), f"{row['params']:,}")
        console.print(table)
        return EXIT_OK
    reg = {
        "backends": registry.backends,
        "datasets": registry.datasets,
        "metrics": registry.metrics,
    }[what]
    table = Table(what[:-1], "installed", "from", "install with")
    for name in reg.names():
        entry = reg.entry(name)
        missing = entry.missing()
        hint = f"pip install 'dlbench[{entry.extra}]'" if missing and entry.extra else ""
        table.add_row(name, "no" if missing else "yes", entry.origin, hint)
    console.print(table)
    return EXIT_OK


def cmd_env(args: argparse.Namespace) -> int:
    from dlbench.execution import environment

    env = environment.capture()
    if args.json:
        print(json.dumps(env, indent=2))
        return EXIT_OK
    from rich.table import Table

    table = Table("what", "value", show_header=False)
    cpu = env["cpu"]
    table.add_row("OS", env["os"]["platform"])
    table.add_row(
        "CPU",
        f"{cpu['model']} ({cpu['physical_cores']} physical / {cpu['logical_cores']} logical cores, "
        f"{cpu['usable_cores']} usable; {' '.join(cpu['flags'])})",
    )
    if env["memory"]:
        table.add_row("Memory", f"{env['memory']['total_bytes'] / 2**30:.1f} GiB")
    table.add_row("Python", f"{env['python']['version']} ({env['python']['executable']})")
    table.add_row("BLAS", f"{env['blas'].get('name')} {env['blas'].get('version')}")
    for gpu in env["gpus"] or []:
        table.add_row(
            f"GPU {gpu['index']}",
            f"{gpu['name']}, {gpu['memory_total_mib']:.0f} MiB, driver {gpu['driver']}",
        )
    if not env["gpus"]:
        table.add_row("GPU", "none found")
    for name, version in env["packages"].items():
        table.add_row(name, version)
    for name, value in env["env"].items():
        table.add_row(f"${name}", value)
    table.add_row(
        "dlbench", f"{env['dlbench']['version']} (git {env['dlbench']['git_commit'] or 'n/a'})"
    )
    _console().print(table)
    return EXIT_OK


def cmd_parity(args: argparse.Namespace) -> int:
    from dlbench.analysis.parity import cli_main

    return cli_main(args.model, args.backends, args.batch_size, args.device, _console())


def cmd_data(args: argparse.Namespace) -> int:
    if args.data_command != "check":
        print(
            "usage: dlbench data check NAME [--root DIR] [--split S] [--json FILE]", file=sys.stderr
        )
        return EXIT_USAGE
    from dlbench.data.check import cli_main

    return cli_main(args.name, args.root, args.split, args.json_out, _console())


def cmd_report(args: argparse.Namespace) -> int:
    from dlbench.report import write_report

    files = write_report(args.results, args.out)
    console = _console()
    console.print(f"Report: [cyan]{files.html}[/] (self-contained, opens offline)")
    console.print(f"Figures: {', '.join(str(p) for p in files.figures.values())}")
    console.print(f"Tables: {files.markdown}, {files.summary_csv}, {files.cells_csv}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from dlbench.cli.export import cli_main

    return cli_main(args, _console())


def cmd_compare(args: argparse.Namespace) -> int:
    from dlbench.analysis import compare

    result = compare.compare(
        args.a,
        args.b,
        threshold=compare.parse_threshold(args.threshold),
        alpha=args.alpha,
        force=args.force,
    )
    compare.print_comparison(result, _console())
    if args.json_out:
        from dlbench.execution.results import write_atomic

        write_atomic(args.json_out, result.to_dict())
    return EXIT_FAILED if result.regressions else EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from dlbench.cli.train import print_training
    from dlbench.train import TrainConfig, train

    console = _console()
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
    )
    config = TrainConfig.from_dict(
        {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    )
    out = (
        Path(args.out)
        if args.out
        else Path("dlbench-results") / f"train-{datetime.now():%Y%m%d-%H%M%S}.json"
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
    )
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


COMMANDS = {
    "run": cmd_run,
    "list": cmd_list,
    "env": cmd_env,
    "parity": cmd_parity,
    "data": cmd_data,
    "report": cmd_report,
    "compare": cmd_compare,
    "export": cmd_export,
    "train": cmd_train,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return COMMANDS[args.command](args)
    except DlbenchError as exc:
        from dlbench.errors import ConfigError, RegistryError

        print(f"dlbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, (ConfigError, RegistryError)) else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
