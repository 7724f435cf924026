"""Evaluation metrics equal scikit-learn's on known predictions; error analysis and the overfitting check."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

from brain_tumor.evaluation import evaluate_predictions, overfitting_check

NAMES = ["glioma_tumor", "meningioma_tumor", "no_tumor", "pituitary_tumor"]


def one_hot(predictions, k=4):
    return np.eye(k)[predictions]


def test_metrics_equal_sklearns():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 200)
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 4, 200))
    metrics = evaluate_predictions(y_true, one_hot(y_pred), NAMES)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert metrics["macro_precision"] == pytest.approx(precision_score(y_true, y_pred, average="macro"))
    assert metrics["macro_recall"] == pytest.approx(recall_score(y_true, y_pred, average="macro"))
    assert metrics["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert metrics["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted"))
    assert metrics["confusion_matrix"] == confusion_matrix(y_true, y_pred).tolist()
    assert metrics["per_class"]["no_tumor"]["recall"] == pytest.approx(
        recall_score(y_true, y_pred, labels=[2], average=None)[0])
    assert np.allclose(np.sum(metrics["confusion_matrix_normalised"], axis=1), 1.0, atol=1e-3)


def test_error_analysis_by_hand():
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 3])
    y_pred = np.array([0, 0, 1, 2, 1, 1, 2, 0])
    errors = evaluate_predictions(y_true, one_hot(y_pred), NAMES)["errors"]
    assert errors["glioma_tumor"] == {
        "count": 4, "correct": 2, "confused_with": {"meningioma_tumor": 1, "no_tumor": 1},
        "text": "glioma_tumor: 4 samples, 2 correct, 1 confused with meningioma_tumor, 1 confused with no_tumor"}
    assert errors["pituitary_tumor"]["confused_with"] == {"glioma_tumor": 1}
    assert errors["meningioma_tumor"]["text"] == "meningioma_tumor: 2 samples, 2 correct"


def test_a_class_absent_from_the_set_does_not_break_metrics():
    metrics = evaluate_predictions(np.array([0, 1]), one_hot(np.array([0, 1])), NAMES)
    assert metrics["confusion_matrix_normalised"][3] == [0, 0, 0, 0]
    assert metrics["errors"]["no_tumor"]["count"] == 0


def test_overfitting_check():
    assert overfitting_check(0.99, 0.80) == pytest.approx(
        {"train_accuracy": 0.99, "val_accuracy": 0.80, "gap": 0.19, "verdict": "overfitting"})
    assert overfitting_check(0.90, 0.88)["verdict"] == "no clear overfitting"
