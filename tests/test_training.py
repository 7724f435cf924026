"""Training: balanced class weights, a per-epoch history, and real learning on a learnable synthetic set."""

import numpy as np
import pytest
from sklearn.utils.class_weight import compute_class_weight

from brain_tumor.class_balance import balanced_class_weights
from brain_tumor.data import find_layout, scan
from brain_tumor.errors import UserError
from brain_tumor.evaluation import predict_probabilities
from dataclasses import replace

from brain_tumor.models import build_model
from brain_tumor.recipe import SEED, Recipe
from brain_tumor.training import TrainConfig, best_epoch, fit, learning_rate, resolve_augment_place

FAST = Recipe(optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="constant", warmup_epochs=0, augment="seed",
              label_smoothing=0.0, epochs=6, patience=5, monitor="val_loss", batch_size=16, crop=False,
              normalize=False)


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
    config = TrainConfig(FAST, 16, 0, augment_on)
    history = fit(model, (x, y), (vx, vy), 4, config, balanced_class_weights(y, 4), verbose=0)
    assert history[-1]["loss"] < history[0]["loss"] * 0.7
    accuracy = np.mean(predict_probabilities(model, vx).argmax(1) == vy)
    assert accuracy > 0.5, accuracy  # chance is 0.25
    assert set(history[0]) == {"epoch", "accuracy", "loss", "macro_f1", "val_accuracy", "val_loss", "val_macro_f1",
                               "learning_rate", "epoch_seconds", "stage"}
    assert all(row["epoch_seconds"] > 0 and row["learning_rate"] == pytest.approx(1e-3) for row in history[:3])
    assert not any("augmentation" in layer.name for layer in model.layers)  # the kept model has no augmentation


def test_early_stopping_restores_the_best_epoch_and_lr_decays(learnable_split):
    (x, y), (vx, vy) = learnable_split
    # shuffled validation labels: validation loss cannot improve for long, so both callbacks fire
    noise = np.random.default_rng(0).permutation(vy)
    model = build_model("cnn_b", 32, 4)
    config = TrainConfig(replace(SEED, lr=1e-3, epochs=15, augment="none"), 32, 0, "none")
    history = fit(model, (x, y), (vx, noise), 4, config, verbose=0)
    best = best_epoch(history)
    assert len(history) == best["epoch"] + SEED.patience  # stopped after patience epochs
    restored = model.evaluate(vx.astype(np.float32), np.eye(4)[noise], verbose=0, return_dict=True)["loss"]
    assert restored == pytest.approx(best["val_loss"], rel=1e-3)
    lrs = [row["learning_rate"] for row in history]
    assert min(lrs) == pytest.approx(5e-4)  # ReduceLROnPlateau halved it after 3 flat epochs


def test_early_stopping_watches_the_recipes_monitor(learnable_split):
    (x, y), (vx, vy) = learnable_split
    recipe = replace(FAST, monitor="val_macro_f1", patience=2, epochs=8, augment="none")
    model = build_model("cnn_b", 32, 4)
    history = fit(model, (x, y), (vx, vy), 4, TrainConfig(recipe, 32, 0, "none"), verbose=0)
    best = best_epoch(history, "val_macro_f1")
    assert best["val_macro_f1"] == max(row["val_macro_f1"] for row in history)
    assert len(history) == 8 or len(history) == best["epoch"] + 2
    predictions = predict_probabilities(model, vx).argmax(1)
    from sklearn.metrics import f1_score

    restored = f1_score(vy, predictions, average="macro")
    assert restored == pytest.approx(best["val_macro_f1"], abs=0.02)  # the best epoch's weights are the kept ones


def test_the_cosine_schedule_warms_up_then_decays_to_zero():
    recipe = replace(FAST, schedule="cosine", warmup_epochs=2, epochs=10, lr=1e-3)
    schedule = learning_rate(recipe, steps_per_epoch=5)
    rates = [float(schedule(step)) for step in (0, 5, 10, 30, 49, 50)]
    assert rates[0] == pytest.approx(0.0) and rates[1] == pytest.approx(5e-4) and rates[2] == pytest.approx(1e-3)
    assert rates[2] > rates[3] > rates[4] > 0 and rates[5] == pytest.approx(0.0, abs=1e-9)
    assert learning_rate(replace(recipe, schedule="constant"), 5) == pytest.approx(1e-3)


def test_label_smoothing_and_adamw_reach_the_compiled_model(learnable_split):
    (x, y), (vx, vy) = learnable_split
    recipe = replace(FAST, optimizer="adamw", weight_decay=0.05, label_smoothing=0.2, epochs=1, augment="none")
    model = build_model("cnn_b", 32, 4)
    fit(model, (x[:32], y[:32]), (vx[:16], vy[:16]), 4, TrainConfig(recipe, 16, 0, "none"), verbose=0)
    assert type(model.optimizer).__name__ == "AdamW" and model.optimizer.weight_decay == pytest.approx(0.05)
    assert model.loss.label_smoothing == pytest.approx(0.2)
