"""Reproduce the shipped weights of ``fcos_mobilenet_v2`` (MobileNetV2 x0.5 + FPN, 4 classes):
trained on the generated ``shapes`` *train* split, evaluated on shapes *val*.

The detector is the zoo's ModelSpec built as an ``fx.GraphModule`` by the torch backend
(:func:`dlbench.backends.torch.backend.build_module`) and trained with a plain PyTorch loop and
the FCOS recipe: a location is positive for a ground-truth box when it lies inside the box and
within 1.5 strides of its centre, on the level whose regression range holds the box's largest
distance (stride 8: up to 64 px, 16: 64..128, 32: beyond; the smallest box wins a tie); sigmoid
focal loss (alpha 0.25, gamma 2) on the class logits, GIoU on the decoded boxes weighted by the
centerness target, BCE on the centerness logit. AdamW, linear warm-up then cosine decay; random
horizontal flips and a random input scale (256..320, boxes scaled with it) per batch.

The trained parameters (batch-norm running statistics included) go back into the spec under its
own parameter names and are written as ``dlbench/model/zoo/weights/fcos_mobilenet_v2_shapes
.{json,npz}``: framework-neutral weights that every backend loads
(``zoo.get("fcos_mobilenet_v2", num_classes=4)`` uses them by default). The val AP printed at the
end is the NumPy reference pipeline's (float64 decode + NMS, ``coco_evaluate``).

    nice -n 5 .venv/bin/python benchmarks/train_shapes_detector.py              # train, write, verify
    nice -n 5 .venv/bin/python benchmarks/train_shapes_detector.py --verify     # only verify

Only torch is needed to train; the weights are verified on every installed backend.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dlbench.model.zoo.detection import (  # noqa: E402
    PRETRAINED_FPN,
    PRETRAINED_WIDTH,
    SHAPES_CLASSES,
    WEIGHTS,
)

STRIDES = (8, 16, 32)
RANGES = ((0.0, 64.0), (64.0, 128.0), (128.0, float("inf")))
RADIUS = 1.5


def load_split(split: str, seed: int, num_train: int, size: int):
    """The split as uint8 NCHW images and per-image xyxy boxes/labels in letterboxed pixels."""
    from dlbench import datasets
    from dlbench.detection import letterbox_boxes

    ds = datasets.load(
        "shapes", split=split, seed=seed, num_train_images=num_train, image_size=size
    )
    xs, boxes, labels = [], [], []
    for start in range(0, len(ds), 64):
        b = ds.get_batch(np.arange(start, min(len(ds), start + 64)))
        xs.append(np.rint(b.inputs * 255).astype(np.uint8))
        for t in b.targets:
            xywh = np.asarray(t["boxes"], np.float64).reshape(-1, 4)
            xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
            boxes.append(letterbox_boxes(xyxy, t).astype(np.float32))
            labels.append(np.asarray(t["labels"], np.int64))
    return ds, np.concatenate(xs), boxes, labels


def targets(points, strides, lo, hi, boxes, labels, num_classes):
    """FCOS targets of one image: class one-hot (L, C), ltrb in pixels (L, 4), positive mask."""
    import torch

    n = points.shape[0]
    cls_t = torch.zeros(n, num_classes)
    if boxes.shape[0] == 0:
        return cls_t, torch.zeros(n, 4), torch.zeros(n, dtype=torch.bool)
    px, py = points[:, 0:1], points[:, 1:2]
    x1, y1, x2, y2 = (boxes[:, k][None, :] for k in range(4))
    ltrb = torch.stack([px - x1, py - y1, x2 - px, y2 - py], dim=2)  # (L, G, 4)
    inside = ltrb.min(dim=2).values > 0
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    r = strides[:, None] * RADIUS
    near = ((px - cx).abs() < r) & ((py - cy).abs() < r)
    m = ltrb.max(dim=2).values
    in_range = (m >= lo[:, None]) & (m <= hi[:, None])
    ok = inside & near & in_range
    area = ((x2 - x1) * (y2 - y1)).expand(n, -1).clone()
    area[~ok] = float("inf")
    best_area, best = area.min(dim=1)
    pos = torch.isfinite(best_area)
    idx = torch.arange(n)
    cls_t[pos, labels[best[pos]]] = 1.0
    return cls_t, ltrb[idx, best], pos


def giou_loss(pred, target):
    """1 - GIoU of ltrb distances around the same point (both (P, 4), pixels)."""
    pa = (pred[:, 0] + pred[:, 2]) * (pred[:, 1] + pred[:, 3])
    ta = (target[:, 0] + target[:, 2]) * (target[:, 1] + target[:, 3])
    wi = torch_min(pred[:, 0], target[:, 0]) + torch_min(pred[:, 2], target[:, 2])
    hi = torch_min(pred[:, 1], target[:, 1]) + torch_min(pred[:, 3], target[:, 3])
    inter = wi * hi
    union = pa + ta - inter
    iou = inter / union.clamp(min=1e-6)
    wc = torch_max(pred[:, 0], target[:, 0]) + torch_max(pred[:, 2], target[:, 2])
    hc = torch_max(pred[:, 1], target[:, 1]) + torch_max(pred[:, 3], target[:, 3])
    enclose = (wc * hc).clamp(min=1e-6)
    return 1 - (iou - (enclose - union) / enclose)


def torch_min(a, b):
    import torch

    return torch.minimum(a, b)


def torch_max(a, b):
    import torch

    return torch.maximum(a, b)


def export_params(module, spec) -> dict[str, np.ndarray]:
    """The module's parameters and buffers under the spec's parameter names (canonical layout)."""
    from dlbench.backends.torch.training import _attr_name

    roles = {"mean": "running_mean", "var": "running_var"}
    out = {}
    for rn in spec.resolved():
        layer = getattr(module, _attr_name(rn.name), None)
        for role, pname in rn.param_names.items():
            t = getattr(layer, roles.get(role, role), None)
            if t is None:
                raise RuntimeError(f"{rn.name}.{role} not found in the torch module")
            a = t.detach().cpu().numpy().astype(np.float32)
            want = spec.params[pname].shape
            if a.size != int(np.prod(want)):
                raise RuntimeError(f"{pname}: shape {a.shape} vs spec {want}")
            out[pname] = a.reshape(want)
    return out


def evaluate(spec, ds, backend: str = "numpy", batch: int = 16, threads: int = 1) -> dict:
    """COCO stats of ``spec`` on ``ds`` with ``backend``'s model and the reference post-process."""
    from dlbench.detection import to_coco_results
    from dlbench.metrics.coco import coco_evaluate
    from dlbench.model.backend import get_backend
    from dlbench.model.zoo.detection import decoder_for

    model = get_backend(backend, intra_op_threads=threads).build(spec)
    dec = decoder_for(spec)
    res = []
    for b in ds.batches(batch):
        dets = dec.postprocess(model.predict(b.inputs))
        res.append(to_coco_results(dets, b.targets, ds.label_to_category_id))
    merged = {k: np.concatenate([r[k] for r in res]) for k in res[0]}
    return coco_evaluate(ds.coco_ground_truth(), merged, curves=False)


def train(args) -> int:
    import torch
    import torch.nn.functional as F

    from dlbench import zoo
    from dlbench.backends.torch.backend import build_module
    from dlbench.detection import Decoder

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    size = 320
    t0 = time.perf_counter()
    _, x_all, boxes_all, labels_all = load_split("train", 0, args.num_train, size)
    val_ds = load_val(args.num_train)
    print(f"data: {len(x_all)} train images in {time.perf_counter() - t0:.0f} s", flush=True)

    spec = zoo.get(
        "fcos_mobilenet_v2",
        num_classes=SHAPES_CLASSES,
        input_shape=(3, size, size),
        seed=args.seed,
        width=PRETRAINED_WIDTH,
        fpn_channels=PRETRAINED_FPN,
        pretrained=False,
    )
    for lvl in (3, 4, 5):  # start the ReLU'd box distances at one stride, not at 0
        spec.params[f"head{lvl}.box.bias"][:] = 1.0
    module = build_module(spec).train()
    for p in module.parameters():
        p.requires_grad_(True)
    # the graph's reshapes are built for one input size: one module per scale, same layers
    modules = {size: module}
    for s in (256, 288):
        other = build_module(
            zoo.get(
                "fcos_mobilenet_v2",
                num_classes=SHAPES_CLASSES,
                input_shape=(3, s, s),
                width=PRETRAINED_WIDTH,
                fpn_channels=PRETRAINED_FPN,
                pretrained=False,
            )
        )
        other.train()
        for name, child in module.named_children():
            setattr(other, name, child)
        modules[s] = other
    params = [p for p in module.parameters()]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
    )
    steps_per_epoch = len(x_all) // args.batch_size
    # the schedule's length: --steps, or what fits in --time-budget seconds (measured over the
    # first PROBE steps, then fixed; the metadata records it, so --steps reproduces the run)
    total = args.steps or steps_per_epoch * args.epochs
    warm = 100
    probe, t_train = 20, time.perf_counter()

    def lr_at(step: int) -> float:
        if step < warm:
            return args.lr * (step + 1) / warm
        return 0.5 * args.lr * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    decoders = {s: Decoder("points", s, SHAPES_CLASSES) for s in (256, 288, 320)}
    step, history = 0, []
    epoch = 0
    while step < total:
        module.train()
        order = rng.permutation(len(x_all))
        sums = np.zeros(4)
        te = time.perf_counter()
        done = 0
        for k in range(steps_per_epoch):
            if step >= total:
                break
            if args.time_budget and not args.steps and step == probe:
                per = (time.perf_counter() - t_train) / probe
                left = args.time_budget - (time.perf_counter() - t0)
                total = max(probe + 1, probe + int(left / per))
                print(f"{per:.2f} s/step: schedule of {total} steps", flush=True)
            idx = order[k * args.batch_size : (k + 1) * args.batch_size]
            s = int(rng.choice([256, 288, 320]))
            dec = decoders[s]
            f = s / size
            x = torch.from_numpy(x_all[idx].astype(np.float32) / 255.0)
            if s != size:
                x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
            flips = rng.random(len(idx)) < 0.5
            pts = torch.as_tensor(dec.priors, dtype=torch.float32)
            strd = torch.as_tensor(dec.prior_strides, dtype=torch.float32)
            lo = torch.as_tensor([RANGES[STRIDES.index(int(v))][0] for v in dec.prior_strides])
            hi = torch.as_tensor([RANGES[STRIDES.index(int(v))][1] for v in dec.prior_strides])
            cls_t, reg_t, pos_t = [], [], []
            for j, i in enumerate(idx):
                b = torch.as_tensor(boxes_all[i] * f)
                if flips[j]:
                    b = torch.stack([s - b[:, 2], b[:, 1], s - b[:, 0], b[:, 3]], dim=1)
                c, r, p = targets(pts, strd, lo, hi, b, torch.as_tensor(labels_all[i]), 4)
                cls_t.append(c)
                reg_t.append(r)
                pos_t.append(p)
            if flips.any():
                x[torch.as_tensor(flips)] = x[torch.as_tensor(flips)].flip(-1)
            cls_t, reg_t, pos = torch.stack(cls_t), torch.stack(reg_t), torch.stack(pos_t)
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            out = modules[s](x)
            reg, ctr, logits = out[..., :4], out[..., 4], out[..., 5:]
            npos = max(1.0, float(pos.sum()))
            p = torch.sigmoid(logits)
            ce = F.binary_cross_entropy_with_logits(logits, cls_t, reduction="none")
            pt = p * cls_t + (1 - p) * (1 - cls_t)
            alpha = 0.25 * cls_t + 0.75 * (1 - cls_t)
            loss_cls = (alpha * ce * (1 - pt) ** 2).sum() / npos
            if pos.any():
                pr = reg[pos] * strd[None, :, None].expand_as(reg)[pos]
                tr = reg_t[pos]
                lr_, tb = tr[:, [0, 2]], tr[:, [1, 3]]
                ctr_t = torch.sqrt(
                    (lr_.min(1).values / lr_.max(1).values) * (tb.min(1).values / tb.max(1).values)
                )
                loss_box = (giou_loss(pr, tr) * ctr_t).sum() / ctr_t.sum().clamp(min=1e-6)
                loss_ctr = F.binary_cross_entropy_with_logits(ctr[pos], ctr_t, reduction="sum")
                loss_ctr = loss_ctr / npos
            else:
                loss_box = loss_ctr = out.sum() * 0.0
            loss = loss_cls + loss_box + loss_ctr
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            opt.step()
            step += 1
            done += 1
            sums += [float(v.detach()) for v in (loss, loss_cls, loss_box, loss_ctr)]
        sums /= max(1, done)
        epoch += 1
        row = {
            "epoch": epoch,
            "steps": step,
            "loss": sums[0],
            "cls": sums[1],
            "box": sums[2],
            "ctr": sums[3],
            "seconds": time.perf_counter() - te,
        }
        if epoch % args.eval_every == 0 and step < total:
            module.eval()
            spec.params = export_params(module, spec)
            spec._invalidate()
            row["val_AP"] = evaluate(spec, val_ds, "torch")["AP"]
        history.append(row)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}))
        sys.stdout.flush()
    module.eval()
    spec.params = export_params(module, spec)
    spec._invalidate()
    out = Path(args.out) if args.out else WEIGHTS
    spec.save(out)  # the weights first: an evaluation that fails must not lose them
    stats = evaluate(spec, val_ds, "torch")
    print(f"final val (torch, float32): AP {stats['AP']:.4f}, AP50 {stats['AP50']:.4f}")
    spec.metadata = {
        **spec.metadata,
        "pretrained": True,
        "trained": {
            "framework": "torch",
            "dataset": "shapes",
            "dataset_seed": 0,
            "train_images": int(len(x_all)),
            "script": "benchmarks/train_shapes_detector.py",
            "config": {
                "steps": step,
                "train_images": int(len(x_all)),
                "batch_size": args.batch_size,
                "lr": args.lr,
                "optimizer": "adamw",
                "weight_decay": 1e-4,
                "warmup_steps": warm,
                "schedule": "cosine",
                "scales": [256, 288, 320],
                "hflip": True,
                "seed": args.seed,
            },
            "val_AP": stats["AP"],
            "val_AP50": stats["AP50"],
            "val_backend": "torch",
            "history": history,
            "train_seconds": time.perf_counter() - t0,
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }
    spec.save(out)
    print(f"wrote {out}.json/.npz ({out.with_suffix('.npz').stat().st_size / 1e6:.2f} MB)")
    print("check every backend against the reference with --verify")
    return 0


def load_val(num_train: int = 512, seed: int = 0):
    from dlbench import datasets

    return datasets.load("shapes", split="val", seed=seed)


def verify(num_train: int = 512) -> int:
    """Val AP of the shipped weights on every installed backend, against the NumPy reference."""
    import dlbench
    from dlbench import zoo

    spec = zoo.get("fcos_mobilenet_v2", num_classes=SHAPES_CLASSES)
    assert spec.metadata.get("pretrained"), "fcos_mobilenet_v2 did not load the shipped weights"
    ds = load_val()
    ref = evaluate(spec, ds, "numpy")["AP"]
    print(f"numpy       val AP {ref:.4f}")
    ok = True
    for name in dlbench.available_backends():
        if name == "numpy":
            continue
        try:
            ap = evaluate(spec, ds, name)["AP"]
        except Exception as exc:  # a backend that cannot run here is reported, not fatal
            print(f"{name:12s} failed: {exc}")
            continue
        print(f"{name:12s} val AP {ap:.4f} (diff {ap - ref:+.5f})")
        ok &= abs(ap - ref) <= 1e-3
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--verify", action="store_true", help="only verify the shipped weights")
    ap.add_argument("--epochs", type=int, default=12, help="without --steps/--time-budget")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2.5e-3)
    ap.add_argument("--num-train", type=int, default=1024, help="shapes train images (seed 0)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=2, help="epochs between val checks")
    ap.add_argument("--steps", type=int, help="schedule length in steps (overrides the rest)")
    ap.add_argument(
        "--time-budget", type=float, help="seconds: the schedule is what fits (see --steps)"
    )
    ap.add_argument("--out", help="weights stem (default: the zoo's weights file)")
    args = ap.parse_args(argv)
    if args.verify:
        return verify()
    return train(args)


if __name__ == "__main__":
    sys.exit(main())
