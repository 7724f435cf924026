"""Non-deep baselines on downsampled grey pixels, to show what the CNNs add over a simple classifier of the same images.

Features: the mean of the RGB channels (the MRI slices are grey; the channels only repeat it), box-averaged to
size × size and scaled to [0, 1]. Models: k-nearest neighbours and a class-balanced logistic regression, both on
standardised features.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from .pixels import batches

BASELINES = {
    "knn": "k-nearest neighbours (k=5) on standardised grey pixels",
    "logreg": "logistic regression (L2, C=0.01, balanced class weights) on standardised grey pixels",
}


def pixel_features(pixels: np.ndarray, size: int = 32) -> np.ndarray:
    """(N, H, W, 3) uint8 → (N, size*size) float32 in [0, 1]: channel mean, box-averaged to size × size."""
    n, height, width = pixels.shape[:3]
    grey = pixels.mean(axis=3, dtype=np.float32)
    if height % size == 0 and width % size == 0:  # box averaging is then a mean over whole blocks
        small = grey.reshape(n, size, height // size, size, width // size).mean(axis=(2, 4))
    else:
        small = np.stack([np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BOX))
                          for image in grey]) if n else np.zeros((0, size, size), np.float32)
    return (small.reshape(n, size * size) / 255.0).astype(np.float32)


def make_baseline(name: str, seed: int = 0) -> Pipeline:
    """An unfitted sklearn Pipeline for one of BASELINES."""
    if name == "knn":
        return make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=5))
    if name == "logreg":
        # C=0.01: as accurate as C=0.1-1 on the phantoms, in fewer lbfgs steps; lbfgs is deterministic (seed unused)
        model = LogisticRegression(C=0.01, class_weight="balanced", max_iter=5000, random_state=seed)
        return make_pipeline(StandardScaler(), model)
    raise ValueError(f"Unknown baseline {name!r}; choose from {', '.join(BASELINES)}")


def fit_and_predict(name: str, train_pixels: np.ndarray, train_labels: np.ndarray,
                    split_pixels: dict[str, np.ndarray], seed: int = 0, size: int = 32) -> dict[str, np.ndarray]:
    """Fit on the training images; class probabilities for each split. Column j is label j, for labels 0 up to the
    largest training label (a label missing from training gets a zero column, so argmax stays a label index)."""
    def features(pixels) -> np.ndarray:  # a batch at a time (pixels may be on disk); float64, so that the
        parts = [pixel_features(batch, size) for batch in batches(pixels, 256)]  # probabilities sum to 1 in float64
        return np.concatenate(parts).astype(np.float64) if parts else np.zeros((0, size * size))

    model = make_baseline(name, seed).fit(features(train_pixels), train_labels)
    width = int(np.max(train_labels)) + 1
    probabilities = {}
    for split, pixels in split_pixels.items():
        out = np.zeros((len(pixels), width))
        if len(pixels):
            out[:, model.classes_] = model.predict_proba(features(pixels))
        probabilities[split] = out
    return probabilities
