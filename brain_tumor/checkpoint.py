"""Resuming a killed training: after every epoch the model and optimizer weights, the early-stopping and
learning-rate callbacks' state and the history so far are saved in a folder (each file written to a temporary name
and renamed, so a kill never leaves a half-written checkpoint, and a hard-linked snapshot of the folder stays that
epoch's: steps/registry.py uploads one while training goes on); the same training started again continues at the
next epoch. A checkpoint is resumed only by the training it belongs to: its key names the arguments, code and data.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from .files import replacing

STATE = "state.json"
WEIGHTS = "weights.weights.h5"  # model and optimizer variables
BEST = "best.npz"  # EarlyStopping's best weights so far


def _replace(path: Path, write) -> None:
    with replacing(path) as partial:
        write(partial)


class Checkpoint(keras.callbacks.Callback):
    """Saves the training state at each epoch's end into `folder`; with a state saved under the same `key`, restores
    it when training begins (put it after the callbacks whose state it restores)."""

    def __init__(self, folder: str | Path, key: str, early_stopping, plateau, log,
                 on_saved: Callable[[Path], None] | None = None):
        super().__init__()
        self.folder, self.key = Path(folder), key
        self.early_stopping, self.plateau, self.log, self.on_saved = early_stopping, plateau, log, on_saved
        self.resumed_from = 0

    def saved_state(self) -> dict | None:
        try:
            state = json.loads((self.folder / STATE).read_text())
        except (OSError, ValueError):
            return None
        return state if state.get("key") == self.key and (self.folder / WEIGHTS).is_file() else None

    def on_train_begin(self, logs=None):
        state = self.saved_state()
        if state is None:
            return
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(self.folder / WEIGHTS)
        # what keras.callbacks.BackupAndRestore sets; a finished stage runs no more epochs
        self.model._initial_epoch = self.params["epochs"] if state.get("finished") else state["epoch"]
        self.resumed_from = state["epoch"]
        self.log.epochs = state["history"]
        stopping = state["early_stopping"]
        self.early_stopping.wait, self.early_stopping.best = stopping["wait"], stopping["best"]
        self.early_stopping.best_epoch = stopping["best_epoch"]
        if (self.folder / BEST).is_file():
            saved = np.load(self.folder / BEST)
            self.early_stopping.best_weights = [saved[f"w{i}"] for i in range(len(saved.files))]
        if self.plateau is not None:
            self.plateau.wait, self.plateau.best = state["plateau"]["wait"], state["plateau"]["best"]
            self.plateau.cooldown_counter = state["plateau"]["cooldown_counter"]
        print(f"Resuming after epoch {state['epoch']}: epochs 1-{state['epoch']} restored from {self.folder}"
              + (" (this stage had finished)" if state.get("finished") else ""))

    def on_epoch_end(self, epoch, logs=None):
        self.save(epoch + 1, finished=False)

    def on_train_end(self, logs=None):
        state = self.saved_state()
        if state is not None:
            state["finished"] = True
            _replace(self.folder / STATE, lambda path: path.write_text(json.dumps(state)))
            if self.on_saved is not None:
                self.on_saved(self.folder)

    def save(self, epoch: int, finished: bool) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        _replace(self.folder / WEIGHTS, lambda path: self.model.save_weights(path))
        best = self.early_stopping.best_weights
        if best is not None:
            _replace(self.folder / BEST, lambda path: np.savez(path, **{f"w{i}": w for i, w in enumerate(best)}))
        state = {"key": self.key, "epoch": epoch, "finished": finished, "history": self.log.epochs,
                 "early_stopping": {"wait": self.early_stopping.wait, "best": float(self.early_stopping.best),
                                    "best_epoch": self.early_stopping.best_epoch},
                 "plateau": None if self.plateau is None else {
                     "wait": self.plateau.wait, "best": float(self.plateau.best),
                     "cooldown_counter": self.plateau.cooldown_counter}}
        _replace(self.folder / STATE, lambda path: path.write_text(json.dumps(state)))
        if self.on_saved is not None:
            self.on_saved(self.folder)
