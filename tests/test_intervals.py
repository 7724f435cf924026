"""Bootstrap confidence intervals: exact on hand-computable cases, consistent with evaluate_predictions, paired."""

import json

import numpy as np
import pytest
from scipy.stats import binom

from brain_tumor.evaluation import evaluate_predictions
from brain_tumor.intervals import bootstrap_intervals, paired_difference

NAMES = ["glioma", "meningioma", "none", "pituitary"]


def noisy(n: int, accuracy: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Balanced labels over NAMES and predictions right on exactly round(accuracy * n) images (the others shifted)."""
    rng = np.random.default_rng(seed)
    y_true = rng.permutation(np.arange(n) % len(NAMES))
    y_pred = y_true.copy()
    wrong = rng.choice(n, n - round(accuracy * n), replace=False)
    y_pred[wrong] = (y_true[wrong] + rng.integers(1, len(NAMES), len(wrong))) % len(NAMES)
    return y_true, y_pred


def intervals_of(result: dict) -> list[dict]:
    return [result["accuracy"], result["macro_f1"], *result["recall"].values()]


def test_all_right_gives_one_everywhere():
    y_true, _ = noisy(200, 1.0)
    result = bootstrap_intervals(y_true, y_true, NAMES)
    assert [(i["value"], i["low"], i["high"]) for i in intervals_of(result)] == [(1.0, 1.0, 1.0)] * 6
    assert result["level"] == 0.95 and result["n_boot"] == 1000


def test_accuracy_interval_is_the_binomial_quantiles():
    # resampling 10 images of which 7 are right: the number right is exactly Binomial(10, 0.7)
    y_true = np.array([0, 1] * 5)
    y_pred = y_true.copy()
    y_pred[:3] = 1 - y_pred[:3]
    result = bootstrap_intervals(y_true, y_pred, ["a", "b"], n_boot=50000, seed=1)
    expected = binom.ppf([(1 - 0.95) / 2, (1 + 0.95) / 2], 10, 0.7) / 10
    assert list(expected) == [0.4, 1.0]
    assert [result["accuracy"][end] for end in ("low", "high")] == list(expected)
    assert result["accuracy"]["value"] == 0.7


def test_values_equal_evaluate_predictions():
    rng = np.random.default_rng(5)
    y_true, y_pred = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    result = bootstrap_intervals(y_true, y_pred, NAMES)
    metrics = evaluate_predictions(y_true, np.eye(4)[y_pred], NAMES)
    assert result["accuracy"]["value"] == pytest.approx(metrics["accuracy"], abs=1e-12)
    assert result["macro_f1"]["value"] == pytest.approx(metrics["macro_f1"], abs=1e-12)
    for name in NAMES:
        assert result["recall"][name]["value"] == pytest.approx(metrics["per_class"][name]["recall"], abs=1e-12)


def test_interval_contains_value_and_narrows_with_more_images():
    widths = []
    for n in (100, 2000):
        result = bootstrap_intervals(*noisy(n, 0.8), NAMES)
        for interval in intervals_of(result):
            assert interval["low"] <= interval["value"] <= interval["high"]
        assert result["accuracy"]["value"] == 0.8
        widths.append(result["accuracy"]["high"] - result["accuracy"]["low"])
    assert widths[1] < widths[0] / 3  # about 1 / sqrt(20)


def test_seeded():
    y_true, y_pred = noisy(300, 0.7)
    first = bootstrap_intervals(y_true, y_pred, NAMES, seed=3)
    assert bootstrap_intervals(y_true, y_pred, NAMES, seed=3) == first
    assert bootstrap_intervals(y_true, y_pred, NAMES, seed=4) != first


def test_paired_difference_of_identical_predictions_is_zero():
    y_true, y_pred = noisy(300, 0.7)
    for metric in ("accuracy", "macro_f1"):
        result = paired_difference(y_true, y_pred, y_pred.copy(), NAMES, metric=metric)
        assert (result["difference"], result["low"], result["high"]) == (0.0, 0.0, 0.0)


def test_paired_difference_when_a_is_right_on_a_superset_of_b():
    y_true, pred_a = noisy(200, 0.8)
    pred_b = pred_a.copy()
    fixed = np.flatnonzero(pred_a == y_true)[:3]  # B is wrong on 3 of A's right answers, right nowhere else
    pred_b[fixed] = (y_true[fixed] + 1) % len(NAMES)
    result = paired_difference(y_true, pred_a, pred_b, NAMES, metric="accuracy")
    assert result["difference"] == pytest.approx(3 / 200)
    # unpaired resamples would put the low end well below 0 (a difference of 1.5 points against a 2.8-point spread)
    assert 0 <= result["low"] <= result["difference"] <= result["high"]


def test_paired_resamples_are_shared():
    # B always wrong scores 0 on every resample, so the difference's interval is A's own accuracy interval
    y_true, pred_a = noisy(150, 0.6)
    pred_b = (y_true + 1) % len(NAMES)
    own = bootstrap_intervals(y_true, pred_a, NAMES, n_boot=500, seed=9)["accuracy"]
    paired = paired_difference(y_true, pred_a, pred_b, NAMES, metric="accuracy", n_boot=500, seed=9)
    assert (paired["difference"], paired["low"], paired["high"]) == (own["value"], own["low"], own["high"])
    with pytest.raises(ValueError, match="metric"):
        paired_difference(y_true, pred_a, pred_b, NAMES, metric="recall")


def test_class_absent_from_labels_has_null_recall():
    y_true = np.array([0, 1, 3] * 20)
    y_pred = y_true.copy()
    y_pred[:6] = 2  # the absent class is still predicted: its precision counts, its recall is undefined
    result = json.loads(json.dumps(bootstrap_intervals(y_true, y_pred, NAMES, n_boot=200)))
    assert result["recall"]["none"] == {"value": None, "low": None, "high": None}
    assert all(result["recall"][name]["low"] is not None for name in ("glioma", "meningioma", "pituitary"))
    assert result["macro_f1"]["value"] == pytest.approx(evaluate_predictions(y_true, np.eye(4)[y_pred],
                                                                             NAMES)["macro_f1"])


def test_rare_class_ignores_resamples_without_it():
    # one image of "none", predicted right: its recall is 1 wherever it is drawn and undefined (skipped) elsewhere
    y_true = np.array([0, 1, 3] * 6 + [2])
    result = bootstrap_intervals(y_true, y_true, NAMES, n_boot=500)
    assert result["recall"]["none"] == {"value": 1.0, "low": 1.0, "high": 1.0}
    assert result["macro_f1"]["low"] == 0.75  # resamples without "none" score 0 on it, as sklearn does
