"""Leakage audit: planted near-duplicates in the test split are found, distinct images are not, and metrics split
between twins and novel images."""

import numpy as np
import pandas as pd
import pytest

from brain_tumor.errors import UserError
from brain_tumor.images import decode_image
from brain_tumor.leakage import audit, nearest, twin_metrics
from brain_tumor.split import DEFAULT_MAX_DISTANCE
from brain_tumor.synthetic import CLASS_NAMES, plant_twins, write_dataset


def manifest_of(root):
    """Training → train (every 4th → val), Testing → test, with the pHash decode_image computes."""
    rows = []
    for i, path in enumerate(sorted(root.rglob("*.jpg"))):
        split = "test" if path.parts[-3] == "Testing" else ("val" if i % 4 == 0 else "train")
        rows.append({"file": str(path.relative_to(root)), "class": path.parent.name,
                     "label": CLASS_NAMES.index(path.parent.name), "split": split,
                     "phash": decode_image(path, 32).phash})
    return pd.DataFrame(rows)


def hex_hashes(values):
    return [f"{int(v):016x}" for v in values]


def test_nearest_gives_known_hamming_distances():
    references = ["000000000000000f", "ffffffffffffffff", "0000000000000000"]
    distances, indices = nearest(["0000000000000001", "fffffffffffffff0", "f000000000000000"], references)
    assert distances.tolist() == [1, 4, 4]
    assert indices.tolist() == [2, 1, 2]
    distances, indices = nearest(["0000000000000000"], ["000000000000000f", "ffffffffffffffff"])
    assert distances.tolist() == [4] and indices.tolist() == [0]


def test_nearest_block_by_block_equals_all_at_once(monkeypatch):
    import brain_tumor.leakage as leakage

    rng = np.random.default_rng(0)
    queries = hex_hashes(rng.integers(0, 2**63, 50, dtype=np.uint64) * 2)
    references = hex_hashes(rng.integers(0, 2**63, 70, dtype=np.uint64) * 2)
    whole = nearest(queries, references)
    monkeypatch.setattr(leakage, "PAIRS_PER_BLOCK", 7 * 70)  # 7 query rows at a time
    small = nearest(queries, references)
    assert np.array_equal(whole[0], small[0]) and np.array_equal(whole[1], small[1])


@pytest.mark.parametrize("size", [32, 64])
def test_planted_twins_stay_within_the_duplicate_distance_of_their_originals(tmp_path, size):
    root = write_dataset(tmp_path / "data", 10, 0, size=size)
    pairs = plant_twins(root, 40)
    assert len({copy for copy, _ in pairs}) == 40
    assert all(copy.parent == root / "Testing" / original.parent.name for copy, original in pairs)
    assert sorted(original.parent.name for _, original in pairs) == sorted(CLASS_NAMES * 10)
    distances = [nearest([decode_image(copy, 32).phash], [decode_image(original, 32).phash])[0][0]
                 for copy, original in pairs]
    assert max(distances) <= DEFAULT_MAX_DISTANCE


def test_plant_twins_is_seeded_and_refuses_more_than_there_are(tmp_path):
    root = write_dataset(tmp_path / "data", 3, 0, size=32)
    first = [original.name for _, original in plant_twins(root, 6, seed=1)]
    assert first == [original.name for _, original in plant_twins(root, 6, seed=1)]
    with pytest.raises(UserError, match="Cannot plant 13 twins"):
        plant_twins(root, 13)


def test_audit_finds_the_planted_twins_and_nothing_else(tmp_path):
    # Distinct phantoms are not always far apart by pHash (about 0.1-0.2% of pairs are within 6 bits), so the seed is
    # fixed to one whose distinct test images are all at least 8 bits from every train/val image.
    root = write_dataset(tmp_path / "data", 10, 3, size=64, seed=0)
    pairs = plant_twins(root, 6, seed=0)
    manifest = manifest_of(root)
    result = audit(manifest)

    planted = {str(copy.relative_to(root)): str(original.relative_to(root)) for copy, original in pairs}
    test = manifest[manifest["split"] == "test"]
    assert result["test_images"] == len(test) == 18
    assert result["twins"] == 6 and result["twin_fraction"] == pytest.approx(6 / 18)
    assert {p["test_file"]: p["match_file"] for p in result["pairs"]} == planted
    assert [f for f, twin in zip(test["file"], result["is_twin"]) if twin] == sorted(planted)
    assert all(p["test_class"] == p["match_class"] and p["match_split"] in ("train", "val") for p in result["pairs"])
    assert [p["distance"] for p in result["pairs"]] == sorted(p["distance"] for p in result["pairs"])
    assert len(result["nearest_distances"]) == 18
    assert min(d for d, twin in zip(result["nearest_distances"], result["is_twin"]) if not twin) > DEFAULT_MAX_DISTANCE
    # the 8 closest: the 6 twins, then the 2 nearest distinct images
    assert len(result["closest_pairs"]) == 8 and result["closest_pairs"][:6] == result["pairs"]
    assert all(p["distance"] > DEFAULT_MAX_DISTANCE for p in result["closest_pairs"][6:])


def test_random_split_counterfactual_counts_twins_an_ungrouped_split_would_have():
    rng = np.random.default_rng(0)
    distinct = hex_hashes(rng.integers(0, 2**63, 20, dtype=np.uint64) * 2)
    duplicated = [h for h in distinct for _ in range(5)]  # 20 images, 5 copies each; grouped: test = last 4 images
    manifest = pd.DataFrame({"file": [f"f{i:03d}.jpg" for i in range(100)], "class": "a", "label": 0,
                             "split": ["train"] * 80 + ["test"] * 20, "phash": duplicated})
    result = audit(manifest, seed=0)
    assert result["twins"] == 0  # the grouped split keeps every copy on one side
    assert result["random_split"]["test_images"] == 20
    assert result["random_split"]["twins"] > 0
    assert result["random_split"]["twin_fraction"] == result["random_split"]["twins"] / 20
    assert audit(manifest, seed=0)["random_split"] == result["random_split"]

    all_distinct = manifest.assign(phash=hex_hashes(rng.integers(0, 2**63, 100, dtype=np.uint64) * 2))
    assert audit(all_distinct)["random_split"]["twins"] == 0


def test_audit_without_test_images_is_empty_and_without_reference_images_is_an_error():
    manifest = pd.DataFrame({"file": ["a.jpg", "b.jpg"], "class": "a", "label": 0, "split": ["train", "val"],
                             "phash": ["0000000000000000", "ffffffffffffffff"]})
    result = audit(manifest)
    assert result["test_images"] == 0 and result["twins"] == 0 and result["twin_fraction"] == 0.0
    assert result["pairs"] == result["closest_pairs"] == result["is_twin"] == result["nearest_distances"] == []
    with pytest.raises(UserError, match="no train or validation"):
        audit(manifest.assign(split="test"))


def test_twin_metrics_split_the_test_set():
    classes = ["a", "b", "c"]
    y_true = np.array([0, 1, 2, 0, 1, 2])
    predicted = np.array([0, 1, 2, 1, 1, 0])  # twins (first 3) all right; novel: 1 of 3 right
    probabilities = np.eye(3)[predicted]
    is_twin = np.array([True, True, True, False, False, False])
    metrics = twin_metrics(y_true, probabilities, is_twin, classes)
    assert metrics["twin"] == {"samples": 3, "accuracy": 1.0, "macro_f1": 1.0}
    assert metrics["novel"]["samples"] == 3
    assert metrics["novel"]["accuracy"] == pytest.approx(1 / 3)
    # novel (true a, b, c; predicted b, b, a): F1 of a = 0 (no hit), of b = 2/3 (precision 1/2, recall 1),
    # of c = 0 (no hit); macro = (0 + 2/3 + 0) / 3 = 2/9
    assert metrics["novel"]["macro_f1"] == pytest.approx(2 / 9)
    only_novel = twin_metrics(y_true, probabilities, np.zeros(6, bool), classes)
    assert only_novel["twin"] is None and only_novel["novel"]["accuracy"] == pytest.approx(4 / 6)
