"""The PyTorch backend: a ModelSpec becomes a real ``nn.Module`` (a ``torch.fx.GraphModule``).

Modes: ``eager`` (the module as is) and ``compile`` (``torch.compile``). Forward passes run
under ``torch.inference_mode()`` by default. ``channels_last`` converts the module and 4-D
inputs to the channels-last memory format. On CUDA, float32 precision disables TF32 in matmul
and cuDNN; on every device ``torch.set_float32_matmul_precision("highest")`` is set.

Example:
    >>> import numpy as np, dlbench
    >>> m = dlbench.get_backend("torch", mode="eager").build(dlbench.zoo.get("mlp"))
    >>> m.predict(np.zeros((2, 1, 8, 8), np.float32)).shape
    (2, 10)
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from torch import fx, nn

from dlbench.analysis.settings_check import not_in_force, verify
from dlbench.backends.common.options import COMMON_OPTIONS, check_choice, check_common, thread_env
from dlbench.backends.torch.ops import OPS, Emitter, SelfAttention
from dlbench.model.backend import Backend, Model, parse_device
from dlbench.model.spec import FLOAT_INPUT, InputDesc, ModelSpec

MODES = ("eager", "compile")
_INTEROP_SET: int | None = None  # torch.set_num_interop_threads may be called once per process


def build_module(spec: ModelSpec, inplace: bool = False) -> fx.GraphModule:
    """The spec as an ``fx.GraphModule`` in eval mode, float32, on the CPU; with ``inplace``,
    activations and adds overwrite their input where that is safe (:func:`make_inplace`)."""
    e = Emitter()
    env: dict[str, fx.Node] = {t.name: e.graph.placeholder(t.name) for t in spec.inputs}
    plan = spec.resolved()
    OPS.run(plan, env, e)
    outs = [env[o] for o in spec.outputs]
    e.graph.output(outs[0] if len(outs) == 1 else tuple(outs))
    if inplace:
        make_inplace(e.root, e.graph, plan, env)
    gm = fx.GraphModule(e.root, e.graph, class_name=f"{spec.name}_module")
    return gm.eval()


#: Module layers whose output is a new tensor (never a view of their input, never a buffer).
_FRESH_MODULES: tuple[type[nn.Module], ...] = (
    nn.Conv2d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.Linear,
    nn.LayerNorm,
    nn.ReLU,
    nn.ReLU6,
    nn.SiLU,
    nn.Hardswish,
    nn.GELU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softmax,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.Upsample,
    SelfAttention,
)
#: Functions whose output is a new tensor.
_FRESH_FUNCTIONS = frozenset({torch.add, torch.mul, torch.matmul, torch.cat, torch.mean})
#: Activation layers that have an in-place form (their ``inplace`` flag).
_INPLACE_MODULES: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish)
#: Binary functions and their in-place tensor methods (elementwise: exact in either order).
_INPLACE_METHODS = {torch.add: "add_", torch.mul: "mul_"}


def make_inplace(
    root: nn.Module, graph: fx.Graph, plan: list, env: dict[str, fx.Node]
) -> dict[str, int]:
    """Turn activations (ReLU, ReLU6, SiLU, Hardswish) and elementwise adds/muls into their
    in-place forms where no one can see the difference, as a PyTorch user writes
    ``nn.ReLU(inplace=True)`` and ``out += identity``: a freshly allocated result is then reused
    instead of a new one being allocated (and later freed) on every call.

    An op may overwrite its input ``x`` only when ``x`` is *owned*: produced by a layer or function
    that returns a new tensor (:data:`_FRESH_MODULES`, :data:`_FRESH_FUNCTIONS`; so never a graph
    input, a weight or a view such as a reshape, transpose or slice), or by an op already made
    in-place on an owned tensor; ``x`` has that op as its only user (so nothing reads it later and
    it is not a graph output); and for a binary op, ``x`` already has the output's shape (no
    broadcasting into it). Only for inference: autograd would need the overwritten values.

    Returns:
        How many ops were changed, by kind (``{"relu": 3, "add": 2}``), for the tests.
    """
    owned: dict[fx.Node, bool] = {}

    def is_owned(node: Any) -> bool:
        if not isinstance(node, fx.Node):
            return False
        if node in owned:
            return owned[node]
        if node.op == "call_module":
            return isinstance(root.get_submodule(node.target), _FRESH_MODULES)
        return node.op == "call_function" and node.target in _FRESH_FUNCTIONS

    def free(node: Any) -> bool:
        return is_owned(node) and len(node.users) == 1

    changed: dict[str, int] = {}
    seen: set[fx.Node] = set()
    for rn in plan:
        node = env.get(rn.name)
        if not isinstance(node, fx.Node) or node in seen:
            continue  # a node an earlier name already stands for (dropout is its input)
        seen.add(node)
        if node.op == "call_module":
            mod = root.get_submodule(node.target)
            if isinstance(mod, _INPLACE_MODULES) and free(node.args[0]):
                mod.inplace = True
                owned[node] = True
                changed[rn.op] = changed.get(rn.op, 0) + 1
        elif node.op == "call_function" and node.target in _INPLACE_METHODS and not node.kwargs:
            a, b = node.args
            same = [
                i
                for i, shape in enumerate(rn.in_shapes[: len(node.args)])
                if tuple(shape) == tuple(rn.out_shape)
            ]
            if len(rn.in_shapes) < 2:  # the other operand is a weight: no batch dimension
                other = rn.params.get("other")
                if other is None or np.ndim(other) > len(rn.out_shape):
                    same = []
            pick = next((i for i in same if free(node.args[i])), None)
            if pick is None or a is b:
                continue
            target = node.args[pick]
            node.op, node.target = "call_method", _INPLACE_METHODS[node.target]
            node.args = (target, node.args[1 - pick])
            owned[node] = True
            changed[rn.op] = changed.get(rn.op, 0) + 1
    return changed


def _grad_mode(inference_mode: bool) -> Callable[[], contextlib.AbstractContextManager]:
    """The context every forward enters: inference mode (or no_grad when it is off).

    For inference mode this is the C++ guard that ``torch.inference_mode()`` itself enters,
    built by a C-level ``partial``: the same mode, without the Python class that builds a
    decorator-capable object and a guard on every call (about 1 us less per call, measured on
    the 2-core CI machine). Falls back to the public class if the guard ever moves.
    """
    if not inference_mode:
        return torch.no_grad
    guard = getattr(torch._C, "_InferenceMode", None)
    return functools.partial(guard, True) if guard is not None else torch.inference_mode


class TorchModel(Model):
    """A module on one device; ``forward`` runs it under inference mode (or no_grad)."""

    #: what ``to_device`` takes (a spec's integer ids stay int64)
    input_desc: InputDesc = FLOAT_INPUT

    def __init__(self, backend: TorchBackend, module: nn.Module, device: str, name: str) -> None:
        super().__init__(backend, device, name)
        self.torch_device = torch.device(device)  # also sets _cuda (the property below)
        self.channels_last = bool(backend.options["channels_last"])
        module = module.to(self.torch_device)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        self.module = module
        self._weight_bytes = sum(
            t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()]
        )
        mode = backend.options["mode"]
        if mode == "compile":
            kw = (
                {"mode": backend.options["compile_mode"]} if backend.options["compile_mode"] else {}
            )
            self.runner = torch.compile(module, dynamic=False, **kw)
        else:
            self.runner = module
        self._ctx = _grad_mode(bool(backend.options["inference_mode"]))

    @property
    def torch_device(self) -> torch.device:
        """The device the module and its inputs live on."""
        return self._torch_device

    @torch_device.setter
    def torch_device(self, device: torch.device) -> None:
        # ``sync`` tests a bool (no attribute chain per call); kept in step with the device
        self._torch_device = device
        self._cuda = device.type == "cuda"

    def to_device(self, batch: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(self.input_desc.host(batch)))
        x = x.to(self.torch_device)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self._ctx():
            return self.runner(x)

    def sync(self, y: Any) -> None:
        if self._cuda:
            torch.cuda.synchronize(self.torch_device)

    def to_numpy(self, y: Any) -> np.ndarray:
        if isinstance(y, (tuple, list)):
            y = y[0]
        return y.detach().to("cpu").numpy()

    def weight_bytes(self) -> int:
        return int(self._weight_bytes)


class TorchBackend(Backend):
    """PyTorch. Options: ``mode`` (eager | compile), ``compile_mode`` (torch.compile's mode,
    e.g. "max-autotune"; None for its default), ``inference_mode`` (bool), ``channels_last``
    (bool), plus threads and precision."""

    name: ClassVar[str] = "torch"
    requires: ClassVar[tuple[str, ...]] = ("torch",)
    default_options: ClassVar[dict[str, Any]] = {
        **COMMON_OPTIONS,
        "mode": "eager",
        "compile_mode": None,
        "inference_mode": True,
        "channels_last": False,
    }

    def __init__(self, **options: Any) -> None:
        global _INTEROP_SET
        super().__init__(**options)
        check_common(self.name, self.options)
        check_choice(self.name, self.options, "mode", MODES)
        self._applied: dict[str, Any] = {}
        if self.options["intra_op_threads"]:
            torch.set_num_threads(self.options["intra_op_threads"])
        inter = self.options["inter_op_threads"]
        if inter:
            if _INTEROP_SET is None:
                try:
                    torch.set_num_interop_threads(inter)
                    _INTEROP_SET = inter
                except RuntimeError as exc:  # parallel work already started in this process
                    self._applied["inter_op_threads_error"] = str(exc)
            elif _INTEROP_SET != inter:
                self._applied["inter_op_threads_error"] = (
                    f"already set to {_INTEROP_SET} in this process; it can be set only once"
                )
        # float32 means float32: no TF32, no reduced-precision matmul
        if self.options["precision"] == "float32":
            torch.set_float32_matmul_precision("highest")
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        verify(self.name, self.settings())

    def build(self, spec: ModelSpec, device: str = "cpu") -> TorchModel:
        self.check_device(device)
        kind, index = parse_device(device)
        dev = f"cuda:{index}" if kind == "cuda" else "cpu"
        # in-place ops only under inference mode: autograd would need the overwritten values
        inplace = bool(self.options["inference_mode"])
        model = TorchModel(self, build_module(spec.validate(), inplace=inplace), dev, spec.name)
        model.input_desc = spec.input_desc()
        if self.options["mode"] == "eager":
            # the generated forward itself: the GraphModule's __call__ adds fx's call wrapper and
            # the hook machinery around it, and dlbench's own module has no hooks
            model.runner = model.module.forward
        return model

    def wrap(
        self, native: Any, device: str = "cpu", name: str | None = None, **kwargs: Any
    ) -> TorchModel:
        """Wrap a user's ``nn.Module`` (put in eval mode); ``input_shape=(C, H, W)`` checks it
        now and makes it exportable. See :func:`dlbench.backends.torch.wrap.wrap_module`."""
        from dlbench.backends.torch.wrap import wrap_module

        return wrap_module(self, native, device=device, name=name, **kwargs)

    def devices(self) -> list[str]:
        out = ["cpu"]
        with contextlib.suppress(Exception):
            if torch.cuda.is_available():
                out.append("cuda")
        return out

    def versions(self) -> dict[str, str]:
        v = {"torch": torch.__version__.split("+")[0], "torch_build": torch.__version__}
        if torch.version.cuda:
            v["cuda"] = str(torch.version.cuda)
        with contextlib.suppress(Exception):
            if torch.backends.cudnn.is_available():
                v["cudnn"] = str(torch.backends.cudnn.version())
        v["mkldnn"] = str(torch.backends.mkldnn.is_available())
        return v

    # -- memory hooks (called by dlbench.execution.memory) -----------------------------------
    @staticmethod
    def _cuda_ready() -> bool:
        return torch.cuda.is_available() and torch.cuda.is_initialized()

    def memory_stats(self, index: int) -> dict[str, Any]:
        if not self._cuda_ready():
            return {}
        return {
            "torch": {
                "max_allocated_bytes": int(torch.cuda.max_memory_allocated(index)),
                "max_reserved_bytes": int(torch.cuda.max_memory_reserved(index)),
                "allocated_bytes": int(torch.cuda.memory_allocated(index)),
            }
        }

    def reset_peaks(self, index: int) -> None:
        if self._cuda_ready():
            torch.cuda.reset_peak_memory_stats(index)

    def release_memory(self) -> None:
        if self._cuda_ready():
            torch.cuda.empty_cache()

    def settings(self) -> dict[str, Any]:
        settings = {
            **self.options,
            "intra_op_threads_in_force": torch.get_num_threads(),
            "inter_op_threads_in_force": torch.get_num_interop_threads(),
            "tf32": torch.backends.cuda.matmul.allow_tf32,  # the key every backend reports
            "allow_tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "allow_tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "thread_env": thread_env(),
            **self._applied,
            "versions": self.versions(),
        }
        settings["not_in_force"] = not_in_force(settings)
        return settings
