"""The TensorFlow backend: a ModelSpec becomes a ``tf.Module`` run eagerly or via ``tf.function``.

Modes: ``eager`` (op by op), ``graph`` (``tf.function``), ``xla`` (``tf.function(jit_compile=
True)``). Activations are NHWC inside (TensorFlow's native layout on CPU); weights are
transposed once at build time; ``to_device`` hands the model NHWC inputs and the model returns
canonical outputs. With float32 precision TF32 is disabled.

Example:
    >>> import numpy as np, dlbench
    >>> m = dlbench.get_backend("tensorflow", mode="graph").build(dlbench.zoo.get("mlp"))
    >>> m.predict(np.zeros((2, 1, 8, 8), np.float32)).shape
    (2, 10)
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, ClassVar

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dlbench.analysis.settings_check import not_in_force, verify  # noqa: E402
from dlbench.backends.common.options import (  # noqa: E402
    COMMON_OPTIONS,
    check_choice,
    check_common,
    thread_env,
)
from dlbench.backends.common.weights import nchw_to_nhwc  # noqa: E402
from dlbench.backends.tensorflow.ops import (  # noqa: E402
    CANON,
    NHWC,
    OPS,
    Value,
    canon,
    prepare,
)
from dlbench.model.backend import Backend, Model, parse_device  # noqa: E402
from dlbench.model.spec import ModelSpec  # noqa: E402

MODES = ("eager", "graph", "xla")


class SpecModule(tf.Module):
    """The spec as a ``tf.Module``: non-trainable variables plus a call that runs the graph."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(name=None)
        self.spec_name = spec.name
        self.plan = spec.resolved()
        OPS.check(self.plan)
        self.weights = {
            rn.name: {
                k: tf.Variable(v, trainable=False, name=f"{rn.name}.{k}".replace("/", "_"))
                for k, v in prepare(rn).items()
            }
            for rn in self.plan
        }
        self.input_name = spec.inputs[0].name
        self.input_desc = spec.input_desc()  # integer ids stay int64
        self.input_rank = len(spec.input_shape) + 1
        self.outputs = list(spec.outputs)

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        env = {self.input_name: Value(x, NHWC if self.input_rank == 4 else CANON)}
        return canon(OPS.run(self.plan, env, self.weights)[self.outputs[0]])


def _flat_call(concrete: Any) -> Any:
    """A one-tensor call of a traced function without ``ConcreteFunction.__call__``'s argument
    binding and output packing (~170 Python calls, ~25 us per call on the 2-core CI machine):
    the input and the captured weights handed over flat, as ``__call__`` does in the end. Falls
    back to the concrete function itself if that private entry point is ever missing."""
    flat = getattr(concrete, "_call_flat", None)
    if flat is None or not isinstance(concrete.structured_outputs, tf.Tensor):
        return concrete  # no flat entry, or outputs that need packing
    captured = list(concrete.captured_inputs)  # the variables' handles: fixed for the model

    def call(x: tf.Tensor) -> tf.Tensor:
        return flat([x], captured)

    return call


class TensorFlowModel(Model):
    def __init__(
        self, backend: TensorFlowBackend, module: SpecModule, device: str, tf_device: str
    ) -> None:
        super().__init__(backend, device, module.spec_name)
        self.module = module
        self.tf_device = tf_device
        mode = backend.options["mode"]
        self.input_desc = module.input_desc
        self._dtype = tf.int64 if module.input_desc.integer else tf.float32
        shape = [None, *module.plan[0].in_shapes[0]] if module.plan else None
        if module.input_rank == 4 and shape is not None:
            c, h, w = shape[1:]
            shape = [None, h, w, c]
        self._call: Any = None  # graph / xla: the traced function that forward calls
        if mode == "eager":
            self.fn = module.__call__
        else:
            self.fn = tf.function(
                module.__call__,
                input_signature=[tf.TensorSpec(shape, self._dtype)] if shape else None,
                jit_compile=mode == "xla",
                reduce_retracing=True,
            )
            if shape is not None:
                # traced once, here: calling the concrete function skips tf.function's per-call
                # dispatch (argument binding, trace-cache lookup), the same graph either way
                with tf.device(tf_device):
                    self._call = self.fn.get_concrete_function()
        # The device scope places a function's call op (hence its outputs) and eager ops; on
        # /CPU:0 when it is the only device there is nowhere else to go: not entered.
        self._scoped = tf_device != "/CPU:0" or len(tf.config.list_logical_devices()) > 1
        #: what forward calls: the traced function's flat entry (graph, xla) or the module
        self._run = self.fn if self._call is None else _flat_call(self._call)
        self._weight_bytes = sum(int(np.prod(v.shape)) * 4 for v in module.variables)

    def to_device(self, batch: np.ndarray) -> tf.Tensor:
        a = nchw_to_nhwc(self.input_desc.host(batch))
        with tf.device(self.tf_device):
            return tf.identity(tf.convert_to_tensor(np.ascontiguousarray(a)))

    def forward(self, x: tf.Tensor) -> tf.Tensor:
        if not self._scoped:
            return self._run(x)
        # The device scope stays per call: it is what places a function's call op, hence its
        # outputs (tracing under a scope does not pin the returned tensors), and eager ops.
        with tf.device(self.tf_device):
            return self._run(x)

    def sync(self, y: Any) -> None:
        if "GPU" in self.tf_device:
            sync = getattr(getattr(tf.test, "experimental", None), "sync_devices", None)
            if sync is not None:
                sync()
            else:  # pragma: no cover - older TF
                y.numpy()

    def to_numpy(self, y: Any) -> np.ndarray:
        return y.numpy()

    def weight_bytes(self) -> int:
        return int(self._weight_bytes)


class TensorFlowBackend(Backend):
    """TensorFlow. Options: ``mode`` (eager | graph | xla), plus threads and precision."""

    name: ClassVar[str] = "tensorflow"
    requires: ClassVar[tuple[str, ...]] = ("tensorflow",)
    default_options: ClassVar[dict[str, Any]] = {**COMMON_OPTIONS, "mode": "graph"}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        check_common(self.name, self.options)
        check_choice(self.name, self.options, "mode", MODES)
        self._applied: dict[str, Any] = {}
        for key, setter, getter in (
            (
                "intra_op_threads",
                tf.config.threading.set_intra_op_parallelism_threads,
                tf.config.threading.get_intra_op_parallelism_threads,
            ),
            (
                "inter_op_threads",
                tf.config.threading.set_inter_op_parallelism_threads,
                tf.config.threading.get_inter_op_parallelism_threads,
            ),
        ):
            n = self.options[key]
            if n and getter() != n:
                try:
                    setter(n)
                except RuntimeError as exc:  # the runtime is already initialised
                    self._applied[f"{key}_error"] = str(exc)
        if self.options["precision"] == "float32":
            tf.config.experimental.enable_tensor_float_32_execution(False)
        verify(self.name, self.settings())

    def build(self, spec: ModelSpec, device: str = "cpu") -> TensorFlowModel:
        self.check_device(device)
        kind, index = parse_device(device)
        tf_device = f"/GPU:{index}" if kind == "cuda" else "/CPU:0"
        with tf.device(tf_device):
            module = SpecModule(spec.validate())
        return TensorFlowModel(self, module, device, tf_device)

    def wrap(
        self, native: Any, device: str = "cpu", name: str | None = None, **kwargs: Any
    ) -> Model:
        """Wrap a user's ``keras.Model``, ``tf.Module`` or function; ``input_shape`` and
        ``layout`` as in :func:`dlbench.backends.tensorflow.wrap.wrap_model`."""
        from dlbench.backends.tensorflow.wrap import wrap_model

        return wrap_model(self, native, device=device, name=name, **kwargs)

    def devices(self) -> list[str]:
        out = ["cpu"]
        with contextlib.suppress(Exception):
            if tf.config.list_physical_devices("GPU"):
                out.append("cuda")
        return out

    def memory_stats(self, index: int) -> dict[str, Any]:
        if not tf.config.list_logical_devices("GPU"):
            return {}
        info = tf.config.experimental.get_memory_info(f"GPU:{index}")
        return {
            "tensorflow": {"peak_bytes": int(info["peak"]), "current_bytes": int(info["current"])}
        }

    def reset_peaks(self, index: int) -> None:
        if tf.config.list_logical_devices("GPU"):
            tf.config.experimental.reset_memory_stats(f"GPU:{index}")

    def versions(self) -> dict[str, str]:
        v = {"tensorflow": tf.__version__}
        with contextlib.suppress(Exception):
            info = tf.sysconfig.get_build_info()
            for k in ("cuda_version", "cudnn_version"):
                if info.get(k):
                    v[k.replace("_version", "")] = str(info[k])
        with contextlib.suppress(Exception):
            import keras

            v["keras"] = keras.__version__
        return v

    def settings(self) -> dict[str, Any]:
        settings = {
            **self.options,
            "intra_op_threads_in_force": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads_in_force": tf.config.threading.get_inter_op_parallelism_threads(),
            "tf32": tf.config.experimental.tensor_float_32_execution_enabled(),
            "layout": "NHWC",
            "thread_env": thread_env(),
            **self._applied,
            "versions": self.versions(),
        }
        settings["not_in_force"] = not_in_force(settings)
        return settings
