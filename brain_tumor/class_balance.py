"""Balanced class weights (no TensorFlow needed, so the light pipeline steps stay light)."""

from __future__ import annotations

import numpy as np
from sklearn.utils.class_weight import compute_class_weight


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """scikit-learn's 'balanced' weights, n / (k · n_c), over the classes present in `labels` (the training split)."""
    present = np.unique(labels)
    weights = compute_class_weight("balanced", classes=present, y=labels)
    return {int(c): float(w) for c, w in zip(present, weights) if c < num_classes}
