"""Shortcut audit: can the classes be told apart by how the images were made rather than by what they show, and do a
model's decisions rest on the head or on the background?

- Style: each file's acquisition style (images.STYLE_FEATURES: size, bands, intensity statistics, no anatomy), per
  class; a classifier that sees only these (the style baseline), out-of-fold on the training split, against always
  guessing the largest class. The intensity features are not pure acquisition (a large bright tumour moves them a
  little); size, aspect and bands are.
- Grad-CAM background share: the share of a heatmap's energy outside the head (images.head_mask).
- External sets: each one's style beside the training split's, per class.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from .images import STYLE_FEATURES, grey, head_mask
from .intervals import bootstrap_intervals

FOLDS = 5
# The verdict's rule, stated once: flagged when the better style classifier's out-of-fold accuracy has a 95 %
# interval whose low end is above the majority-class rate plus CHANCE_MARGIN.
CHANCE_MARGIN = 0.05
RULE = (f"flagged when the 95 % interval of the better style classifier's out-of-fold accuracy starts more than "
        f"{CHANCE_MARGIN:.2f} above the majority-class rate (always guessing the largest class)")
TOP_FEATURES = 3  # named in the verdict
GEOMETRY = ("width", "height", "aspect", "bands")  # how the file was made: no lesion moves them
STYLE_MODELS = {"random_forest": "random forest", "logistic_regression": "logistic regression"}
# A feature's importance is how far it goes alone. A random forest's impurity importances and permutation
# importances were tried on a planted size shortcut: they ranked noisy intensity features above a size that told a
# class apart perfectly (impurity favours many-valued features; redundant width/height/aspect split the credit).
IMPORTANCE = "out-of-fold accuracy of a depth-4 decision tree on that feature alone (same folds)"
BACKGROUND_FLAG = 0.5  # a class whose mean Grad-CAM energy outside the head is above this share is flagged
GRADCAM_PER_CLASS = 40  # images per class whose Grad-CAM is measured (seeded choice): keeps it fast
GRADCAM_BATCH = 20  # images per Grad-CAM pass
SHIFT_RANGE = (5, 95)  # an external median outside the training class's percentiles 5..95 is a shift


def style_frame(style: pd.DataFrame, labels: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    """The style features with each image's class name as the first column."""
    frame = style[list(STYLE_FEATURES)].reset_index(drop=True)
    frame.insert(0, "class", [class_names[i] for i in labels])
    return frame


def style_medians(frame: pd.DataFrame, class_names: list[str]) -> pd.DataFrame:
    """Per class (rows, in class order, absent classes left out): the number of images and each feature's median."""
    groups = frame.groupby("class")
    medians = groups[list(STYLE_FEATURES)].median()
    medians.insert(0, "images", groups.size())
    return medians.reindex([name for name in class_names if name in medians.index]).rename_axis("class")


def _classifiers(seed: int) -> dict:
    return {"random_forest": make_pipeline(StandardScaler(), RandomForestClassifier(100, random_state=seed, n_jobs=-1)),
            "logistic_regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))}


def style_baseline(frame: pd.DataFrame, class_names: list[str], seed: int = 0, folds: int = FOLDS) -> dict:
    """Random forest and logistic regression on the standardised style features, out-of-fold (stratified, seeded):
    accuracy and macro-F1 with 95 % bootstrap intervals against the majority-class rate; the random forest on the
    GEOMETRY features only (what no lesion moves); the features ranked by IMPORTANCE; and the verdict."""
    labels = np.array([class_names.index(name) for name in frame["class"]])
    counts = np.bincount(labels, minlength=len(class_names))
    present = [i for i, count in enumerate(counts) if count]
    folds = min(folds, int(counts[present].min()) if present else 0)
    result = {"images": len(labels), "folds": folds, "features": list(STYLE_FEATURES),
              "majority_class": class_names[int(counts.argmax())],
              "majority_rate": float(counts.max() / max(len(labels), 1)), "rule": RULE, "importance": IMPORTANCE,
              "models": {}, "geometry": None, "importances": []}
    if len(present) < 2 or folds < 2:
        result["verdict"] = {"flagged": False, "model": None, "sentence": (
            "The style baseline was not run: it needs two classes with at least two training images each.")}
        return result
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)

    def predict(classifier, columns: list[str]) -> np.ndarray:
        return cross_val_predict(classifier, frame[columns].to_numpy(np.float64), labels, cv=splitter)

    def scores(classifier, columns: list[str]) -> dict:
        intervals = bootstrap_intervals(labels, predict(classifier, columns), class_names, seed=seed, labels=present)
        return {"accuracy": intervals["accuracy"], "macro_f1": intervals["macro_f1"]}

    result["models"] = {name: scores(model, list(STYLE_FEATURES)) for name, model in _classifiers(seed).items()}
    result["geometry"] = {"features": list(GEOMETRY), **scores(_classifiers(seed)["random_forest"], list(GEOMETRY))}
    alone = {name: float(np.mean(predict(DecisionTreeClassifier(max_depth=4, min_samples_leaf=5, random_state=seed),
                                         [name]) == labels)) for name in STYLE_FEATURES}
    ranked = sorted(alone, key=lambda name: -alone[name])  # stable: ties keep the features' order
    result["importances"] = [{"feature": name, "importance": alone[name]} for name in ranked]
    result["verdict"] = verdict(result)
    return result


def verdict(baseline: dict) -> dict:
    """Whether the style baseline is clearly above chance (RULE), in one sentence."""
    best = max(baseline["models"], key=lambda name: baseline["models"][name]["accuracy"]["value"])
    accuracy, chance = baseline["models"][best]["accuracy"], baseline["majority_rate"]
    flagged = accuracy["low"] > chance + CHANCE_MARGIN
    numbers = (f"{accuracy['value']:.3f} out-of-fold accuracy ({STYLE_MODELS[best]}, 95 % interval "
               f"{accuracy['low']:.3f}–{accuracy['high']:.3f}) vs chance {chance:.3f} (always "
               f"{baseline['majority_class']})")
    if flagged:
        top = [entry["feature"] for entry in baseline["importances"][:TOP_FEATURES]]
        sentence = f"The classes are separable by acquisition style alone: {numbers}, carried by {', '.join(top)}."
        geometry = baseline["geometry"]["accuracy"]
        sentence += (f" Image size and bands alone, which no lesion moves, reach {geometry['value']:.3f} "
                     f"({geometry['low']:.3f}–{geometry['high']:.3f})"
                     + ("." if set(top) & set(GEOMETRY) else "; the intensity statistics on top move with a large "
                        "bright lesion too, so part of their lead may be the tumour itself."))
    else:
        sentence = (f"The classes are not clearly separable by acquisition style alone: {numbers}; the interval does "
                    f"not start more than {CHANCE_MARGIN:.2f} above chance.")
    return {"flagged": bool(flagged), "model": best, "sentence": sentence}


def style_audit(frame: pd.DataFrame, class_names: list[str], seed: int = 0) -> dict:
    """The per-class medians table and the style baseline of one split's style frame (`style_frame`)."""
    return {"medians": style_medians(frame, class_names), "baseline": style_baseline(frame, class_names, seed)}


def background_share(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """The share of a heatmap's energy (H×W, ≥ 0) outside the head mask (H×W, bool or 0/1); 0 for an empty heatmap."""
    heatmap = np.asarray(heatmap, np.float64)
    total = heatmap.sum()
    return float((heatmap * (1 - np.asarray(mask, np.float64))).sum() / total) if total > 0 else 0.0


def measured_background(metrics: dict) -> dict | None:
    """A model's Grad-CAM background share from its metrics JSON (`gradcam_background`'s result); None when the
    model was evaluated without it."""
    return (metrics.get("shortcuts") or {}).get("background")


def gradcam_background(model, pixels, labels: np.ndarray, class_names: list[str],
                       per_class: int = GRADCAM_PER_CLASS, seed: int = 0) -> dict:
    """Per true class, the mean Grad-CAM background share (of the predicted class's heatmap) over up to `per_class`
    images (seeded choice) of `pixels` (model-size images, an array or pixels.Rows); classes above BACKGROUND_FLAG
    are flagged."""
    from .gradcam import gradcams

    rng = np.random.default_rng(seed)
    result = {"threshold": BACKGROUND_FLAG, "images_per_class": per_class, "explained": "predicted class",
              "per_class": {}, "flagged": []}
    for label, name in enumerate(class_names):
        pool = np.flatnonzero(np.asarray(labels) == label)
        if not len(pool):
            continue
        chosen = np.sort(rng.choice(pool, min(per_class, len(pool)), replace=False))
        images = np.stack([np.asarray(pixels[int(index)]) for index in chosen])
        shares = []
        for start in range(0, len(images), GRADCAM_BATCH):
            batch = images[start:start + GRADCAM_BATCH]
            heatmaps, _ = gradcams(model, batch)
            shares += [background_share(heatmap, head_mask(grey(image))) for heatmap, image in zip(heatmaps, batch)]
        mean = float(np.mean(shares))
        result["per_class"][name] = {"images": len(shares), "mean": mean, "flagged": mean > BACKGROUND_FLAG}
        if mean > BACKGROUND_FLAG:
            result["flagged"].append(name)
    return result


def style_shift(training: pd.DataFrame, external: pd.DataFrame, class_names: list[str]) -> dict:
    """An external set's style against the training split's, per class it holds (both `style_frame`s): each
    feature's medians and the training class's SHIFT_RANGE percentiles; a shift where the external median falls
    outside them."""
    low, high = SHIFT_RANGE
    classes, shifts = {}, []
    for name in [n for n in class_names if n in set(external["class"])]:
        reference, other = training[training["class"] == name], external[external["class"] == name]
        classes[name] = {"images": len(other), "training_images": len(reference), "features": {}}
        if reference.empty:
            continue
        for feature in STYLE_FEATURES:
            ends = np.percentile(reference[feature], [low, high])
            median = float(other[feature].median())
            classes[name]["features"][feature] = {"training": float(reference[feature].median()), "external": median,
                                                  "training_low": float(ends[0]), "training_high": float(ends[1])}
            if not ends[0] <= median <= ends[1]:
                shifts.append({"class": name, "feature": feature, "training": float(reference[feature].median()),
                               "external": median})
    if shifts:
        listed = "; ".join(f"{s['class']} {s['feature']} {s['external']:.3g} vs {s['training']:.3g}"
                           for s in shifts[:6])
        sentence = (f"Its style differs from the training split's: {len(shifts)} class/feature medians fall outside "
                    f"the training class's {low}–{high} % range ({listed}{'; …' if len(shifts) > 6 else ''}), so a "
                    "model's score here mixes the tumour with a change of acquisition.")
    else:
        sentence = (f"Its style matches the training split's: every class's median of every feature lies within the "
                    f"training class's {low}–{high} % range.")
    return {"classes": classes, "shifts": shifts, "sentence": sentence}
