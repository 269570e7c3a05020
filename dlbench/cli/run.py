"""``dlbench run``: a benchmark from flags or a TOML file, with a progress bar and a table."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from dlbench.analysis.parity import failed as parity_failed
from dlbench.cli.args import EXIT_FAILED, EXIT_OK, csv, csv_ints, key_value, make_console, option
from dlbench.errors import ConfigError
from dlbench.execution.results import ResultWriteError, lock_holder
from dlbench.serialize import to_json_safe


def add_parser(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser(
        "run", help="run a benchmark (no arguments: digits on every installed backend)"
    )
    run.add_argument("--config", help="TOML config file; flags given here override it")
    run.add_argument(
        "--model",
        help="zoo model name, an ONNX file (imported, run natively by every backend and checked "
        "against ONNX Runtime running the file) or a saved ModelSpec .json (default digits_cnn)",
    )
    run.add_argument(
        "--detection-contract",
        metavar="JSON",
        help="with --model det.onnx: the detector's output contract (a JSON file: 'outputs' "
        "names boxes/scores/labels or logits/boxes, plus box_format, normalized, label_map...); "
        "the file then runs in ONNX Runtime, in-process, through the detection accuracy pass",
    )
    run.add_argument("--dataset", help="dataset name (default digits)")
    run.add_argument(
        "--root",
        "--dataset-root",
        dest="dataset_root",
        help="where the dataset's files are (each dataset has a default)",
    )
    run.add_argument("--split", help="dataset split (default test)")
    run.add_argument(
        "--dataset-option",
        "-D",
        dest="dataset_opts",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="a dataset option, JSON value: e.g. -D md5=null (no checksum), -D limit=500, "
        "-D image_size=320",
    )
    run.add_argument(
        "--download",
        action="store_true",
        default=None,
        help="download the dataset if its files are missing (same as -D download=true)",
    )
    run.add_argument(
        "--backends",
        type=csv,
        help="comma-separated backends (default: every installed one but the numpy reference)",
    )
    run.add_argument(
        "--device",
        dest="devices",
        type=csv,
        help="cpu, cuda or cuda:N, comma-separated (default cpu); a CUDA device is checked "
        "before any worker starts",
    )
    run.add_argument(
        "--scenario",
        dest="scenarios",
        type=csv,
        help="some of latency,throughput,server,accuracy,training (default "
        "latency,throughput,accuracy)",
    )
    run.add_argument(
        "--batch-sizes", type=csv_ints, help="throughput batch sizes, e.g. 1,32,128 (default 32)"
    )
    run.add_argument(
        "--threads",
        dest="intra_op_threads",
        type=int,
        help="intra-op threads for every backend (default: the usable cores; more warns)",
    )
    run.add_argument(
        "--inter-op-threads", type=int, help="inter-op threads for every backend (default 1)"
    )
    run.add_argument(
        "--timing-mode",
        choices=["compute", "end_to_end"],
        help="compute: inputs already on the device, ends with a sync (default); end_to_end: "
        "host NumPy in to host NumPy out",
    )
    run.add_argument(
        "--min-iters", type=int, help="measure at least this many calls per cell (default 20)"
    )
    run.add_argument(
        "--min-time", type=float, help="measure at least this many seconds per cell (default 0.5)"
    )
    run.add_argument(
        "--max-time",
        type=float,
        help="measure at most this many seconds per cell (default 30; also the server sweep's "
        "budget)",
    )
    run.add_argument(
        "--target-ci",
        type=float,
        help="measure until the 95%% CI of the median is this narrow (relative)",
    )
    run.add_argument(
        "--server-rate",
        type=float,
        help="server scenario: one offered rate in queries/s (default: a sweep of common rates "
        "for every backend, then a run at half the measured capacity)",
    )
    run.add_argument(
        "--server-p99-bound",
        type=float,
        help="server scenario: p99 bound in seconds; searches the highest rate under it",
    )
    run.add_argument("--accuracy-limit", type=int, help="evaluate only the first N samples")
    run.add_argument(
        "--train-steps", type=int, help="training scenario: steps per cell (default 50)"
    )
    run.add_argument(
        "--epochs",
        dest="train_epochs",
        type=int,
        help="training scenario: epochs over the train split (instead of --train-steps)",
    )
    run.add_argument(
        "--target-accuracy",
        type=float,
        help="training scenario: test accuracy (0..1] whose first reach is timed",
    )
    run.add_argument(
        "--train-option",
        dest="train_opts",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="training scenario: a TrainConfig field (JSON value, else text): e.g. "
        "--train-option lr=0.01 --train-option optimizer=adam",
    )
    run.add_argument(
        "--precision",
        type=csv,
        help="float32, bfloat16, float16, int8, comma-separated: each a row of its own (default "
        "float32); a backend that cannot run one here skips its cells with the reason",
    )
    run.add_argument(
        "--calibration-samples",
        type=int,
        help="train-split samples int8 quantization calibrates on (default 128, seeded)",
    )
    run.add_argument(
        "--profile",
        choices=["edge"],
        help="edge: 1 thread, batch 1, latency and accuracy at float32,float16,int8 (size, peak "
        "memory, accuracy delta to float32); flags given here override it",
    )
    run.add_argument(
        "--task",
        choices=["detection"],
        help="run a task's default benchmark (detection: fcos_mobilenet_v2 on shapes, every "
        "installed backend); flags given here override its settings",
    )
    run.add_argument(
        "--limit",
        type=int,
        help="load only the first N images of the dataset (same as -D limit=N; coco, shapes, "
        "imagefolder: in the order each documents)",
    )
    run.add_argument(
        "--cell-timeout",
        type=float,
        help="seconds a cell may take before its worker is killed (default 600)",
    )
    run.add_argument("--seed", type=int, help="seed of sampled inputs (default 0)")
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
    run.add_argument(
        "--executor",
        choices=["local", "ray"],
        help="where cell groups run: local fresh processes (default) or Ray tasks on a cluster "
        "(needs dlbench[ray])",
    )
    run.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="the Ray cluster: auto, ray://host:port or host:port (default: a running one, else "
        "a local one)",
    )
    run.add_argument(
        "--nodes",
        metavar="all|KEY=VALUE",
        help="ray: 'all' runs the whole benchmark on every alive node (a fleet comparison, the "
        "node a column); KEY=VALUE keeps nodes with that label or custom resource (default: "
        "groups spread over every node)",
    )
    run.add_argument(
        "--allow-colocate",
        action="store_true",
        default=None,
        help="ray: let two timed groups share a node at once (default: one at a time per node)",
    )
    run.add_argument(
        "--retries",
        type=int,
        help="ray: re-run a group whose node or worker died on another node up to N times "
        "(default 0: its cell fails with the reason)",
    )
    run.add_argument("--out", help="result file (default dlbench-results/run-<time>.json)")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out (its config is reused; cells already finished are kept)",
    )
    run.add_argument(
        "--force", action="store_true", help="replace an existing --out instead of refusing"
    )
    run.add_argument(
        "--strict",
        action="store_true",
        help="a requested setting a backend cannot put in force fails it, and an INVALID cell "
        "exits 1",
    )
    run.add_argument(
        "--allocator",
        choices=["tuned", "system"],
        help="memory allocator settings of every worker, the same for each backend: tuned "
        "(default: freed activation memory is kept, not faulted in again per call) or system "
        "(the C library's defaults)",
    )
    run.add_argument(
        "--via-onnx",
        action="store_true",
        default=None,
        help="also export the model from each of torch/tensorflow/jax to ONNX and time it in "
        "ONNX Runtime (rows like torch>onnxruntime)",
    )
    run.add_argument(
        "--reshape-model",
        action="store_true",
        default=None,
        help="rebuild a zoo model that has trained weights for a dataset of another input shape "
        "or class count (a different, untrained network; refused without this flag)",
    )
    run.add_argument(
        "--with-reference",
        action="store_true",
        default=None,
        help="also time the float64 numpy reference when --backends is not given (it always "
        "checks parity; left out of timing and accuracy cells by default)",
    )
    run.add_argument(
        "--skip-memory-check",
        action="store_true",
        default=None,
        help="start cells whose estimated peak memory exceeds the memory available (refused "
        "before any worker starts otherwise)",
    )
    run.add_argument(
        "--energy-baseline",
        type=float,
        metavar="S",
        help="measure S seconds idle first and report energy net of it",
    )
    run.add_argument(
        "--price-per-hour",
        type=float,
        metavar="USD",
        help="machine price per hour: cost per million samples from the throughput",
    )
    run.add_argument(
        "--carbon-intensity",
        type=float,
        metavar="G_PER_KWH",
        help="grid carbon intensity (gCO2/kWh): CO2 per million samples from the energy",
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
            "reshape_model",
            "with_reference",
            "skip_memory_check",
            "energy_baseline",
            "price_per_hour",
            "carbon_intensity",
            "precision",
            "calibration_samples",
            "allocator",
            "train_steps",
            "train_epochs",
            "target_accuracy",
        )
        if getattr(args, k, None) is not None
    }
    if getattr(args, "train_opts", None):
        flat["train_options"] = dict(args.train_opts)
    for k in ("executor", "ray_address", "nodes", "allow_colocate", "retries"):  # issue 18
        if getattr(args, k, None) is not None:
            flat[k] = getattr(args, k)
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
    elif args.resume and args.out and Path(args.out).exists():
        from dlbench.execution import results

        data = dict(results.load(args.out)["config"])  # resume the run as it was configured
        data.update(flat)
        data["stop_rule"] = {**data.get("stop_rule", {}), **stop}
    else:
        data = {**flat, "stop_rule": stop}
    if getattr(args, "task", None):  # the task's preset, under every flag given
        from dlbench.execution.scenarios.detection import apply_task_preset

        data = apply_task_preset(args.task, data, given=set(flat), given_stop=set(stop))
    if getattr(args, "profile", None):  # the profile's settings, under every flag given
        from dlbench.execution.precision import apply_profile

        data = apply_profile(args.profile, data, given=set(flat))
    if getattr(args, "detection_contract", None):  # issue 12: an ONNX detector's outputs
        from dlbench.detection.wrapped import DetectorOutputs

        contract = DetectorOutputs.from_json(args.detection_contract).to_dict()
        data["model_options"] = {**data.get("model_options", {}), "detection_contract": contract}
        if data.get("backends") is None:  # the file runs in the backend that runs ONNX files
            from dlbench.registry import backends as registry

            data["backends"] = [registry.onnx_runtime() or "onnxruntime"]
    dataset_options = data.setdefault("dataset_options", {})
    for key, value in args.dataset_opts:
        dataset_options[key] = value
    if getattr(args, "limit", None) is not None:
        dataset_options["limit"] = args.limit
    if args.download:
        dataset_options["download"] = True
    options = data.setdefault("backend_options", {})
    for backend, key, value in args.options:
        options.setdefault(backend, {})[key] = value
    return BenchmarkConfig.from_dict(data)


def command(args: argparse.Namespace) -> int:
    """``dlbench run``; ``--strict`` reaches the workers through ``DLBENCH_STRICT``, which is
    put back as it was when the command ends (a caller running several commands in one
    process, e.g. a test or a notebook, does not inherit it)."""
    import os

    before = os.environ.get("DLBENCH_STRICT")
    try:
        return _command(args)
    finally:
        if before is None:
            os.environ.pop("DLBENCH_STRICT", None)
        else:
            os.environ["DLBENCH_STRICT"] = before


def _command(args: argparse.Namespace) -> int:
    from dlbench.cli.console import print_summary, progress_callback
    from dlbench.execution.runner import run

    console = make_console()
    if args.resume and not args.out:
        raise ConfigError("Expected the result file to resume (--out FILE). Received: none")
    config = config_from_args(args)
    out = (
        Path(args.out)
        if args.out
        else Path("dlbench-results") / f"run-{datetime.now():%Y%m%d-%H%M%S}.json"
    )
    check_output_path(out, resume=args.resume, force=args.force)
    if args.resume and out.exists():
        check_same_stop_rule(out, config.stop_rule)
    if args.strict:  # the workers inherit it: a setting not in force is an error there
        import os

        os.environ["DLBENCH_STRICT"] = "1"
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
    from dlbench.execution.config import REFERENCE_BACKEND

    if config.backends is None and REFERENCE_BACKEND not in backends:
        console.print(
            f"[dim]{REFERENCE_BACKEND} (the float64 reference) checks parity only; time it too "
            "with --with-reference[/]",
            highlight=False,
        )
    with progress_callback(console, enabled=not args.quiet) as progress:
        on_event, saved = _saved_where(progress, out)
        try:
            doc = run(config, out=out, resume=args.resume, on_event=on_event, plugins=args.plugins)
        except ResultWriteError as exc:  # nowhere to write: the document itself, on stdout
            print(json.dumps(to_json_safe(exc.document), indent=1))
            raise ResultWriteError(f"{exc}; the result is on stdout above", exc.document) from None
        except KeyboardInterrupt:
            out = saved["path"]
            if out.exists():
                console.print(
                    f"[yellow]Interrupted.[/] Finished cells are kept in {out}; continue with "
                    f"dlbench run --out {out} --resume"
                )
            else:
                console.print("[yellow]Interrupted[/] before any result was written.")
            return 130
    out = saved["path"]
    print_summary(doc, console)
    from dlbench.report.detection import detection_lines

    for line in detection_lines(doc):  # a detector: 12 COCO stats, AP difference, stage times
        console.print(line, highlight=False)
    _print_model_checks(doc, console)
    for line in (doc.get("precision") or {}).get("sentences") or []:  # vs each float32 row
        console.print(f"[bold]{line}[/]", highlight=False)
    console.print(f"Results: {out}")
    tracking.log_all(
        doc, out, mlflow_uri=args.mlflow, tensorboard_dir=args.tensorboard, console=console
    )
    failed = [c for c in doc["cells"] if c["status"] == "failed"]
    parity_bad = [
        f"{b}/{d}"
        for b, per in doc["backends"].items()
        for d, i in per.items()
        if parity_failed(i.get("parity"))
    ]
    if parity_failed((doc["model"].get("onnx_original") or {}).get("parity")):
        parity_bad.append("import")  # the imported spec is not the ONNX file
    invalid = [c for c in doc["cells"] if c["status"] == "invalid"] if args.strict else []
    if invalid:
        console.print(
            f"[bold red]--strict:[/] {len(invalid)} INVALID cell(s): "
            + ", ".join(c["id"] for c in invalid)
        )
    return EXIT_FAILED if failed or parity_bad or invalid else EXIT_OK


def check_same_stop_rule(out: Path, stop_rule: dict) -> None:
    """Refuse to resume ``out`` under another stop rule than the one its finished cells used.

    Raises:
        ConfigError: the file has finished cells and the stop rule (with defaults filled in)
            differs: those cells and the new ones would not be measured alike.
    """
    from dlbench.execution import results
    from dlbench.execution.measure import StopRule

    doc = results.load(out)
    if not results.done_cell_ids(doc):
        return
    old = StopRule.from_dict((doc.get("config") or {}).get("stop_rule") or {}).to_dict()
    new = StopRule.from_dict(stop_rule or {}).to_dict()
    diff = [f"{k}: file has {old[k]!r}, now {new[k]!r}" for k in old if old[k] != new[k]]
    if diff:
        raise ConfigError(
            f"Expected the stop rule the cells in {out} were measured with. Received: a "
            f"different one ({'; '.join(diff)}). Resume without those flags, or start a new "
            "--out."
        )


def _saved_where(on_event, out: Path):
    """Wrap the progress callback: say on stderr when the results go to a rescue file (a write
    error on ``out``) or are held in memory only; ``saved["path"]`` is where they are now."""
    saved = {"path": out}

    def wrapped(kind: str, payload: dict) -> None:
        if kind == "saved_elsewhere":
            saved["path"] = Path(payload["path"])
            print(
                f"dlbench: warning: could not write {payload['failed']} ({payload['error']}); "
                f"the results are written to {payload['path']} instead",
                file=sys.stderr,
            )
        elif kind == "unsaved":
            print(
                f"dlbench: warning: could not write {payload['path']} ({payload['error']}) nor "
                "any rescue file; measuring on, the results are kept in memory",
                file=sys.stderr,
            )
        on_event(kind, payload)

    return wrapped, saved


def check_output_path(out: Path, *, resume: bool, force: bool) -> None:
    """Refuse, before anything runs, an ``--out`` that cannot be written or would lose a result.

    Raises:
        ConfigError: ``out`` is a folder, its folder cannot be created or written, or it is an
            existing result and neither ``resume`` nor ``force`` was asked for.
    """
    if out.is_dir():
        raise ConfigError(f"Expected --out to be a file path. Received: {out} (a folder)")
    holder = lock_holder(out)
    if holder is not None:  # the run itself takes the lock (runner.run); this names it first
        who = f"process {holder}" if holder > 0 else "another process"
        raise ConfigError(
            f"Expected no other dlbench run writing {out}. Received: it is being written by "
            f"{who}; wait for that run to end or choose another --out"
        )
    if out.exists() and not (resume or force):
        raise ConfigError(
            f"Expected a new result file. Received: {out}, which exists; continue it with "
            "--resume or replace it with --force"
        )
    folder = out.parent if str(out.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"Expected a folder for --out that can be created. Received: {folder} "
            f"({exc.strerror or exc})"
        ) from None
    import tempfile

    try:  # a real write: permission bits say nothing to root, a read-only mount does
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".dlbench-write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"Expected a writable folder for --out. Received: {folder} ({exc.strerror or exc})"
        ) from None


def _print_model_checks(doc: dict, console) -> None:
    """The input the model expects against the dataset's transform, and for an imported ONNX
    file the check of the import against ONNX Runtime running the original file."""
    model = doc.get("model") or {}
    if (model.get("input") or {}).get("message"):
        colour = "dim" if model["input"]["match"] else "yellow"
        console.print(f"[{colour}]{model['input']['message']}[/]", highlight=False)
    original = model.get("onnx_original")
    if not original:
        return

    def verdict(p: dict | None) -> str:
        if p is None:
            return "not checked"
        if p.get("ok"):
            return f"ok (max abs diff {p['max_abs_diff']:.2e}, argmax {p['argmax_agreement']:.0%})"
        if not parity_failed(p):
            return "not informative"
        return f"MISMATCH ({p.get('reason') or ''}max abs diff {p.get('max_abs_diff')})"

    name = Path(original["path"]).name
    console.print(
        f"Import check, {name} in ONNX Runtime vs the imported model (float64 reference): "
        + (verdict(original.get("parity")) if "parity" in original else original.get("error", "-")),
        highlight=False,
    )
    for backend, per in doc.get("backends", {}).items():
        for device, info in per.items():
            if "parity_onnx_original" in info:
                console.print(
                    f"  {backend}/{device} vs {name} in ONNX Runtime: "
                    + verdict(info["parity_onnx_original"]),
                    highlight=False,
                )
