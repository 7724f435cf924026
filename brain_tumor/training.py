"""Fitting one model: an optimizer, a learning-rate schedule, augmentation, label smoothing, balanced class weights
and early stopping on a validation metric (the recipe, `recipe.py`), with a per-epoch history."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from .augment import build_augmentation
from .checkpoint import Checkpoint
from .errors import UserError
from .inputs import make_dataset
from .recipe import AUGMENT_PLACES, PLATEAU_FACTOR, PLATEAU_PATIENCE, Recipe


@dataclass
class TrainConfig:
    """One model's training: its recipe, the batch size it resolves to, the seed, where augmentation runs."""

    recipe: Recipe
    batch_size: int
    seed: int
    augment_on: str  # "model": inside the model (GPU); "tfdata": in the input pipeline (CPU); "none"; "auto"


def resolve_augment_place(place: str) -> str:
    if place not in AUGMENT_PLACES:
        raise UserError(f"Unknown augmentation place '{place}'; choose from {', '.join(AUGMENT_PLACES)}.")
    if place == "auto":
        return "model" if tf.config.list_physical_devices("GPU") else "tfdata"
    return place


class EpochLog(keras.callbacks.Callback):
    """Per epoch: the metrics Keras logs, the learning rate the epoch ran with, and its wall time."""

    def __init__(self, on_epoch: Callable[[dict], None] | None = None, stage: str = "train"):
        super().__init__()
        self.epochs: list[dict] = []
        self.on_epoch, self.stage = on_epoch, stage

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}}
        row.update(learning_rate=self._learning_rate, epoch_seconds=time.perf_counter() - self._start,
                   stage=self.stage)
        self.epochs.append(row)
        if self.on_epoch is not None:
            self.on_epoch(row)


def learning_rate(recipe: Recipe, steps_per_epoch: int, scale: float = 1.0):
    """The optimizer's learning rate: a constant, or linear warm-up then cosine decay to 0 (per step)."""
    lr = recipe.lr * scale
    if recipe.schedule != "cosine":
        return lr
    total = max(1, recipe.epochs * steps_per_epoch)
    warmup = min(recipe.warmup_epochs * steps_per_epoch, total - 1)
    return keras.optimizers.schedules.CosineDecay(0.0 if warmup else lr, decay_steps=total - warmup,
                                                  warmup_target=lr if warmup else None, warmup_steps=warmup)


def make_optimizer(recipe: Recipe, steps_per_epoch: int, scale: float = 1.0):
    rate = learning_rate(recipe, steps_per_epoch, scale)
    if recipe.optimizer == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=recipe.weight_decay)
    return keras.optimizers.Adam(rate)


def monitor_mode(monitor: str) -> str:
    return "min" if monitor.endswith("loss") else "max"


def fit(model, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], num_classes: int,
        config: TrainConfig, class_weight: dict[int, float] | None = None, verbose: int | None = None,
        on_epoch: Callable[[dict], None] | None = None, epochs: int | None = None, lr_scale: float = 1.0,
        stage: str = "train", checkpoint: Path | None = None, checkpoint_key: str = "",
        on_checkpoint: Callable[[Path], None] | None = None) -> list[dict]:
    """Train `model` in place; on return it holds the weights of its best epoch by the recipe's monitor.
    Returns the per-epoch history; `on_epoch` (e.g. a tracker's reporter) is called with each epoch's row.
    `epochs`, `lr_scale` and `stage` serve a second stage (fine-tuning) with its own budget and rate.
    `checkpoint`: a folder where the training state is saved after every epoch, and resumed from when it holds a
    state saved under `checkpoint_key` (`checkpoint.py`); `on_checkpoint` is called after each save."""
    recipe = config.recipe
    epochs = epochs or recipe.epochs
    keras.utils.set_random_seed(config.seed)
    place = resolve_augment_place(config.augment_on) if recipe.augment != "none" else "none"
    augmentation = build_augmentation(recipe.augment, config.seed) if place != "none" else None
    train_ds = make_dataset(*train, num_classes, config.batch_size, shuffle=True, seed=config.seed,
                            augmentation=augmentation if place == "tfdata" else None)
    val_ds = make_dataset(*val, num_classes, config.batch_size)
    steps = math.ceil(len(train[1]) / config.batch_size)
    # With augmentation on the GPU, a wrapper model trains; `model` shares its weights and stays free of it.
    trainer = keras.Sequential([augmentation, model], name=f"{model.name}_train") if place == "model" else model
    trainer.compile(optimizer=make_optimizer(recipe, steps, lr_scale),
                    loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
                    metrics=["accuracy", keras.metrics.F1Score(average="macro", name="macro_f1")])
    log = EpochLog(on_epoch, stage)
    stopping = keras.callbacks.EarlyStopping(monitor=recipe.monitor, mode=monitor_mode(recipe.monitor),
                                             patience=recipe.patience, restore_best_weights=True)
    plateau = keras.callbacks.ReduceLROnPlateau(monitor=recipe.monitor, mode=monitor_mode(recipe.monitor),
                                                factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE
                                                ) if recipe.schedule == "plateau" else None
    callbacks = [c for c in (stopping, plateau, log) if c is not None]
    if checkpoint is not None:  # last: it restores the state of the callbacks before it
        callbacks.append(Checkpoint(checkpoint, checkpoint_key, stopping, plateau, log, on_checkpoint))
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2  # progress bars on a terminal, one line per epoch in logs
    trainer.fit(train_ds, validation_data=val_ds, epochs=epochs, class_weight=class_weight, shuffle=False,
                callbacks=callbacks, verbose=verbose)
    return log.epochs


def best_epoch(history: list[dict], monitor: str = "val_loss") -> dict:
    """The epoch whose weights the model keeps (the best by `monitor`, as EarlyStopping restores; the first of
    equals, as Keras keeps the first)."""
    sign = 1 if monitor_mode(monitor) == "min" else -1
    return min(history, key=lambda row: sign * row[monitor])
