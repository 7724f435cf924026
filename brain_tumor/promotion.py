"""Whether a run's champion takes the project-wide champion tag from the model that holds it: pure decisions, made
on images neither model trained on (the server lookups that gather them live in steps/promotion.py).

Policies: "always" crowns, "never" registers the new model as a candidate, "if-better" (the default) crowns unless
the new champion is distinguishably worse than the holder in macro-F1: the upper end of the 95 % paired-bootstrap
interval of new − holder lies below 0. A noise-level difference crowns (the newer model, trained on this run's data,
wins ties); too few comparison images, or no comparison at all, keeps the holder.
"""

from __future__ import annotations

import numpy as np

POLICIES = ("if-better", "always", "never")
CHAMPION, CANDIDATE = "champion", "candidate"
MIN_IMAGES = 20  # below this a bootstrap interval of macro-F1 over four classes says little
OFFLINE = {"policy": None, "crown": False, "tag": None, "why": "offline: no model registry"}  # no server: no tags


def comparison_mask(sha256s, splits, holder_train_sha256s) -> np.ndarray:
    """Which images the two models are compared on: this run's validation images (never test: nothing is chosen on
    test) whose content is not in the holder's training split. The new champion never trained on them either."""
    held_out = set(holder_train_sha256s)
    return np.array([split == "val" and sha not in held_out for sha, split in zip(sha256s, splits)], bool)


def decide(policy: str, y_true=None, pred_new=None, pred_holder=None, class_names=None, *, holder: str | None = None,
           unavailable: str | None = None, min_images: int = MIN_IMAGES) -> dict:
    """The promotion decision: {"policy", "crown", "tag", "holder", "metric", "difference", "low", "high", "level",
    "n_boot", "images", "why"}. `holder`: the id of the model that holds the tag (None: no model does); `unavailable`:
    why the two could not be compared (the comparison arguments are then unused); labels and predictions are class
    indices into `class_names`; difference is new − holder."""
    if policy not in POLICIES:
        raise ValueError(f"promote must be one of {POLICIES}, not {policy!r}")
    decision = {"policy": policy, "holder": holder, "metric": "macro_f1", "difference": None, "low": None,
                "high": None, "level": None, "n_boot": None, "images": 0}

    def result(crown: bool, why: str) -> dict:
        return {**decision, "crown": crown, "tag": CHAMPION if crown else CANDIDATE, "why": why}

    if policy == "always":
        return result(True, "Crowned without a comparison (promote=always).")
    if policy == "never":
        return result(False, "Registered as a candidate: promote=never leaves the champion tag where it is.")
    if holder is None:
        return result(True, "Crowned: no model of the project held the champion tag.")
    if unavailable:
        return result(False, f"Registered as a candidate: it could not be compared with the champion {holder} "
                              f"({unavailable}); promote=always would crown it anyway.")
    from .intervals import paired_difference

    y_true = np.asarray(y_true)
    decision["images"] = len(y_true)
    if len(y_true) < min_images:
        return result(False, f"Registered as a candidate: only {len(y_true)} validation images neither model trained "
                              f"on (fewer than {min_images}), too few to compare it with the champion {holder}.")
    gap = paired_difference(y_true, np.asarray(pred_new), np.asarray(pred_holder), list(class_names), "macro_f1")
    decision.update(gap)
    measured = (f"validation macro-F1 new − champion {gap['difference']:+.3f} (95 % interval {gap['low']:+.3f} to "
                f"{gap['high']:+.3f}) on {len(y_true)} images neither model trained on")
    if gap["high"] < 0:
        return result(False, f"Registered as a candidate: distinguishably worse than the champion {holder}, "
                              f"{measured}.")
    verdict = "better than" if gap["low"] > 0 else "not distinguishable from"
    return result(True, f"Crowned: {verdict} the champion {holder}, {measured}.")
