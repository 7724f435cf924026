"""Reliability bins and expected calibration error on cases worked out by hand."""

import numpy as np
import pytest

from brain_tumor.calibration import expected_calibration_error, reliability
from brain_tumor.errors import UserError


def test_ece_matches_a_hand_computed_example():
    probabilities = np.array([
        [0.90, 0.05, 0.05],  # confidence 0.90, predicts 0, label 0: right   -> bin 4 (0.8, 1.0]
        [0.10, 0.85, 0.05],  # confidence 0.85, predicts 1, label 0: wrong   -> bin 4
        [0.30, 0.25, 0.45],  # confidence 0.45, predicts 2, label 2: right   -> bin 2 (0.4, 0.6]
        [0.50, 0.30, 0.20],  # confidence 0.50, predicts 0, label 1: wrong   -> bin 2
        [0.20, 0.70, 0.10],  # confidence 0.70, predicts 1, label 1: right   -> bin 3 (0.6, 0.8]
        [0.38, 0.32, 0.30],  # confidence 0.38, predicts 0, label 0: right   -> bin 1 (0.2, 0.4]
    ])
    y_true = np.array([0, 0, 2, 1, 1, 0])
    # bin 1: 1 row, confidence 0.38,  accuracy 1.0 -> 1/6 * 0.62
    # bin 2: 2 rows, confidence 0.475, accuracy 0.5 -> 2/6 * 0.025
    # bin 3: 1 row, confidence 0.70,  accuracy 1.0 -> 1/6 * 0.30
    # bin 4: 2 rows, confidence 0.875, accuracy 0.5 -> 2/6 * 0.375
    # ECE = (0.62 + 0.05 + 0.30 + 0.75) / 6 = 1.72 / 6
    table = reliability(probabilities, y_true, n_bins=5)
    assert table["ece"] == pytest.approx(1.72 / 6)
    assert expected_calibration_error(probabilities, y_true, n_bins=5) == pytest.approx(1.72 / 6)
    assert table["n_bins"] == 5 and table["samples"] == 6
    assert [b["count"] for b in table["bins"]] == [0, 1, 2, 1, 2]
    assert [b["lower"] for b in table["bins"]] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    assert [b["upper"] for b in table["bins"]] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert table["bins"][0]["confidence"] is None and table["bins"][0]["accuracy"] is None
    assert table["bins"][2]["confidence"] == pytest.approx(0.475)
    assert table["bins"][4]["accuracy"] == pytest.approx(0.5)
    assert all(type(b["count"]) is int for b in table["bins"])
    assert type(table["ece"]) is float


def test_perfectly_calibrated_and_confident_correct_predictions_have_zero_ece():
    # confidence 0.7 on every row and exactly 7 of 10 right
    probabilities = np.tile([0.7, 0.2, 0.1], (10, 1))
    y_true = np.array([0] * 7 + [1] * 3)
    assert expected_calibration_error(probabilities, y_true) == pytest.approx(0.0)
    one_hot = np.eye(3)[[0, 1, 2, 1]]
    assert expected_calibration_error(one_hot, np.array([0, 1, 2, 1])) == 0.0


def test_confident_and_wrong_predictions_have_a_large_ece():
    probabilities = np.tile([0.95, 0.03, 0.02], (8, 1))
    assert expected_calibration_error(probabilities, np.ones(8, int)) == pytest.approx(0.95)
    assert expected_calibration_error(np.eye(3)[[0, 1, 2]], np.array([1, 2, 0])) == pytest.approx(1.0)


def test_bin_counts_sum_to_the_samples_and_a_confidence_of_one_is_in_the_last_bin():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(4), size=200)
    probabilities[:3] = np.eye(4)[[0, 1, 2]]  # confidence exactly 1.0
    table = reliability(probabilities, rng.integers(0, 4, 200), n_bins=10)
    assert sum(b["count"] for b in table["bins"]) == 200
    ones = reliability(np.eye(4)[[0, 1, 2]], np.array([0, 1, 2]), n_bins=10)
    assert [b["count"] for b in ones["bins"]] == [0] * 9 + [3]


def test_empty_input_is_a_user_error():
    with pytest.raises(UserError, match="non-empty"):
        reliability(np.zeros((0, 3)), np.zeros(0, int))
