"""Fitting one model the seed's way: Adam, categorical cross-entropy, balanced class weights, early stopping and
learning-rate decay on the validation loss, with a per-epoch history."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from .augment import build_augmentation
from .errors import UserError
from .inputs import make_dataset
from .recipe import AUGMENT_PLACES


@dataclass
class TrainConfig:
    """One model's training settings. The first five are pipeline parameters (`pipelines/config.py` holds their
    defaults); the rest are the seed's fixed recipe."""

    epochs: int
    learning_rate: float
    batch_size: int
    seed: int
    augment_on: str  # "model": inside the model (GPU); "tfdata": in the input pipeline (CPU); "none"; "auto"
    early_stopping_patience: int = 5
    lr_factor: float = 0.5
    lr_patience: int = 3


def resolve_augment_place(place: str) -> str:
    if place not in AUGMENT_PLACES:
        raise UserError(f"Unknown augmentation place '{place}'; choose from {', '.join(AUGMENT_PLACES)}.")
    if place == "auto":
        return "model" if tf.config.list_physical_devices("GPU") else "tfdata"
    return place


class EpochLog(keras.callbacks.Callback):
    """Per epoch: the metrics Keras logs, the learning rate the epoch ran with, and its wall time."""

    def __init__(self, on_epoch: Callable[[dict], None] | None = None):
        super().__init__()
        self.epochs: list[dict] = []
        self.on_epoch = on_epoch

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}}
        row.update(learning_rate=self._learning_rate, epoch_seconds=time.perf_counter() - self._start)
        self.epochs.append(row)
        if self.on_epoch is not None:
            self.on_epoch(row)


def fit(model, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], num_classes: int,
        config: TrainConfig, class_weight: dict[int, float] | None = None, verbose: int | None = None,
        on_epoch: Callable[[dict], None] | None = None) -> list[dict]:
    """Train `model` in place; on return it holds the weights of its best validation-loss epoch.
    Returns the per-epoch history; `on_epoch` (e.g. a tracker's reporter) is called with each epoch's row."""
    keras.utils.set_random_seed(config.seed)
    place = resolve_augment_place(config.augment_on)
    augmentation = build_augmentation(config.seed) if place != "none" else None
    train_ds = make_dataset(*train, num_classes, config.batch_size, shuffle=True, seed=config.seed,
                            augmentation=augmentation if place == "tfdata" else None)
    val_ds = make_dataset(*val, num_classes, config.batch_size)
    # With augmentation on the GPU, a wrapper model trains; `model` shares its weights and stays free of it.
    trainer = keras.Sequential([augmentation, model], name=f"{model.name}_train") if place == "model" else model
    trainer.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="categorical_crossentropy",
                    metrics=["accuracy"])
    log = EpochLog(on_epoch)
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.early_stopping_patience,
                                      restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=config.lr_factor, patience=config.lr_patience),
        log,
    ]
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2  # progress bars on a terminal, one line per epoch in logs
    trainer.fit(train_ds, validation_data=val_ds, epochs=config.epochs, class_weight=class_weight, shuffle=False,
                callbacks=callbacks, verbose=verbose)
    return log.epochs


def best_epoch(history: list[dict]) -> dict:
    """The epoch whose weights the model keeps (lowest validation loss, as EarlyStopping restores)."""
    return min(history, key=lambda row: row["val_loss"])
