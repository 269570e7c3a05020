"""Training benchmark: the same training run in PyTorch, TensorFlow and JAX.

Framework-free core (this package imports no framework): :class:`TrainConfig`, the learning-rate
schedules, the seeded batch order, the k-fold splitter, the learning curves and their diagnosis,
and the orchestration (one spawned worker per framework). Each framework's training step lives in
``dlbench.backends.<framework>.training`` (same function names in each).

Example:
    >>> from dlbench.train import TrainConfig, train
    >>> doc = train(TrainConfig(epochs=3), backends=["torch", "jax"])  # doctest: +SKIP
    >>> doc["agreement"]["backends"]["jax"]["max_abs_loss_diff_first_steps"]  # doctest: +SKIP
"""

from dlbench.train.augment import augment_batch, dropout_masks, normalize
from dlbench.train.config import OPTIMIZERS, SCHEDULES, TrainConfig
from dlbench.train.data import batch_indices, epoch_orders, holdout_indices, kfold_indices
from dlbench.train.diagnose import Diagnosis, LearningCurve, diagnose
from dlbench.train.runner import train
from dlbench.train.schedule import lr_schedule
from dlbench.train.trainable import check_trainable, export_spec, logits_spec

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "Diagnosis",
    "LearningCurve",
    "TrainConfig",
    "augment_batch",
    "batch_indices",
    "check_trainable",
    "diagnose",
    "dropout_masks",
    "epoch_orders",
    "export_spec",
    "holdout_indices",
    "kfold_indices",
    "logits_spec",
    "lr_schedule",
    "normalize",
    "train",
]
