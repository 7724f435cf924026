"""Server-side decisions as pure functions, and model references resolved to local files."""

import pytest

from brain_tumor.errors import UserError
from steps.registry import champion_tag_changes, dataset_version_action, resolve_model


def test_same_content_reuses_the_latest_dataset_version():
    assert dataset_version_action("abc", {"id": "ds1", "content_hash": "abc"}) == ("reuse", "ds1")


def test_new_content_creates_a_child_of_the_latest_version():
    assert dataset_version_action("def", {"id": "ds1", "content_hash": "abc"}) == ("create", "ds1")


def test_first_version_has_no_parent():
    assert dataset_version_action("abc", None) == ("create", None)


def test_the_champion_tag_moves_to_the_new_champion():
    assert champion_tag_changes("m3", ["m1"]) == {"add": ["m3"], "remove": ["m1"]}
    assert champion_tag_changes("m3", ["m3", "m2", "m1"]) == {"add": [], "remove": ["m1", "m2"]}
    assert champion_tag_changes("m3", []) == {"add": ["m3"], "remove": []}


def test_a_local_path_resolves_to_itself(tmp_path):
    model = tmp_path / "model.keras"
    model.write_bytes(b"x")
    assert resolve_model(str(model)) == model


def test_a_file_url_resolves_through_the_storage_manager(tmp_path):
    model = tmp_path / "model.keras"
    model.write_bytes(b"weights")
    assert resolve_model(f"file://{model}").read_bytes() == b"weights"


def test_a_missing_local_path_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="Model file not found"):
        resolve_model(str(tmp_path / "gone.keras"))


def test_a_model_id_without_a_server_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("CLEARML_API_HOST", raising=False)
    monkeypatch.setenv("CLEARML_CONFIG_FILE", str(tmp_path / "absent.conf"))
    with pytest.raises(UserError, match="ClearML model id needs a configured server"):
        resolve_model("4f1c2d7a9b")


def test_a_step_without_its_manifest_or_a_dataset_id_says_so(tmp_path):
    from steps.registry import step_data

    with pytest.raises(UserError, match="not on this machine and the run has no dataset id"):
        step_data(str(tmp_path / "manifest.csv"), 32, "hash")


def test_class_weights_from_split_counts_equal_those_from_the_manifest(tmp_path):
    import pandas as pd

    from steps.class_weights import class_weights

    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"file": list("abcd"), "class": ["x", "y", "y", "y"], "label": [0, 1, 1, 1],
                  "split": ["train", "train", "train", "val"], "phash": ["0"] * 4, "sha256": ["0"] * 4,
                  "group": [0, 1, 2, 3]}).to_csv(manifest, index=False)
    counts = {"train": {"x": 1, "y": 2}, "val": {"x": 0, "y": 1}, "test": {"x": 0, "y": 0}}
    here = class_weights(str(manifest), "h", str(tmp_path))
    agent = class_weights(str(tmp_path / "elsewhere.csv"), "h", str(tmp_path / "agent"), counts=counts)
    assert agent == here
