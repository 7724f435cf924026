"""Training: balanced class weights, a per-epoch history, and real learning on a learnable synthetic set."""

import numpy as np
import pytest
from sklearn.utils.class_weight import compute_class_weight

from brain_tumor.class_balance import balanced_class_weights
from brain_tumor.data import find_layout, scan
from brain_tumor.errors import UserError
from brain_tumor.evaluation import predict_probabilities
from brain_tumor.models import build_model
from brain_tumor.training import TrainConfig, best_epoch, fit, resolve_augment_place


def test_balanced_class_weights_match_the_formula_and_sklearn():
    labels = np.repeat([0, 1, 2, 3], [826, 822, 395, 827])  # the real Training counts
    weights = balanced_class_weights(labels, 4)
    assert weights == pytest.approx({c: len(labels) / (4 * n) for c, n in enumerate([826, 822, 395, 827])})
    assert list(weights.values()) == pytest.approx(compute_class_weight("balanced", classes=np.arange(4), y=labels))
    assert [round(w, 3) for w in weights.values()] == [0.869, 0.873, 1.816, 0.868]  # the seed's measured values


def test_augment_place_is_validated():
    assert resolve_augment_place("tfdata") == "tfdata"
    assert resolve_augment_place("auto") == "tfdata"  # no GPU here
    with pytest.raises(UserError, match="augmentation place"):
        resolve_augment_place("gpu0")


@pytest.fixture(scope="module")
def learnable_split(learnable_data):
    scanned = scan(find_layout(learnable_data), 32, progress=False)
    train = np.array(scanned.sources) == "train"
    return (scanned.pixels[train], scanned.labels[train]), (scanned.pixels[~train], scanned.labels[~train])


@pytest.mark.parametrize("augment_on", ["none", "model"])
def test_training_lowers_the_loss_and_beats_chance(learnable_split, augment_on):
    (x, y), (vx, vy) = learnable_split
    model = build_model("cnn_b", 32, 4)
    config = TrainConfig(epochs=6, learning_rate=1e-3, batch_size=16, seed=0, augment_on=augment_on)
    history = fit(model, (x, y), (vx, vy), 4, config, balanced_class_weights(y, 4), verbose=0)
    assert history[-1]["loss"] < history[0]["loss"] * 0.7
    accuracy = np.mean(predict_probabilities(model, vx).argmax(1) == vy)
    assert accuracy > 0.5, accuracy  # chance is 0.25
    assert set(history[0]) == {"epoch", "accuracy", "loss", "val_accuracy", "val_loss", "learning_rate",
                               "epoch_seconds"}
    assert all(row["epoch_seconds"] > 0 and row["learning_rate"] == pytest.approx(1e-3) for row in history[:3])
    assert not any("augmentation" in layer.name for layer in model.layers)  # the kept model has no augmentation


def test_early_stopping_restores_the_best_epoch_and_lr_decays(learnable_split):
    (x, y), (vx, vy) = learnable_split
    # shuffled validation labels: validation loss cannot improve for long, so both callbacks fire
    noise = np.random.default_rng(0).permutation(vy)
    model = build_model("cnn_b", 32, 4)
    config = TrainConfig(epochs=15, learning_rate=1e-3, batch_size=32, seed=0, augment_on="none")
    history = fit(model, (x, y), (vx, noise), 4, config, verbose=0)
    best = best_epoch(history)
    assert len(history) == best["epoch"] + config.early_stopping_patience  # stopped after patience epochs
    restored = model.evaluate(vx.astype(np.float32), np.eye(4)[noise], verbose=0, return_dict=True)["loss"]
    assert restored == pytest.approx(best["val_loss"], rel=1e-3)
    lrs = [row["learning_rate"] for row in history]
    assert min(lrs) == pytest.approx(5e-4)  # ReduceLROnPlateau halved it after 3 flat epochs
