"""Export a PyTorch model to ONNX with ``torch.onnx.export``.

Two exporters: ``dynamo`` (the default: ``torch.export`` then the ONNX translator, the one
PyTorch develops and recommends) and ``torchscript`` (the legacy tracer, still useful for a
model ``torch.export`` cannot capture). Both get the same example input, names and batch axis.

Example:
    >>> from dlbench.export import to_onnx
    >>> to_onnx(dlbench.zoo.get("mlp"), "mlp.onnx", source="torch")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Iterator
from typing import Any

import onnx
import torch

from dlbench.analysis.parity import make_batch
from dlbench.export.errors import ExportError, UnsupportedOpError
from dlbench.export.request import ExportRequest
from dlbench.model.backend import Model

EXPORTERS = ("dynamo", "torchscript")


def native_module(model: Model) -> torch.nn.Module:
    """The ``nn.Module`` behind a dlbench torch model (built or wrapped)."""
    module = getattr(model, "module", None)
    if not isinstance(module, torch.nn.Module):
        raise ExportError(
            f"Expected a dlbench torch model (from build or wrap). Received: {type(model).__name__}"
        )
    return module


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' progress lines, internal warnings and optional-package notes."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _chain(exc: BaseException) -> list[BaseException]:
    out, seen = [], set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _explain(exc: BaseException, exporter: str, opset: int) -> ExportError:
    """Turn an exporter exception into a dlbench error that names the op when it can."""
    chain = _chain(exc)
    text = " | ".join(str(e) for e in chain)
    unsupported = re.search(
        r"operator '([\w:.]+)' to ONNX opset version (\d+) is not supported", text
    )
    if unsupported:
        return UnsupportedOpError(
            f"PyTorch ({exporter}) cannot export op {unsupported.group(1)} to ONNX opset "
            f"{unsupported.group(2)}: it has no ONNX equivalent. Replace it in the model, or try "
            "another opset or exporter."
        )
    missing = re.search(r"No ONNX function found for <OpOverload\(op='([\w.]+)'", text)
    if missing:
        return UnsupportedOpError(
            f"PyTorch ({exporter}) cannot export op {missing.group(1)} to ONNX opset {opset}: no "
            "ONNX function is registered for it. Replace it in the model, or try "
            "exporter='torchscript'."
        )
    last = chain[-1]
    first_line = re.sub(r"\x1b\[[0-9;]*m", "", str(last)).strip().splitlines()
    return ExportError(
        f"PyTorch ({exporter}) could not export the model to ONNX opset {opset}: "
        f"{type(last).__name__}: {first_line[0] if first_line else ''}"
    )


def export_onnx(model: Model, request: ExportRequest) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """``(proto, info)``: the model as ONNX, and what made it (exporter, versions)."""
    input_shape, opset, dynamic_batch, batch_size, input_names, output_names, exporter = (
        request.unpack()
    )
    module = native_module(model).eval()
    device = getattr(model, "torch_device", torch.device("cpu"))
    example = torch.from_numpy(make_batch(input_shape, 2 if dynamic_batch else batch_size))
    example = example.to(device)
    try:
        if exporter == "dynamo":
            kw: dict[str, Any] = {}
            if dynamic_batch:
                kw["dynamic_shapes"] = ({0: torch.export.Dim("batch")},)
            with _quiet(), torch.no_grad():
                program = torch.onnx.export(
                    module,
                    (example,),
                    None,
                    dynamo=True,
                    opset_version=opset,
                    input_names=input_names,
                    output_names=output_names,
                    verbose=False,
                    **kw,
                )
            proto = program.model_proto
        elif exporter == "torchscript":
            buf = io.BytesIO()
            axes = (
                {n: {0: "batch"} for n in [*input_names, *output_names]} if dynamic_batch else None
            )
            with _quiet(), torch.no_grad():
                torch.onnx.export(
                    module,
                    (example,),
                    buf,
                    dynamo=False,
                    opset_version=opset,
                    input_names=input_names,
                    output_names=output_names,
                    dynamic_axes=axes,
                    do_constant_folding=True,
                )
            proto = onnx.load_from_string(buf.getvalue())
        else:  # pragma: no cover - checked by the caller
            raise ExportError(f"Expected exporter in {EXPORTERS}. Received: {exporter!r}")
    except ExportError:
        raise
    except Exception as exc:
        raise _explain(exc, exporter, opset) from exc
    return proto, {
        "exporter": exporter,
        "versions": {"torch": torch.__version__.split("+")[0], **_onnxscript_version(exporter)},
    }


def _onnxscript_version(exporter: str) -> dict[str, str]:
    if exporter != "dynamo":
        return {}
    with contextlib.suppress(Exception):
        import onnxscript

        return {"onnxscript": onnxscript.__version__}
    return {}
