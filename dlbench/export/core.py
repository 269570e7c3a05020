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


def _parity(model: Any, ort_model: Any, shape: tuple[int, ...], sizes: list[int], tol: float):
    import numpy as np

    from dlbench.analysis.parity import compare, failed, make_batch

    worst: dict[str, Any] | None = None
    for i, n in enumerate(sizes):
        batch = make_batch(shape, n, seed=i)
        ref = np.asarray(model.predict(batch))
        out = np.asarray(ort_model.predict(batch))
        rec = compare(ref, out, tolerance=tol)
        if worst is None:
            worst = rec
            continue
        # failed when any batch failed; else ok when any batch was an informative agreement (a
        # batch of 1 alone may be too small to tell: it checks the free batch axis)
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
    assert worst is not None
    worst["batch_sizes"] = list(sizes)
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
    out_names = list(output_names) if output_names else ["output"]
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
        ort_model = get_backend(_onnx_runtime()).wrap(partial, input_shape=shape)
        sizes = [PARITY_BATCH, 1] if dynamic_batch else [batch_size]
        parity = _parity(model, ort_model, shape, sizes, float(tolerance))
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
        why = parity.get("error") or (
            f"max abs diff {parity['max_abs_diff']} > {tolerance:g} x output scale "
            f"{parity['output_scale']}, argmax agreement {parity['argmax_agreement']}"
        )
        raise ExportParityError(
            f"ONNX Runtime's outputs of the {src} export ({exporter}) of {name!r} differ from "
            f"{src}'s: {why}. The file is kept at {out_path}; pass force=True (--force) to "
            "accept it.",
            report,
        )
    return report


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
