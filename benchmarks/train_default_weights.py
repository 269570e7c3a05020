"""Reproduce the shipped weights of ``digits_cnn`` (the default model of ``dlbench run``).

Trains the CNN with dlbench's own training code (``dlbench.train``, the PyTorch backend by
default) on the digits *train* split only (5% of it held out, stratified, for the validation
curve), then writes ``dlbench/zoo/weights/digits_cnn.{json,npz}`` and checks the file on every
installed inference backend: test accuracy and identical predictions.

    .venv/bin/python benchmarks/train_default_weights.py            # train with torch, write, verify
    .venv/bin/python benchmarks/train_default_weights.py --verify   # only verify the shipped file

The same run from the command line (weights land in ``weights/digits_cnn-torch.{json,npz}``)::

    dlbench train --model digits_cnn --dataset digits --backends torch --epochs 30 \\
        --batch-size 16 --optimizer sgd --lr 0.05 --momentum 0.9 --weight-decay 5e-4 \\
        --schedule cosine --val-fraction 0.05 --seed 0 --threads 1 --save-weights weights
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from dlbench.train import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "dlbench" / "zoo" / "weights" / "digits_cnn"

CONFIG = TrainConfig(
    optimizer="sgd",
    lr=0.05,
    momentum=0.9,
    weight_decay=5e-4,
    schedule="cosine",
    epochs=30,
    batch_size=16,
    val_fraction=0.05,
    seed=0,
    intra_op_threads=1,
)


def verify() -> int:
    """Test accuracy of the shipped weights on every installed backend; same predictions."""
    import dlbench
    from dlbench import datasets, zoo

    spec = zoo.get("digits_cnn")
    assert spec.metadata["pretrained"], "digits_cnn did not load the shipped weights"
    ds = datasets.load("digits", split="test")
    x, y = ds.arrays()
    preds = {}
    for name in dlbench.available_backends():
        try:
            logits = dlbench.get_backend(name).build(spec).predict(x)
        except Exception as exc:  # a backend that cannot run here is reported, not fatal
            print(f"{name:12s} failed: {exc}")
            continue
        preds[name] = logits.argmax(1)
        print(f"{name:12s} test accuracy {100 * (preds[name] == y).mean():.2f}%")
    ref = next(iter(preds.values()))
    same = all(np.array_equal(ref, p) for p in preds.values())
    print(f"identical predictions on {', '.join(preds)}: {same}")
    ok = same and all((p == y).mean() > 0.95 for p in preds.values())
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="torch", help="framework that trains (default torch)")
    ap.add_argument("--verify", action="store_true", help="only verify the shipped weights")
    args = ap.parse_args(argv)
    if args.verify:
        return verify()
    with tempfile.TemporaryDirectory() as tmp:
        doc = train(
            CONFIG,
            model="digits_cnn",
            dataset="digits",
            backends=[args.backend],
            save_weights=tmp,
            on_event=lambda kind, p: (
                kind == "epoch"
                and print(
                    f"epoch {p['epoch'] + 1}: train acc {100 * p['row']['train_accuracy']:.1f}%, "
                    f"val {100 * p['row']['val_accuracy']:.1f}%, "
                    f"test {100 * p['row']['test_accuracy']:.1f}%",
                    flush=True,
                )
            ),
        )
        info = doc["backends"][args.backend]
        if info["status"] != "ok":
            print(f"training failed: {info['error']}", file=sys.stderr)
            return 1
        run = info["runs"][0]
        print(f"final: {run['final']}; {run['diagnosis']['text']}")
        TARGET.parent.mkdir(parents=True, exist_ok=True)
        for ext in (".json", ".npz"):
            shutil.copyfile(Path(tmp) / f"digits_cnn-{args.backend}{ext}", TARGET.with_suffix(ext))
    print(f"wrote {TARGET}.json/.npz")
    return verify()


if __name__ == "__main__":
    sys.exit(main())
