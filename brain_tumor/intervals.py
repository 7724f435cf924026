"""Percentile-bootstrap confidence intervals for accuracy, macro F1 and per-class recall, and for the difference
between two models on the same images (paired: both are scored on the same resamples).

Each resample draws n images with replacement; its confusion counts come from one np.bincount over all resamples.
Metrics follow evaluation.evaluate_predictions (sklearn, labels = all classes, zero_division=0), except that a
class's recall is undefined (None / nan) where the class has no images. Interval ends are order statistics of the
resampled values (np.quantile method="inverted_cdf", the empirical counterpart of scipy's ppf), so they are always
attainable metric values: 7 of 10 right gives the 2.5 % and 97.5 % quantiles of Binomial(10, 0.7) / 10.
"""

from __future__ import annotations

import numpy as np

METRICS = ("accuracy", "macro_f1")


def _confusions(y_true: np.ndarray, y_pred: np.ndarray, k: int, index: np.ndarray | None) -> np.ndarray:
    """Confusion counts (rows true, columns predicted): (k, k) on the full set, or (n_boot, k, k), one per row of
    `index`."""
    codes = np.asarray(y_true, np.int64) * k + np.asarray(y_pred, np.int64)
    if index is None:
        return np.bincount(codes, minlength=k * k).reshape(k, k)
    n_boot = len(index)
    offsets = np.arange(n_boot, dtype=np.int64)[:, None] * (k * k)  # one block of k*k bins per resample
    return np.bincount((codes[index] + offsets).ravel(), minlength=n_boot * k * k).reshape(n_boot, k, k)


def _metrics(confusion: np.ndarray, labels: list[int] | None = None) -> dict[str, np.ndarray]:
    """Accuracy, macro F1 (over `labels`, default all classes) and per-class recall (nan where a class has no
    images) over the last two axes."""
    tp = np.diagonal(confusion, axis1=-2, axis2=-1).astype(np.float64)
    support, predicted = confusion.sum(axis=-1), confusion.sum(axis=-2)
    n = support.sum(axis=-1)
    # F1 = 2tp / (2tp + fp + fn) = 2tp / (support + predicted); 0 when a class is neither present nor predicted
    f1 = np.divide(2 * tp, support + predicted, out=np.zeros_like(tp), where=support + predicted > 0)
    recall = np.divide(tp, support, out=np.full_like(tp, np.nan), where=support > 0)
    macro = f1[..., labels].mean(axis=-1) if labels is not None else f1.mean(axis=-1)
    return {"accuracy": tp.sum(axis=-1) / n, "macro_f1": macro, "recall": recall}


def _ends(values: np.ndarray, level: float) -> np.ndarray:
    """Low and high percentile ends along axis 0, ignoring nan (resamples where a recall is undefined)."""
    quantiles = [(1 - level) / 2, (1 + level) / 2]
    return np.nanquantile(values, quantiles, axis=0, method="inverted_cdf")


def _interval(value: float, low: float, high: float) -> dict:
    as_json = [None if np.isnan(v) else float(v) for v in (value, low, high)]
    return dict(zip(("value", "low", "high"), as_json))


def _draws(n: int, n_boot: int, seed: int) -> np.ndarray:
    if n == 0:
        raise ValueError("bootstrap needs at least one image")
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def bootstrap_intervals(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str], n_boot: int = 1000,
                        level: float = 0.95, seed: int = 0, labels: list[int] | None = None) -> dict:
    """{"level", "n_boot", "accuracy", "macro_f1", "recall": {class: ...}}, each metric as {"value", "low", "high"}:
    value on the full set, low/high the bootstrap percentiles. A class without images has all three None.
    `labels`: the classes macro F1 averages over (default all; an external set may hold a subset)."""
    k = len(class_names)
    full = _metrics(_confusions(y_true, y_pred, k, None), labels)
    boot = _metrics(_confusions(y_true, y_pred, k, _draws(len(y_true), n_boot, seed)), labels)
    result = {"level": level, "n_boot": n_boot}
    for name in METRICS:
        result[name] = _interval(full[name], *_ends(boot[name], level))
    present = ~np.isnan(full["recall"])  # an absent class is absent from every resample: nothing to take ends of
    recall_ends = np.full((2, k), np.nan)
    recall_ends[:, present] = _ends(boot["recall"][:, present], level)
    result["recall"] = {name: _interval(full["recall"][i], *recall_ends[:, i]) for i, name in enumerate(class_names)}
    return result


def paired_difference(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, class_names: list[str],
                      metric: str = "macro_f1", n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """metric(a) - metric(b) on the full set, with a percentile interval from resamples shared by both models."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, not {metric!r}")
    k = len(class_names)
    index = _draws(len(y_true), n_boot, seed)

    def score(pred: np.ndarray, draws: np.ndarray | None) -> np.ndarray:
        return _metrics(_confusions(y_true, pred, k, draws))[metric]

    full, boot = score(pred_a, None) - score(pred_b, None), score(pred_a, index) - score(pred_b, index)
    low, high = _ends(boot, level)
    return {"difference": float(full), "low": float(low), "high": float(high), "n_boot": n_boot, "level": level}
