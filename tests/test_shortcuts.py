"""The shortcut audit: style features of the original files, the style baseline and its verdict (a planted size and
brightness shortcut is flagged, one shared style is not), the Grad-CAM background share, external style shifts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brain_tumor import shortcuts
from brain_tumor.data import find_layout, scan
from brain_tumor.experiment import load_prepared, prepare_data
from brain_tumor.images import STYLE_FEATURES, decode_image, head_box, head_mask
from brain_tumor.shortcuts import (GEOMETRY, background_share, gradcam_background, style_audit, style_frame,
                                   style_shift)
from brain_tumor.synthetic import CLASS_NAMES, phantom


def write_styled(root, planted: int | None = None, per_class: int = 40, seed: int = 0):
    """ROOT/Training/<class>/ of one generator (tumour-free phantoms, 48×48) for every class, so only how the files
    were made can tell the classes apart; the `planted` class is rendered larger (80×80) and 15 % brighter."""
    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASS_NAMES):
        folder = root / "Training" / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            planted_here = label == planted
            pixels = phantom(2, 80 if planted_here else 48, rng).astype(np.float32) * (1.15 if planted_here else 1)
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L").convert("RGB").save(
                folder / f"{i:03d}.jpg", quality=92)
    return root


def audit_of(root) -> dict:
    scanned = scan(find_layout(root), 16, progress=False)
    return style_audit(style_frame(scanned.style, scanned.labels, scanned.class_names), scanned.class_names, seed=0)


# --- style features of one file ---------------------------------------------------------------------------------

def hand_built() -> np.ndarray:
    """40 wide × 20 high, black; a 10 × 20 head whose left half is 100 and right half 200; a stray bright pixel."""
    canvas = np.zeros((20, 40), np.uint8)
    canvas[5:15, 10:20] = 100
    canvas[5:15, 20:30] = 200
    canvas[0, 0] = 255  # brighter than the head but one pixel: not the head
    return canvas


@pytest.mark.parametrize("mode, bands", [("L", 1), ("RGB", 3), ("RGBA", 4)])
def test_style_features_of_a_hand_built_image(tmp_path, mode, bands):
    canvas = hand_built()
    path = tmp_path / f"slice_{mode}.png"
    Image.fromarray(canvas, "L").convert(mode).save(path)
    style = decode_image(path, 16).style
    assert list(style) == list(STYLE_FEATURES)
    values = canvas.astype(np.float64)
    assert (style["width"], style["height"], style["aspect"], style["bands"]) == (40, 20, 2.0, bands)
    assert style["mean"] == pytest.approx(values.mean()) == pytest.approx((100 * 100 + 100 * 200 + 255) / 800)
    assert style["std"] == pytest.approx(values.std())
    assert style["foreground"] == pytest.approx(200 / 800)  # the head only, not the stray pixel
    assert (style["fg_p10"], style["fg_p50"], style["fg_p90"]) == pytest.approx((100, 150, 200))


def test_style_is_of_the_original_file_whatever_the_size_or_crop(tmp_path):
    path = tmp_path / "slice.png"
    Image.fromarray(hand_built(), "L").save(path)
    styles = [decode_image(path, size, crop).style for size in (16, 64) for crop in (False, True)]
    assert all(style == styles[0] for style in styles)


def test_head_box_and_style_share_one_mask():
    canvas = hand_built()
    mask = head_mask(canvas.astype(np.float32))
    assert mask.sum() == 200 and not mask[0, 0] and mask[5:15, 10:30].all()
    assert head_box(Image.fromarray(canvas).convert("RGB"), margin=0.0) == (10, 0, 30, 20)  # 20 wide: square
    assert not head_mask(np.zeros((4, 4), np.float32)).any()  # a black image has no head


def test_scan_carries_style_row_for_row_without_keeping_pixels(tmp_path):
    root, rng = tmp_path / "data", np.random.default_rng(0)
    widths = {"a": (30, 50, 70), "b": (40, 60, 80)}
    for name, sizes in widths.items():
        (root / "Training" / name).mkdir(parents=True)
        for i, width in enumerate(sizes):  # noise: every image its own perceptual hash, so none are grouped
            Image.fromarray(rng.integers(0, 255, (20, width), np.uint8)).save(root / "Training" / name / f"{i}.png")
    (root / "Training" / "a" / "0b_broken.png").write_bytes(b"not an image")  # skipped between two kept files
    prepared = prepare_data(find_layout(root), 8, 0.2, 0.2, 0, tmp_path / "run", progress=False)
    scanned = prepared.scanned
    assert len(scanned.skipped) == 1
    assert list(scanned.style.columns) == list(STYLE_FEATURES) and len(scanned.style) == len(scanned.files) == 6
    assert (scanned.style.dtypes == np.float64).all()  # numbers only
    named = {f"{Path(f).parent.name}/{Path(f).name}": w for f, w in zip(scanned.files, scanned.style["width"])}
    assert named == {f"{name}/{i}.png": w for name, sizes in widths.items() for i, w in enumerate(sizes)}
    cached = load_prepared(tmp_path / "run" / "manifest.csv", 8, progress=False)
    assert cached.scanned.style is None  # read from the pixel cache: no decoding, no style


# --- the style baseline and its verdict -------------------------------------------------------------------------

def test_a_planted_size_and_brightness_is_flagged_and_size_is_on_top(tmp_path):
    audit = audit_of(write_styled(tmp_path / "planted", planted=1))
    baseline = audit["baseline"]
    medians = audit["medians"]
    assert medians.loc["meningioma_tumor", "width"] == 80 and medians.loc["glioma_tumor", "width"] == 48
    assert medians.loc["meningioma_tumor", "mean"] > medians.loc["glioma_tumor", "mean"]
    assert baseline["majority_rate"] == 0.25 and baseline["folds"] == 5
    best = baseline["models"][baseline["verdict"]["model"]]["accuracy"]
    assert best["low"] > baseline["majority_rate"] + shortcuts.CHANCE_MARGIN  # well above chance
    assert best["value"] == pytest.approx(0.5, abs=0.12)  # one class of four told apart, the rest at chance
    top = [entry["feature"] for entry in baseline["importances"][:3]]
    assert {"width", "height"} <= set(top)
    assert baseline["geometry"]["features"] == list(GEOMETRY)
    assert baseline["geometry"]["accuracy"]["low"] > baseline["majority_rate"] + shortcuts.CHANCE_MARGIN
    verdict = baseline["verdict"]
    assert verdict["flagged"]
    assert verdict["sentence"].startswith(f"The classes are separable by acquisition style alone: "
                                          f"{best['value']:.3f} out-of-fold accuracy")
    assert f"vs chance 0.250 (always glioma_tumor), carried by {', '.join(top)}." in verdict["sentence"]


def test_one_shared_style_is_not_flagged(tmp_path):
    baseline = audit_of(write_styled(tmp_path / "shared"))["baseline"]
    verdict = baseline["verdict"]
    assert not verdict["flagged"]
    assert verdict["sentence"].startswith("The classes are not clearly separable by acquisition style alone")
    for scores in baseline["models"].values():
        assert scores["accuracy"]["low"] <= baseline["majority_rate"] + shortcuts.CHANCE_MARGIN
    assert baseline["geometry"]["accuracy"]["value"] == pytest.approx(0.25, abs=0.1)  # every file 48×48, RGB


def test_too_few_images_give_no_baseline_and_no_flag():
    frame = pd.DataFrame([dict.fromkeys(STYLE_FEATURES, 1.0)] * 3).assign(**{"class": ["a", "a", "b"]})
    baseline = style_audit(frame, ["a", "b"])["baseline"]
    assert baseline["models"] == {} and not baseline["verdict"]["flagged"]
    assert "not run" in baseline["verdict"]["sentence"]


# --- Grad-CAM background share ----------------------------------------------------------------------------------

def test_background_share_by_hand():
    heatmap = np.array([[1.0, 2.0], [3.0, 4.0]])
    mask = np.array([[True, False], [False, True]])
    assert background_share(heatmap, mask) == pytest.approx((2 + 3) / 10)
    assert background_share(heatmap, np.ones((2, 2), bool)) == 0.0
    assert background_share(heatmap, np.zeros((2, 2), int)) == 1.0
    assert background_share(np.zeros((2, 2)), mask) == 0.0  # no energy at all: nothing outside


def test_gradcam_background_flags_a_class_whose_heatmap_lies_outside_the_head(monkeypatch):
    import brain_tumor.gradcam

    def images(head_side: int, count: int) -> list[np.ndarray]:
        image = np.zeros((20, 20, 3), np.uint8)
        image[:head_side, :head_side] = 150
        return [image] * count

    pixels = np.stack(images(6, 5) + images(18, 5))  # class 0: a small head, class 1: a head filling the image
    labels = np.array([0] * 5 + [1] * 5)
    # a uniform heatmap: its share outside the head is the background's share of the image
    monkeypatch.setattr(brain_tumor.gradcam, "gradcams", lambda model, batch: (np.ones(batch.shape[:3]), None))
    result = gradcam_background(None, pixels, labels, ["small", "large", "absent"], per_class=3, seed=0)
    assert result["per_class"]["small"] == {"images": 3, "mean": pytest.approx(1 - 36 / 400), "flagged": True}
    assert result["per_class"]["large"] == {"images": 3, "mean": pytest.approx(1 - 324 / 400), "flagged": False}
    assert "absent" not in result["per_class"] and result["flagged"] == ["small"]
    assert result["threshold"] == shortcuts.BACKGROUND_FLAG and result["images_per_class"] == 3


# --- external sets ----------------------------------------------------------------------------------------------

def frame_of(widths: list[float], names: list[str]) -> pd.DataFrame:
    rows = [{**dict.fromkeys(STYLE_FEATURES, 1.0), "width": w, "class": n} for w, n in zip(widths, names)]
    return pd.DataFrame(rows)[["class", *STYLE_FEATURES]]


def test_an_external_set_of_another_size_is_a_shift():
    training = frame_of(list(range(500, 520)) + list(range(230, 250)), ["a"] * 20 + ["b"] * 20)
    same = style_shift(training, frame_of([505, 510, 240], ["a", "a", "b"]), ["a", "b", "c"])
    assert same["shifts"] == [] and same["sentence"].startswith("Its style matches")
    assert list(same["classes"]) == ["a", "b"] and same["classes"]["a"]["images"] == 2
    other = style_shift(training, frame_of([256, 256], ["a", "a"]), ["a", "b"])
    assert other["shifts"] == [{"class": "a", "feature": "width", "training": 509.5, "external": 256.0}]
    assert other["sentence"].startswith("Its style differs from the training split's: 1 class/feature medians")
    assert "a width 256 vs 510" in other["sentence"]
