"""Metrics for a model's predictions on a labelled set, as plain JSON-able dicts."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (accuracy_score, classification_report, confusion_matrix, log_loss,
                             precision_recall_fscore_support)

from .intervals import bootstrap_intervals
from .pixels import batches

OVERFITTING_GAP = 0.10  # train accuracy above validation accuracy by more than this: overfitting


def predict_probabilities(model, pixels, batch_size: int = 64, mirror: bool = False) -> np.ndarray:
    """Class probabilities for an image array (or Rows of a pixel file), a batch at a time; `mirror`: for the
    left-right mirror images."""
    out = [np.asarray(model.predict_on_batch((batch[:, :, ::-1] if mirror else batch).astype(np.float32)))
           for batch in batches(pixels, batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)


def error_analysis(confusion: np.ndarray, class_names: list[str]) -> dict:
    """Per true class: how many, how many right, and where the others went."""
    analysis = {}
    for i, name in enumerate(class_names):
        row = confusion[i]
        confused = {class_names[j]: int(row[j]) for j in range(len(class_names)) if j != i and row[j]}
        text = f"{name}: {int(row.sum())} samples, {int(row[i])} correct"
        text += "".join(f", {n} confused with {other}" for other, n in confused.items())
        analysis[name] = {"count": int(row.sum()), "correct": int(row[i]), "confused_with": confused, "text": text}
    return analysis


def log_loss_of(y_true: np.ndarray, probabilities: np.ndarray, labels: list[int]) -> float:
    """Cross-entropy of the predicted probabilities (no label smoothing: comparable across recipes and models),
    with certainties floored at 1e-7 so that one confident mistake does not make it infinite."""
    floored = np.clip(probabilities, 1e-7, 1.0)
    return float(log_loss(y_true, floored / floored.sum(axis=1, keepdims=True), labels=labels))


def evaluate_predictions(y_true: np.ndarray, probabilities: np.ndarray, class_names: list[str],
                         labels: list[int] | None = None) -> dict:
    """Accuracy, macro and weighted precision/recall/F1 (averaged over `labels`, default every class), the
    per-class report, confusion matrices (absolute and row-normalised), the per-class error analysis and the 95 %
    bootstrap intervals of accuracy, macro F1 and per-class recall."""
    y_pred = probabilities.argmax(axis=1)
    every = list(range(len(class_names)))
    labels = every if labels is None else labels
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average="macro",
                                                               zero_division=0)
    w_precision, w_recall, w_f1, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                                     average="weighted", zero_division=0)
    confusion = confusion_matrix(y_true, y_pred, labels=every)
    row_sums = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, row_sums, out=np.zeros(confusion.shape), where=row_sums > 0)
    return {
        "samples": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "log_loss": log_loss_of(y_true, probabilities, every),
        "macro_precision": float(precision),
        "macro_recall": float(recall),
        "macro_f1": float(f1),
        "weighted_precision": float(w_precision),
        "weighted_recall": float(w_recall),
        "weighted_f1": float(w_f1),
        "per_class": classification_report(y_true, y_pred, labels=every, target_names=class_names,
                                           output_dict=True, zero_division=0),
        "confusion_matrix": confusion.tolist(),
        "confusion_matrix_normalised": normalised.round(4).tolist(),
        "errors": error_analysis(confusion, class_names),
        "intervals": bootstrap_intervals(y_true, y_pred, class_names, labels=labels),
    }


def overfitting_check(train_accuracy: float, val_accuracy: float) -> dict:
    gap = train_accuracy - val_accuracy
    verdict = "overfitting" if gap > OVERFITTING_GAP else "no clear overfitting"
    return {"train_accuracy": train_accuracy, "val_accuracy": val_accuracy, "gap": gap, "verdict": verdict}
