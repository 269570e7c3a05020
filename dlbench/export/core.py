"""``to_onnx``: export a spec, a dlbench Model or a native model to ONNX, then prove it agrees.

Steps: build or wrap the model in the source framework; export it with that framework's
exporter (``dlbench.backends.<source>.export``); name the inputs/outputs and the batch axis;
reject ops ONNX does not define; save; check the file with ``onnx.checker``; run it in ONNX
Runtime on the same inputs as the source model and compare (:func:`dlbench.analysis.parity.compare`).
The parity result is printed by the CLI, returned in the :class:`ExportReport` and stored in the
file's metadata (``dlbench.analysis.parity``).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dlbench.errors import ConfigError, MissingFrameworkError
from dlbench.export import graph
from dlbench.export.errors import ExportError, ExportParityError
from dlbench.export.request import ExportRequest
from dlbench.export.requirements import DEFAULT_OPSET, check_exporter, missing_message

#: Samples in the parity batch (a batch of 1 is checked too when the batch axis is dynamic).
PARITY_BATCH = 8


@dataclass
class ExportReport:
    """What an export produced and how well it agrees with the source model.

    Attributes:
        path: The ONNX file.
        source: Framework exported from (``torch``, ``tensorflow``, ``jax``).
        exporter: ``dynamo``, ``torchscript``, ``tf2onnx`` or ``jax2onnx``.
        opset: ONNX opset of the default domain.
        file_bytes: Size of the file.
        op_counts: ONNX op type -> number of nodes (subgraphs included), most frequent first.
        params: Elements of float initializers and constants (the weights as exported).
        parity: ``max_abs_diff``, ``max_rel_diff``, ``argmax_agreement``, ``ok`` (plus
            ``output_scale``, ``tolerance``, ``batch_sizes``) of ONNX Runtime vs the source.
    """

    path: str
    source: str
    exporter: str
    opset: int
    file_bytes: int
    op_counts: dict[str, int]
    params: int
    parity: dict[str, Any]
    model: str = ""
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    input_shape: list[int] = field(default_factory=list)
    dynamic_batch: bool = True
    versions: dict[str, str] = field(default_factory=dict)
    export_seconds: float = 0.0
    fingerprint: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.parity.get("ok"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _input_shape(obj: Any, given: Any) -> tuple[int, ...] | None:
    from dlbench.backends.common.wrapping import check_input_shape

    shape = check_input_shape(given)
    own = getattr(obj, "input_shape", None)
    if shape is not None and own is not None and tuple(own) != shape:
        raise ConfigError(
            f"Expected input_shape to match the model's {tuple(own)}. Received: input_shape={shape}"
        )
    return shape or (tuple(own) if own is not None else None)


def _infer_source(obj: Any) -> str:
    """The backend to export ``obj`` from: a spec's default source (the first exporter), a
    Model's own backend, or the exporter whose manifest's ``native_modules`` the object's
    classes come from."""
    from dlbench.model.backend import Model
    from dlbench.model.spec import ModelSpec
    from dlbench.registry import backends

    sources = backends.export_sources()
    if isinstance(obj, (ModelSpec, str)):
        if not sources:
            raise ConfigError("Expected a backend that exports to ONNX. Received: none registered")
        return sources[0]
    if isinstance(obj, Model):
        return obj.backend.name
    roots = {c.__module__.split(".")[0] for c in type(obj).__mro__}
    for name in sources:
        if roots & set(backends.manifest(name).native_modules):
            return name
    options = ", ".join(f"source={s!r}" for s in sources)
    raise ConfigError(
        f"Cannot tell which framework a {type(obj).__name__} comes from. Pass one of: {options}."
    )


def _flat_outputs(y: Any, prefix: str = "", sort: bool = False) -> list[tuple[str, Any]]:
    """A model's outputs as ``(name, array)`` pairs in the exporter's order: one array is
    ``[("", y)]``; a dict (a detector's ``{"logits", "pred_boxes"}``) gives its keys (in
    insertion order, or sorted with ``sort``: a source whose manifest says ``sorted_dict_outputs``), a list /
    tuple ``output_<i>``, nested levels joined with ``.``. The per-output parity check catches
    an exporter that orders them otherwise (a wrong name gets another output's values)."""
    from collections.abc import Mapping

    if isinstance(y, Mapping):
        out = []
        for k in sorted(y, key=str) if sort else y:
            out.extend(_flat_outputs(y[k], f"{prefix}{k}.", sort))
        return out
    if isinstance(y, (tuple, list)):
        out = []
        for i, v in enumerate(y):
            out.extend(_flat_outputs(v, f"{prefix}output_{i}.", sort))
        return out
    return [(prefix[:-1], y)]


def _named_outputs(
    y: Any, names: list[str], sort: bool = False, by_name: bool = False
) -> dict[str, Any]:
    """``y`` (one array, or the dict / list of a multi-output model) by output name: in the
    exporter's order (the source model: ``names`` are positional), or, with ``by_name``, by
    name when its names are ``names`` (ONNX Runtime's dict by graph output name)."""
    flat = _flat_outputs(y, sort=sort)
    if len(flat) == 1 and len(names) == 1:
        return {names[0]: flat[0][1]}
    if len(flat) != len(names):
        raise ExportError(
            f"Expected {len(names)} outputs {names}. Received {len(flat)}: "
            f"{[n or '<array>' for n, _ in flat]}"
        )
    named = dict(flat)
    if by_name and set(named) == set(names):
        return {n: named[n] for n in names}
    return dict(zip(names, (v for _, v in flat)))


def _merge(worst: dict[str, Any] | None, rec: dict[str, Any]) -> dict[str, Any]:
    """One parity record from two (two batches, or two outputs): failed when either failed;
    else ok when either is an informative agreement; the worst of each figure."""
    from dlbench.analysis.parity import failed

    if worst is None:
        return dict(rec)
    was_failed = failed(worst) or failed(rec)
    worst["ok"] = (worst["ok"] or rec["ok"]) and not was_failed
    worst["informative"] = worst["ok"] or was_failed
    if not worst["informative"]:
        worst["reason"] = worst.get("reason") or rec.get("reason")
    else:
        worst.pop("reason", None)
    for key, pick in (
        ("max_abs_diff", max),
        ("max_rel_diff", max),
        ("argmax_agreement", min),
        ("cosine_similarity", min),
        ("rel_l2_error", max),
    ):
        a, b = worst.get(key), rec.get(key)
        worst[key] = None if a is None or b is None else pick(a, b)
    worst["output_scale"] = max(worst.get("output_scale") or 0, rec.get("output_scale") or 0)
    if rec.get("error") and not worst.get("error"):
        worst["error"] = rec["error"]
    return worst


def _parity(
    model: Any,
    ort_model: Any,
    shape: tuple[int, ...],
    sizes: list[int],
    tol: float,
    names: list[str] | None = None,
    sort: bool = False,
) -> dict[str, Any]:
    """ONNX Runtime against the source on a batch of each of ``sizes``. A model with several
    outputs (``names``) is compared output by output, each against its own scale (boxes in
    pixels and logits are not one scale): ``outputs`` holds each output's record (the worst
    over the batches), the top-level figures are the worst over the outputs, and the check
    fails when any output fails."""
    import numpy as np

    from dlbench.analysis.parity import compare, failed, make_batch

    names = names or ["output"]
    per: dict[str, dict[str, Any] | None] = dict.fromkeys(names)
    for i, n in enumerate(sizes):
        batch = make_batch(shape, n, seed=i)
        ref = _named_outputs(model.predict(batch), names, sort)
        try:
            out = _named_outputs(ort_model.predict(batch), names, by_name=True)
        except ExportError as exc:
            rec = compare(np.zeros(1), np.zeros(2), tolerance=tol)  # a shape mismatch record
            rec["error"] = f"ONNX Runtime's outputs do not match the source's: {exc}"
            per = {k: _merge(per[k], rec) for k in names}
            continue
        for k in names:
            rec = compare(np.asarray(ref[k]), np.asarray(out[k]), tolerance=tol)
            if rec.get("error") and len(names) > 1:
                rec["error"] = f"output {k!r}: {rec['error']}"
            per[k] = _merge(per[k], rec)
    worst: dict[str, Any] | None = None
    for k in names:
        rec = per[k]
        assert rec is not None
        rec["batch_sizes"] = list(sizes)
        worst = _merge(worst, rec)
        if failed(rec) and "failed_output" not in worst:
            worst["failed_output"] = k
    assert worst is not None
    worst["batch_sizes"] = list(sizes)
    if len(names) > 1:
        worst["outputs"] = per
    else:
        worst.pop("failed_output", None)
    return worst


def to_onnx(
    spec_or_model: Any,
    path: str | os.PathLike[str],
    source: str | None = None,
    opset: int | None = None,
    dynamic_batch: bool = True,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
    exporter: str | None = None,
    tolerance: float = 1e-4,
    force: bool = False,
    *,
    input_shape: tuple[int, ...] | None = None,
    batch_size: int = 1,
    **wrap_options: Any,
) -> ExportReport:
    """Export a model to ONNX, check the file, and compare ONNX Runtime with the source.

    Args:
        spec_or_model: A :class:`~dlbench.model.spec.ModelSpec` or zoo name (built by ``source``
            first), a dlbench Model from ``build``/``wrap``, or a native model (an
            ``nn.Module``, a ``keras.Model``/``tf.Module``, or a JAX ``fn(params, x)`` with
            ``params=``), which is wrapped with ``wrap_options`` first.
        path: The ``.onnx`` file to write (parent folders are made).
        source: ``torch``, ``tensorflow`` or ``jax``. Default: ``torch`` for a spec, else the
            framework of the model.
        opset: ONNX opset (default :data:`~dlbench.export.requirements.DEFAULT_OPSET`, the
            same for every source).
        dynamic_batch: Keep the batch axis free (named ``batch``); else fix it to ``batch_size``.
        input_names: Name of the graph input (default ``["input"]``).
        output_names: Names of the graph outputs, in order (default ``["output"]``).
        exporter: For torch ``dynamo`` (default) or ``torchscript``; ``tf2onnx`` for
            tensorflow; ``jax2onnx`` for jax.
        tolerance: Parity bound: max abs diff <= tolerance x the source output's own scale
            (max |source output|), and the argmax agrees on every sample. A source output that
            cannot tell right from wrong (constant, input-independent) is a warning, not a
            failure (see :func:`dlbench.analysis.parity.failed`).
        force: Return the report instead of raising when parity fails.
        input_shape: Per-sample input shape (NCHW for images); needed for native models that
            do not declare one.
        batch_size: The fixed batch size when ``dynamic_batch`` is false.
        **wrap_options: Passed to ``get_backend(source).wrap`` for a native model (``params``
            for JAX, ``layout`` for TensorFlow/JAX...).

    Returns:
        An :class:`ExportReport`.

    Raises:
        MissingFrameworkError: the source framework or its exporter is not installed.
        UnsupportedOpError: the model uses an op the exporter cannot express in ONNX.
        ExportError: the export, or ``onnx.checker`` on its result, failed.
        ExportParityError: ONNX Runtime disagrees with the source (unless ``force``).

    Example:
        >>> import dlbench
        >>> from dlbench.export import to_onnx
        >>> r = to_onnx(dlbench.zoo.get("resnet20"), "resnet20.onnx", source="jax")  # doctest: +SKIP
        >>> r.parity["max_abs_diff"] < 1e-4, r.op_counts["Conv"]  # doctest: +SKIP
        (True, 21)
    """
    from dlbench.model.backend import Model, get_backend
    from dlbench.model.spec import ModelSpec

    if isinstance(spec_or_model, str):
        from dlbench import zoo

        spec_or_model = zoo.get(spec_or_model)
    src = source or _infer_source(spec_or_model)
    exporter = check_exporter(src, exporter)
    message = missing_message(src, exporter)
    if message:
        raise MissingFrameworkError(message)
    opset = DEFAULT_OPSET if opset is None else opset
    if not isinstance(opset, int) or isinstance(opset, bool) or opset < 7:
        raise ConfigError(f"Expected `opset` to be an int >= 7. Received: opset={opset!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(
            f"Expected `batch_size` to be a positive int. Received: batch_size={batch_size!r}"
        )
    if not isinstance(tolerance, (int, float)) or not tolerance > 0 or math.isnan(tolerance):
        raise ConfigError(f"Expected `tolerance` > 0. Received: tolerance={tolerance!r}")
    in_names = list(input_names) if input_names else ["input"]
    if len(in_names) != 1:
        raise ConfigError(
            f"Expected one input name (dlbench models take one input). Received: {in_names}"
        )

    fingerprint = None
    if isinstance(spec_or_model, ModelSpec):
        spec = spec_or_model.validate()
        if wrap_options:
            raise ConfigError(f"Unexpected option(s) {sorted(wrap_options)} for a ModelSpec")
        shape = _input_shape(spec, input_shape)
        model = get_backend(src).build(spec, "cpu")
        name, fingerprint = spec.name, spec.fingerprint()
    elif isinstance(spec_or_model, Model):
        if wrap_options:
            raise ConfigError(
                f"Unexpected option(s) {sorted(wrap_options)} for an already wrapped model"
            )
        model = spec_or_model
        if model.backend.name != src:
            raise ConfigError(
                f"Expected a {src} model for source={src!r}. Received a model of backend "
                f"{model.backend.name!r}"
            )
        shape = _input_shape(model, input_shape)
        name = model.name
    else:
        model = get_backend(src).wrap(spec_or_model, input_shape=input_shape, **wrap_options)
        shape = _input_shape(model, None)
        name = model.name
    if shape is None:
        raise ExportError(
            f"Cannot export {name!r}: its input shape is unknown. Pass input_shape=(C, H, W) "
            "(per sample, NCHW) to wrap() or to_onnx()."
        )

    from dlbench.registry import backends

    sort = backends.manifest(src).sorted_dict_outputs
    out_names = _output_names(spec_or_model, model, shape, output_names, batch_size, sort)
    out_path = Path(path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    request = ExportRequest(
        input_shape=tuple(shape),
        opset=opset,
        dynamic_batch=dynamic_batch,
        batch_size=batch_size,
        input_names=list(in_names),
        output_names=list(out_names),
        exporter=exporter,
    )
    proto, info = model.backend.export_onnx(model, request)
    seconds = time.perf_counter() - t0
    graph.finalize(
        proto,
        input_names=in_names,
        output_names=out_names,
        dynamic_batch=dynamic_batch,
        metadata={
            "source": src,
            "exporter": exporter,
            "model": name,
            "input_layout": "NCHW",
            **({"fingerprint": fingerprint} if fingerprint else {}),
        },
    )
    graph.raise_if_unsupported(proto, source=src, exporter=exporter, opset=opset)
    _raise_if_extra_inputs(proto, src, exporter)
    # Written under a temporary name and moved into place only once checked: a failure never
    # leaves a half-written file at ``path`` (a parity failure keeps the file, as it says).
    partial = out_path.with_name(f".{out_path.name}.partial-{os.getpid()}.onnx")
    try:
        _save(proto, partial, out_path)
        try:
            graph.load_onnx(partial)
        except ExportError as exc:
            raise ExportError(
                f"The {src} export ({exporter}) is not a valid ONNX model: {exc}"
            ) from None
        ort_model = _wrap_exported(partial, model, shape, src, exporter)
        sizes = [PARITY_BATCH, 1] if dynamic_batch else [batch_size]
        parity = _parity(model, ort_model, shape, sizes, float(tolerance), out_names, sort)
        del ort_model
        graph.set_metadata(proto, "dlbench.analysis.parity", parity)
        _save(proto, partial, out_path)
        os.replace(partial, out_path)
    except BaseException:
        for leftover in (partial, out_path.with_name(out_path.name + ".data")):
            if leftover.exists() and (leftover == partial or not out_path.exists()):
                leftover.unlink()
        raise
    summary = graph.summarize(out_path)
    report = ExportReport(
        path=str(out_path),
        source=src,
        exporter=exporter,
        opset=int(summary["opset"] or opset),
        file_bytes=int(summary["file_bytes"]),
        op_counts=summary["op_counts"],
        params=int(summary["params"]),
        parity=parity,
        model=name,
        input_names=in_names,
        output_names=[o["name"] for o in summary["outputs"]],
        input_shape=list(shape),
        dynamic_batch=bool(dynamic_batch),
        versions=info.get("versions", {}),
        export_seconds=seconds,
        fingerprint=fingerprint,
        summary=summary,
    )
    if parity.get("informative") is False and not parity["ok"]:
        import warnings

        warnings.warn(
            f"The parity check of the {src} export ({exporter}) of {name!r} is not informative: "
            f"{parity.get('reason')}. ONNX Runtime agrees with {src}, but on these inputs the "
            "check cannot tell a right output from a wrong one.",
            stacklevel=2,
        )
    from dlbench.analysis.parity import failed

    if failed(parity) and not force:
        bad = parity.get("failed_output")
        rec = (parity.get("outputs") or {}).get(bad) or parity
        at = f"output {bad!r}: " if bad else ""
        why = at + (
            rec.get("error")
            or f"max abs diff {rec['max_abs_diff']} > {tolerance:g} x output scale "
            f"{rec['output_scale']}, argmax agreement {rec['argmax_agreement']}"
        )
        raise ExportParityError(
            f"ONNX Runtime's outputs of the {src} export ({exporter}) of {name!r} differ from "
            f"{src}'s: {why}. The file is kept at {out_path}; pass force=True (--force) to "
            "accept it.",
            report,
        )
    return report


def _output_names(
    obj: Any,
    model: Any,
    shape: tuple[int, ...],
    given: list[str] | None,
    batch_size: int,
    sort: bool = False,
) -> list[str]:
    """The graph's output names: ``given``; else a detector's own (a ModelSpec's outputs,
    the keys of the dict a wrapped detector returns, ``output_<i>`` for a list); else
    ``["output"]``. One probe batch tells how many outputs the source model has.

    Raises:
        ConfigError: ``given`` names another number of outputs than the model has.
        ExportError: a model with several outputs that is not a wrapped detector (ONNX
            Runtime's dlbench Model returns one output, so the others could not be checked).
    """
    import numpy as np

    from dlbench.analysis.parity import make_batch
    from dlbench.execution.scenarios.detection import model_task
    from dlbench.model.spec import ModelSpec

    flat = _flat_outputs(model.predict(make_batch(shape, batch_size, seed=0)), sort=sort)
    if len(flat) > 1 and getattr(model, "detection", None) is None:
        raise ExportError(
            f"Expected one output from {model.name!r}, or a wrapped detector (wrap(..., "
            f"detection=...)) for several. Received {len(flat)} outputs"
        )
    for name, value in flat:
        if not isinstance(value, np.ndarray):
            raise ExportError(
                f"Expected the outputs of {model.name!r} to be arrays. Received: output "
                f"{name or '<first>'!r} of type {type(value).__name__}"
            )
    if given:
        names = [str(n) for n in given]
        if len(names) != len(flat):
            raise ConfigError(
                f"Expected {len(flat)} output name(s), one per output of {model.name!r} "
                f"({[n or '<array>' for n, _ in flat]}). Received: output_names={names}"
            )
    elif len(flat) > 1:
        names = [n for n, _ in flat]
    elif isinstance(obj, ModelSpec) and model_task(obj) == "detection":
        names = list(obj.outputs)
    else:
        names = ["output"]
    if len(set(names)) != len(names) or not all(names):
        raise ConfigError(f"Expected distinct, non-empty output names. Received: {names}")
    return names


def _wrap_exported(path: Path, model: Any, shape: tuple[int, ...], src: str, exporter: str) -> Any:
    """The exported file in ONNX Runtime; a wrapped detector's file with the detector's own
    output contract (every output comes back, by name; the contract is checked on a probe
    batch of the file's outputs, so a renamed or missing output is an error here)."""
    from dlbench.model.backend import get_backend

    backend = get_backend(_onnx_runtime())
    pipeline = getattr(model, "detection", None)
    if pipeline is None:
        return backend.wrap(path, input_shape=shape)
    try:
        return backend.wrap(path, input_shape=shape, detection=pipeline.decoder)
    except Exception as exc:
        text = (str(exc).strip().splitlines() or [""])[0]
        raise ExportParityError(
            f"The {src} export ({exporter}) of detector {model.name!r} does not fit its own "
            f"output contract in ONNX Runtime: {type(exc).__name__}: {text}",
            None,
        ) from exc


def _onnx_runtime() -> str:
    """The backend that checks every export (its manifest says it runs ONNX files)."""
    from dlbench.registry import backends

    name = backends.onnx_runtime()
    if name is None:
        raise MissingFrameworkError("No registered backend runs ONNX files to check the export")
    return name


def _raise_if_extra_inputs(proto: Any, src: str, exporter: str) -> None:
    """An export with more than one graph input (captured constants or variables turned into
    inputs) is an :class:`ExportError` naming the exporter and the layers they belong to."""
    init = {t.name for t in proto.graph.initializer}
    inputs = [i.name for i in proto.graph.input if i.name not in init]
    if len(inputs) <= 1:
        return
    extra = inputs[1:]
    layers = sorted({n.split("/")[1] if n.count("/") >= 2 else n.split("/")[0] for n in extra})
    raise ExportError(
        f"The {src} export ({exporter}) has {len(inputs)} graph inputs {inputs}; dlbench models "
        f"take one. The extra inputs come from layer(s) {layers}: {exporter} turned values they "
        "capture into graph inputs instead of constants."
    )


def _save(proto: Any, path: Path, final: Path | None = None) -> None:
    """Save ``proto`` to ``path``; large models keep their weights next to it in
    ``<final name>.data`` (the name the file will have once moved into place)."""
    import onnx

    large = proto.ByteSize() > 1_900_000_000
    onnx.save_model(
        proto,
        str(path),
        save_as_external_data=large,
        all_tensors_to_one_file=True,
        location=(final or path).name + ".data" if large else None,
    )
