"""Grouped, stratified, deterministic splits: near-duplicates never straddle train / validation / test."""

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brain_tumor.data import find_layout, scan
from brain_tumor.errors import UserError
from brain_tumor.split import assign_splits, carve, near_duplicate_groups, write_manifest


def plant_near_duplicates(root, per_class=3):
    """Copy the first images of each class, resized and re-encoded at another JPEG quality: near-duplicates."""
    planted = []
    for folder in sorted((root / "Training").iterdir()):
        for original in sorted(folder.iterdir())[:per_class]:
            image = Image.open(original)
            buffer = io.BytesIO()
            image.resize((image.width * 2, image.height * 2)).save(buffer, "JPEG", quality=70)
            copy = folder / f"copy_of_{original.name}"
            copy.write_bytes(buffer.getvalue())
            planted.append((str(original), str(copy)))
    return planted


@pytest.fixture
def scanned_with_twins(make_data):
    root = make_data(30, size=48)
    planted = plant_near_duplicates(root)
    return scan(find_layout(root), 32, progress=False), planted


def test_planted_near_duplicates_are_grouped_and_distinct_images_are_not(scanned_with_twins):
    scanned, planted = scanned_with_twins
    groups = near_duplicate_groups(scanned.phashes)
    index = {f: i for i, f in enumerate(scanned.files)}
    for original, copy in planted:
        assert groups[index[original]] == groups[index[copy]]
    # the synthetic phantoms are distinct images: almost every one stands alone or with its planted twin
    sizes = np.bincount(groups)
    assert len(sizes) >= 0.9 * (len(scanned.files) - len(planted))


def test_near_duplicates_never_straddle_splits(scanned_with_twins):
    scanned, planted = scanned_with_twins
    index = {f: i for i, f in enumerate(scanned.files)}
    for seed in range(5):
        groups, splits = carve(scanned.phashes, scanned.labels, scanned.sources, 0.3, 0.3, seed)
        for group in np.unique(groups):
            assert len(set(splits[groups == group])) == 1
        for original, copy in planted:
            assert splits[index[original]] == splits[index[copy]]


def test_split_is_deterministic_for_a_seed_and_changes_with_it(scanned_with_twins):
    scanned, _ = scanned_with_twins
    args = (scanned.phashes, scanned.labels, scanned.sources, 0.15, 0.15)
    first, again, other = carve(*args, seed=1)[1], carve(*args, seed=1)[1], carve(*args, seed=2)[1]
    assert first.tolist() == again.tolist()
    assert first.tolist() != other.tolist()


def test_split_is_stratified():
    labels = np.repeat(np.arange(4), [400, 400, 200, 400])
    groups = np.arange(len(labels)) // 2  # near-duplicate pairs
    splits = assign_splits(labels, groups, 0.15, 0.2, seed=3)
    for label in range(4):
        in_class = labels == label
        for split, fraction in (("val", 0.15), ("test", 0.2)):
            share = np.mean(splits[in_class] == split)
            assert abs(share - fraction) <= 2 / in_class.sum() + 1e-9, (label, split, share)


def test_a_test_folder_is_kept_whole_and_not_carved(make_data):
    root = make_data(10, 4)
    scanned = scan(find_layout(root), 32, progress=False)
    _, splits = carve(scanned.phashes, scanned.labels, scanned.sources, 0.2, 0.3, seed=0)
    from_test_folder = np.array(scanned.sources) == "test"
    assert (splits[from_test_folder] == "test").all()
    assert set(splits[~from_test_folder]) == {"train", "val"}


@pytest.mark.parametrize("val, test", [(1.2, 0.1), (-0.1, 0.1), (0.6, 0.5)])
def test_impossible_fractions_are_refused(val, test):
    with pytest.raises(UserError, match="fraction"):
        assign_splits(np.zeros(10, int), np.arange(10), val, test, seed=0)


def test_empty_validation_split_is_refused():
    with pytest.raises(UserError, match="val split is empty"):
        carve(["0" * 16, "f" * 16], np.array([0, 1]), ["train", "train"], 0.15, 0.0, seed=0)


def test_manifest_has_one_row_per_image(tmp_path, scanned_with_twins):
    scanned, _ = scanned_with_twins
    groups, splits = carve(scanned.phashes, scanned.labels, scanned.sources, 0.15, 0.15, 0)
    write_manifest(tmp_path / "m.csv", scanned.files, scanned.class_names, scanned.labels, splits, scanned.phashes,
                   scanned.sha256s, groups)
    manifest = pd.read_csv(tmp_path / "m.csv", dtype={"phash": str})
    assert list(manifest.columns) == ["file", "class", "label", "split", "phash", "sha256", "group"]
    assert manifest["file"].tolist() == scanned.files
    assert manifest["split"].tolist() == splits.tolist()
    assert (manifest["class"] == [scanned.class_names[i] for i in manifest["label"]]).all()
