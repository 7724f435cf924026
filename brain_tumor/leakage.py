"""Leakage audit: test images with a near-duplicate (by 64-bit perceptual hash) among the images models were developed
on (train + val), the same audit for the seed notebook's ungrouped random split, and metrics on twins vs novel images.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from .errors import UserError
from .split import DEFAULT_MAX_DISTANCE, PAIRS_PER_BLOCK, hash_bits


def nearest(query_hashes: list[str], reference_hashes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per query hash: the smallest Hamming distance to any reference hash, and that reference's index."""
    if not reference_hashes:
        raise UserError("There are no reference images to compare against.")
    queries, references = hash_bits(query_hashes), hash_bits(reference_hashes)
    block = max(1, PAIRS_PER_BLOCK // len(references))
    distances = np.empty(len(queries), dtype=np.int64)
    indices = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), block):
        bits = np.bitwise_count(queries[start:start + block, None] ^ references[None, :])
        indices[start:start + block] = bits.argmin(axis=1)
        distances[start:start + block] = bits.min(axis=1)
    return distances, indices


def _pair(test: pd.Series, match: pd.Series, distance: int) -> dict:
    return {"test_file": str(test["file"]), "test_class": str(test["class"]), "match_file": str(match["file"]),
            "match_split": str(match["split"]), "match_class": str(match["class"]), "distance": int(distance)}


def audit(manifest: pd.DataFrame, max_distance: int = DEFAULT_MAX_DISTANCE, closest: int = 8, seed: int = 0) -> dict:
    """Test images whose nearest train/val image is within `max_distance` bits (twins), with the pairs; the
    `closest` nearest pairs whatever their distance; and the twin count an ungrouped seeded random split of all
    images into the same number of test images would have had (`random_split`)."""
    test = manifest[manifest["split"] == "test"].reset_index(drop=True)
    developed = manifest[manifest["split"].isin(["train", "val"])].reset_index(drop=True)
    result = {"max_distance": max_distance, "test_images": len(test), "twins": 0, "twin_fraction": 0.0,
              "is_twin": [], "nearest_distances": [], "pairs": [], "closest_pairs": [],
              "random_split": {"twins": 0, "twin_fraction": 0.0, "test_images": len(test)}}
    if test.empty:
        return result
    if developed.empty:
        raise UserError("The manifest has test images but no train or validation images to audit them against.")
    distances, indices = nearest(list(test["phash"]), list(developed["phash"]))
    is_twin = distances <= max_distance
    order = sorted(range(len(test)), key=lambda i: (int(distances[i]), str(test["file"][i])))
    pairs = [_pair(test.iloc[i], developed.iloc[indices[i]], distances[i]) for i in order]

    phashes = list(manifest["phash"])
    shuffled = np.random.default_rng(seed).permutation(len(phashes))
    random_test, rest = shuffled[:len(test)], shuffled[len(test):]
    random_distances, _ = nearest([phashes[i] for i in random_test], [phashes[i] for i in rest])
    random_twins = int(np.sum(random_distances <= max_distance))

    result.update({
        "twins": int(is_twin.sum()),
        "twin_fraction": float(is_twin.mean()),
        "is_twin": [bool(t) for t in is_twin],
        "nearest_distances": [int(d) for d in distances],
        "pairs": [pair for pair, i in zip(pairs, order) if is_twin[i]],
        "closest_pairs": pairs[:closest],
        "random_split": {"twins": random_twins, "twin_fraction": random_twins / len(test), "test_images": len(test)},
    })
    return result


def twin_metrics(y_true: np.ndarray, probabilities: np.ndarray, is_twin: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy and macro F1 on the test images with a twin in train/val and on the others (None when empty)."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(probabilities).argmax(axis=1)
    is_twin = np.asarray(is_twin, dtype=bool)
    labels = list(range(len(class_names)))
    metrics = {}
    for name, subset in (("twin", is_twin), ("novel", ~is_twin)):
        if not subset.any():
            metrics[name] = None
            continue
        metrics[name] = {
            "samples": int(subset.sum()),
            "accuracy": float(accuracy_score(y_true[subset], y_pred[subset])),
            "macro_f1": float(f1_score(y_true[subset], y_pred[subset], labels=labels, average="macro",
                                       zero_division=0)),
        }
    return metrics
