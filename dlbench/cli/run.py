"""``dlbench run``: a benchmark from flags or a TOML file, with a progress bar and a table."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from dlbench.cli.args import EXIT_FAILED, EXIT_OK, csv, csv_ints, make_console, option


def add_parser(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser(
        "run", help="run a benchmark (no arguments: digits on every installed backend)"
    )
    run.add_argument("--config", help="TOML config file; flags given here override it")
    run.add_argument("--model", help="zoo model name or a saved ModelSpec .json (default mlp)")
    run.add_argument("--dataset", help="dataset name (default digits)")
    run.add_argument("--dataset-root", help="where the dataset's files are")
    run.add_argument("--split", help="dataset split (default test)")
    run.add_argument(
        "--backends", type=csv, help="comma-separated backends (default: all installed)"
    )
    run.add_argument(
        "--device", dest="devices", type=csv, help="cpu, cuda or cuda:N (comma-separated)"
    )
    run.add_argument(
        "--scenario", dest="scenarios", type=csv, help="latency,throughput,server,accuracy"
    )
    run.add_argument("--batch-sizes", type=csv_ints, help="throughput batch sizes, e.g. 1,32,128")
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
        type=option,
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


def config_from_args(args: argparse.Namespace):
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


def command(args: argparse.Namespace) -> int:
    from dlbench.cli.console import print_summary, progress_callback
    from dlbench.execution.runner import run

    console = make_console()
    config = config_from_args(args)
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
