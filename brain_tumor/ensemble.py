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


def greedy_rounds(probabilities: dict[str, np.ndarray], labels: np.ndarray, rounds: int = 20) -> list[dict]:
    """Greedy forward selection with replacement on validation macro-F1, round by round: start from the best single
    model, add the member (again, possibly) that helps most, stop when none helps. Each round: the members it starts
    from (name → count), every model's score if added, and the one added (None: none helps, the search stopped)."""
    classes = next(iter(probabilities.values())).shape[1]
    counts: dict[str, int] = {}
    total = np.zeros_like(next(iter(probabilities.values())))
    best, trace = -1.0, []
    for _ in range(rounds):
        scores = {name: macro_f1(labels, (total + p) / (sum(counts.values()) + 1), classes)
                  for name, p in probabilities.items()}
        name = max(scores, key=scores.get)  # ties: the first in order
        added = name if scores[name] > best else None
        trace.append({"members": dict(counts), "scores": scores, "added": added})
        if added is None:
            break
        best = scores[name]
        counts[name] = counts.get(name, 0) + 1
        total += probabilities[name]
    return trace


def _weights(counts: dict[str, int]) -> dict[str, float]:
    n = sum(counts.values())
    return {name: count / n for name, count in sorted(counts.items(), key=lambda item: -item[1])}


def _after(round_: dict, name: str | None) -> dict[str, int]:
    counts = dict(round_["members"])
    if name is not None:
        counts[name] = counts.get(name, 0) + 1
    return counts


def select_members(probabilities: dict[str, np.ndarray], labels: np.ndarray, rounds: int = 20) -> dict[str, float]:
    """The greedy search's result (greedy_rounds): member → weight (counts / total), heaviest first."""
    last = greedy_rounds(probabilities, labels, rounds)[-1]
    return _weights(_after(last, last["added"]))


def _best_mix(searches: dict[str, list[dict]]) -> dict | None:
    """The highest-scoring mix of two or more distinct models that either search tried (kept or not)."""
    tried = [(score, _weights(_after(round_, name)), tta == "mirror") for tta, trace in searches.items()
             for round_ in trace for name, score in round_["scores"].items() if len(_after(round_, name)) > 1]
    if not tried:
        return None
    score, members, tta = max(tried, key=lambda t: t[0])
    return {"members": members, "tta": tta, "val_macro_f1": score}


def choose(plain: dict[str, np.ndarray], mirrored: dict[str, np.ndarray], labels: np.ndarray) -> dict:
    """The ensemble step's outcome on validation, as it records it: each candidate's macro-F1 alone (and averaged
    over its mirror image), both greedy searches round by round, the best single model, the best mix either search
    tried, the chosen members and weights (mirror images when they score higher), and the decision: "built" when the
    chosen vote has two or more members, else "no_gain"."""
    classes = next(iter(plain.values())).shape[1]
    probabilities = {"plain": plain, "mirror": mirrored}
    searches = {kind: greedy_rounds(p, labels) for kind, p in probabilities.items()}
    weights = {kind: _weights(_after(trace[-1], trace[-1]["added"])) for kind, trace in searches.items()}
    scores = {kind: macro_f1(labels, blend(probabilities[kind], weights[kind]), classes) for kind in searches}
    tta = scores["mirror"] > scores["plain"]
    kind = "mirror" if tta else "plain"
    candidates = [{"model": name, "val_macro_f1": macro_f1(labels, plain[name], classes),
                   "val_macro_f1_mirror": macro_f1(labels, mirrored[name], classes)} for name in plain]
    single = max(candidates, key=lambda c: c["val_macro_f1"])  # ties: the first in order
    return {"decision": "built" if len(weights[kind]) > 1 else "no_gain", "metric": "val_macro_f1",
            "val_images": int(len(labels)), "candidates": candidates,
            "best_single": {"model": single["model"], "val_macro_f1": single["val_macro_f1"]},
            "best_mix": _best_mix(searches), "chosen": {"members": weights[kind], "tta": tta,
                                                        "val_macro_f1": scores[kind]},
            "searches": searches}


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
