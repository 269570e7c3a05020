"""dlbench's training step against a hand-written idiomatic loop in each framework.

Per framework, in one fresh process (thread settings fixed before the framework loads), the same
model (zoo ``resnet20`` by default), the same initial weights and the same batch are trained by
two contenders, alternating their order every round:

- ``dlbench``: ``make_trainer(spec, config).train_step(batch, lr)`` (dlbench's shared update
  rule written in the framework's ops, train-mode batch norm, the loss read back every step);
- ``idiomatic``: what a user of that framework writes by hand, with its own optimizer:
  torch: ``zero_grad`` / ``cross_entropy`` / ``backward`` / ``torch.optim.SGD.step`` / ``item()``;
  TensorFlow: one ``tf.function`` step (``GradientTape`` + ``keras.optimizers.SGD
  .apply_gradients``); JAX: one ``jax.jit`` step (``value_and_grad`` + ``optax.sgd`` with
  ``add_decayed_weights``), the loss read back every step.

Both run the same network code (the spec's modules / ops in train mode, built by dlbench), so the
ratio isolates the training machinery: the step function, the optimizer, the dispatch. The
optimizer is SGD, momentum 0.9, L2 5e-4 (coupled, as torch.optim.SGD) in both. Each round times
``--steps`` steps per contender after ``--warmup`` steps; the figures are medians over rounds of
the per-round median step time, and the ratio is the median of the per-round ratios (paired by
round, so load that drifts between rounds cancels). The issue's bar: dlbench within 5%.

Usage:
    .venv/bin/python benchmarks/train_overhead.py [--frameworks torch,tensorflow,jax]
        [--model resnet20] [--batch 32] [--rounds 7] [--steps 10] [--warmup 3] [--threads 1]
        [--input-shape 3,32,32] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

FRAMEWORKS = ("torch", "tensorflow", "jax")
LR, MOMENTUM, WD = 0.05, 0.9, 5e-4


def _median_step(step, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _idiomatic_torch(spec, x, y):
    import torch
    import torch.nn.functional as F

    from dlbench.backends.torch.training import build_train_module

    module = build_train_module(spec)
    opt = torch.optim.SGD(module.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WD)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(module(xt), yt)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def _idiomatic_tensorflow(spec, x, y):
    import keras
    import tensorflow as tf

    from dlbench.backends.tensorflow.training import TrainModule
    from dlbench.train import TrainConfig
    from dlbench.train.trainable import trained_roles

    module = TrainModule(spec, TrainConfig())
    trained = []
    for rn in spec.resolved():
        for role in trained_roles(rn):
            trained.append(module.locate(rn, role)[0])
    opt = keras.optimizers.SGD(learning_rate=LR, momentum=MOMENTUM)
    xt = tf.convert_to_tensor(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    yt = tf.convert_to_tensor(y.astype(np.int64))

    @tf.function
    def train_step(xb, yb):
        with tf.GradientTape() as tape:
            tape.watch(trained)
            logits = module(xb, None, None, True)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=yb, logits=logits)
            )
        grads = tape.gradient(loss, trained)
        grads = [g + WD * v for g, v in zip(grads, trained)]  # coupled L2, as torch's SGD
        opt.apply_gradients(zip(grads, trained))
        return loss

    return lambda: float(train_step(xt, yt))


def _idiomatic_jax(spec, x, y):
    import jax
    import jax.numpy as jnp
    import optax

    from dlbench.backends.jax.training import cross_entropy, make_train_apply
    from dlbench.train import TrainConfig
    from dlbench.train.trainable import state_roles, trained_roles

    run = make_train_apply(spec, TrainConfig())
    params, bn, frozen = {}, {}, {}
    for rn in spec.resolved():
        for role, arr in rn.params.items():
            where = (
                params if role in trained_roles(rn) else bn if role in state_roles(rn) else frozen
            )
            where.setdefault(rn.name, {})[role] = jnp.asarray(arr, jnp.float32)
    tx = optax.chain(optax.add_decayed_weights(WD), optax.sgd(LR, momentum=MOMENTUM))
    opt_state = tx.init(params)
    xd, yd = jnp.asarray(x), jnp.asarray(y.astype(np.int32))

    @jax.jit
    def train_step(p, s, bn, xb, yb):
        def loss_fn(p):
            logits, new_bn = run(p, frozen, bn, xb, None, None, True)
            return cross_entropy(logits, yb), new_bn

        (loss, new_bn), grads = jax.value_and_grad(loss_fn, has_aux=True)(p)
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s, new_bn, loss

    state = {"p": params, "s": opt_state, "bn": bn}

    def step() -> float:
        state["p"], state["s"], state["bn"], loss = train_step(
            state["p"], state["s"], state["bn"], xd, yd
        )
        return float(loss)

    return step


def worker(args: argparse.Namespace) -> dict[str, Any]:
    import importlib

    import dlbench
    from dlbench.train import TrainConfig

    fw = args.worker
    if fw == "torch":
        import torch

        torch.set_num_threads(args.threads)
    shape = tuple(int(v) for v in args.input_shape.split(","))
    spec = dlbench.zoo.get(args.model, input_shape=shape)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, *shape)).astype(np.float32)
    y = rng.integers(0, spec.num_classes, args.batch)
    cfg = TrainConfig(
        lr=LR,
        momentum=MOMENTUM,
        weight_decay=WD,
        batch_size=args.batch,
        intra_op_threads=args.threads,
    )
    trainer = importlib.import_module(f"dlbench.backends.{fw}.training").make_trainer(spec, cfg)
    batch = trainer.to_device(x, y)
    steps = {
        "dlbench": lambda: trainer.train_step(batch, LR),
        "idiomatic": globals()[f"_idiomatic_{fw}"](spec, x, y),
    }
    for step in steps.values():  # compile / trace, then warm up
        for _ in range(args.warmup):
            step()
    rounds: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(args.rounds):
        order = list(steps) if r % 2 == 0 else list(reversed(steps))
        for name in order:
            rounds[name].append(_median_step(steps[name], args.steps))
    ratios = [a / b for a, b in zip(rounds["dlbench"], rounds["idiomatic"])]
    return {
        "framework": fw,
        "model": args.model,
        "batch": args.batch,
        "threads": args.threads,
        "dlbench_s": statistics.median(rounds["dlbench"]),
        "idiomatic_s": statistics.median(rounds["idiomatic"]),
        "ratio": statistics.median(ratios),
        "rounds": rounds,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--input-shape", default="3,32,32")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(args)))
        return 0
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(args.threads),
        "TF_NUM_INTRAOP_THREADS": str(args.threads),
        "TF_NUM_INTEROP_THREADS": "1",
        "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen={'true' if args.threads > 1 else 'false'} "
        f"intra_op_parallelism_threads={args.threads}",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    results = []
    print(f"{'framework':<11} {'dlbench ms':>11} {'idiomatic ms':>13} {'ratio':>7}")
    for fw in args.frameworks.split(","):
        cmd = [sys.executable, __file__, "--worker", fw, *(argv or sys.argv[1:])]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            print(f"{fw:<11} failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(line[7:])
        results.append(r)
        print(
            f"{fw:<11} {1e3 * r['dlbench_s']:>11.2f} {1e3 * r['idiomatic_s']:>13.2f} "
            f"{r['ratio']:>7.3f}"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0 if results else 1


if __name__ == "__main__":
    raise SystemExit(main())
