"""A soft-vote ensemble of trained models: members and weights chosen on validation by greedy forward selection
with replacement (Caruana et al., 2004), optionally averaging each member over the image and its mirror image
(test-time augmentation); saved as one Keras model that takes raw pixels like every other model."""

from __future__ import annotations

import keras
import numpy as np
from sklearn.metrics import f1_score


@keras.saving.register_keras_serializable(package="brain_tumor")
class HorizontalFlip(keras.layers.Layer):
    """The mirror image (left-right), at prediction as in training."""

    def call(self, images):
        return keras.ops.flip(images, axis=2)


@keras.saving.register_keras_serializable(package="brain_tumor")
class WeightedAverage(keras.layers.Layer):
    """Σ weight_i · input_i, for fixed weights that sum to 1."""

    def __init__(self, weights_: list[float], **kwargs):
        super().__init__(**kwargs)
        self.weights_ = [float(w) for w in weights_]

    def call(self, inputs):
        return sum(w * x for w, x in zip(self.weights_, inputs))

    def get_config(self):
        return {**super().get_config(), "weights_": self.weights_}


def macro_f1(labels: np.ndarray, probabilities: np.ndarray, classes: int) -> float:
    return float(f1_score(labels, probabilities.argmax(axis=1), labels=list(range(classes)), average="macro",
                          zero_division=0))


def select_members(probabilities: dict[str, np.ndarray], labels: np.ndarray, rounds: int = 20) -> dict[str, float]:
    """Greedy forward selection with replacement on validation macro-F1: start from the best single model, add the
    member (again, possibly) that helps most, stop when none helps. Returns member → weight (counts / total)."""
    classes = next(iter(probabilities.values())).shape[1]
    counts: dict[str, int] = {}
    total = np.zeros_like(next(iter(probabilities.values())))
    best = -1.0
    for _ in range(rounds):
        scores = {name: macro_f1(labels, (total + p) / (sum(counts.values()) + 1), classes)
                  for name, p in probabilities.items()}
        name = max(scores, key=scores.get)  # ties: the first in order
        if scores[name] <= best:
            break
        best = scores[name]
        counts[name] = counts.get(name, 0) + 1
        total += probabilities[name]
    n = sum(counts.values())
    return {name: count / n for name, count in sorted(counts.items(), key=lambda item: -item[1])}


def blend(probabilities: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    return sum(w * probabilities[name] for name, w in weights.items())


def build_ensemble(members: dict, weights: dict[str, float], tta: bool, image_size: int):
    """One model: raw pixels in, each member's probabilities (over the image and its mirror when `tta`) weighted and
    summed. Members are ordered by weight, heaviest first (Grad-CAM explains that one)."""
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    flipped = HorizontalFlip(name="mirror")(inputs) if tta else None
    outputs = []
    for name in weights:
        member = members[name]
        outputs.append(member(inputs))
        if tta:
            outputs.append(member(flipped))
    shares = [w / (2 if tta else 1) for w in weights.values() for _ in range(2 if tta else 1)]
    probabilities = WeightedAverage(shares, name="probabilities")(outputs) if len(outputs) > 1 else outputs[0]
    return keras.Model(inputs, probabilities, name="ensemble")
