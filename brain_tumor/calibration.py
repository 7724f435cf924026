"""Calibration of predicted probabilities: a reliability table (confidence vs accuracy per bin) and its expected
calibration error (ECE)."""

from __future__ import annotations

import numpy as np

from .errors import UserError


def reliability(probabilities: np.ndarray, y_true: np.ndarray, n_bins: int = 10) -> dict:
    """Per equal-width confidence bin over [0, 1]: count, mean confidence and accuracy; plus the ECE.

    Confidence is a row's maximum probability, a row is correct when its argmax is its label. Bin b holds confidences
    in (lower, upper]; the first bin also holds 0. ECE = sum over bins of count / N * |accuracy - confidence|.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    y_true = np.asarray(y_true)
    if probabilities.ndim != 2 or len(probabilities) == 0 or probabilities.shape[1] == 0:
        raise UserError(f"Calibration needs a non-empty (samples, classes) array of probabilities, got shape "
                        f"{probabilities.shape}.")
    if len(y_true) != len(probabilities):
        raise UserError(f"Calibration needs one label per row of probabilities, got {len(y_true)} labels for "
                        f"{len(probabilities)} rows.")
    if n_bins < 1:
        raise UserError(f"Calibration needs at least one bin, got {n_bins}.")
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        members = index == b
        count = int(members.sum())
        mean_confidence = float(confidence[members].mean()) if count else None
        accuracy = float(correct[members].mean()) if count else None
        if count:
            ece += count / len(confidence) * abs(accuracy - mean_confidence)
        bins.append({"lower": float(edges[b]), "upper": float(edges[b + 1]), "count": count,
                     "confidence": mean_confidence, "accuracy": accuracy})
    return {"ece": float(ece), "n_bins": n_bins, "samples": len(confidence), "bins": bins}


def expected_calibration_error(probabilities: np.ndarray, y_true: np.ndarray, n_bins: int = 10) -> float:
    """The ECE of `reliability`."""
    return reliability(probabilities, y_true, n_bins)["ece"]
