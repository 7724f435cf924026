"""External validation: other labelled folders, a subset of the classes, near-copies of Training told apart."""

import numpy as np
import pytest
from PIL import Image

from brain_tumor.data import find_layout, scan
from brain_tumor.errors import UserError
from brain_tumor.external import external_metrics, folders, load_external
from brain_tumor.synthetic import CLASS_NAMES, write_dataset


@pytest.fixture
def training(tmp_path):
    root = write_dataset(tmp_path / "train", 8, 0, size=48, seed=2)
    return scan(find_layout(root), 32, progress=False)


def external_folder(tmp_path, training, copies: int):
    """Two of the four classes, from another generator seed; `copies` of them are resized copies of Training
    images (as public "external" sets often hold)."""
    root = write_dataset(tmp_path / "hospital_b", 5, 0, size=64, seed=11) / "Training"
    for name in (CLASS_NAMES[1], CLASS_NAMES[3]):
        for file in (root / name).iterdir():
            file.unlink()
        (root / name).rmdir()
    sources = [f for f, label in zip(training.files, training.labels) if label == 0]
    for i in range(copies):
        Image.open(sources[i]).resize((70, 70)).save(root / CLASS_NAMES[0] / f"copy_{i}.jpg", quality=90)
    return root


def test_subset_of_classes_and_near_copies_are_found(tmp_path, training):
    root = external_folder(tmp_path, training, copies=1)
    (external,) = load_external(str(root), training.class_names, 32, False, training.phashes, training.files)
    assert external.name == "Training" and sorted(set(external.labels)) == [0, 2]
    assert int(external.is_twin.sum()) >= 1
    copy = external.files.index(str(root / CLASS_NAMES[0] / "copy_0.jpg"))
    assert external.is_twin[copy] and external.nearest_distances[copy] <= 6
    probabilities = np.eye(4)[external.labels]  # a perfect model
    metrics = external_metrics(external, probabilities, training.class_names)
    assert metrics["classes"] == [CLASS_NAMES[0], CLASS_NAMES[2]]
    assert metrics["macro_f1"] == pytest.approx(1.0)  # averaged over the two classes it holds, not four
    assert metrics["intervals"]["macro_f1"] == {"value": 1.0, "low": 1.0, "high": 1.0}
    assert metrics["twins"] == int(external.is_twin.sum())
    parts = metrics["near_copies"]
    assert parts["twin"]["samples"] + parts["novel"]["samples"] == len(external.labels)


def test_an_unknown_class_or_a_missing_folder_is_a_clear_error(tmp_path, training):
    root = external_folder(tmp_path, training, copies=0)
    (root / "astrocytoma").mkdir()
    Image.new("RGB", (20, 20)).save(root / "astrocytoma" / "a.png")
    with pytest.raises(UserError, match="astrocytoma"):
        load_external(str(root), training.class_names, 32, False, training.phashes, training.files)
    with pytest.raises(UserError, match="External folder not found"):
        folders(f"{root},{tmp_path / 'nowhere'}")
