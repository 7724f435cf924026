"""New data, new chain: a dataset version with one changed image re-runs the dataset step and the trainings; the same
data again reuses them. Run with the controller here (`--controller-local`) and with every step here
(`--steps-local`)."""

import shutil

from PIL import Image

from .runs import launch_args, pipeline_id


def changed_copy(data, folder):
    """The data with one training image changed (a brighter copy of itself)."""
    shutil.copytree(data, folder)
    image = sorted((folder / "Training").rglob("*.jpg"))[0]
    Image.open(image).point(lambda v: min(255, v + 40)).save(image)
    return folder


def test_one_changed_image_reruns_the_chain_and_the_same_data_reuses_it(launched, server, server_data, tmp_path):
    data = changed_copy(server_data, tmp_path / "data")
    here = server.cli(*launch_args(server, data, "cnn_a,cnn_b", "--controller-local"), timeout=1200)
    assert here.returncode == 0, here.stdout[-4000:]
    first = server.api.steps_of(pipeline_id(here.stdout))
    assert {t["status"] for t in first.values()} == {"completed"}, {n: t["status"] for n, t in first.items()}
    before = launched["steps"]
    for name in ("register_dataset", "train_cnn_a", "train_cnn_b"):  # new data: run anew
        assert first[name]["id"] != before[name]["id"], name
    promotion = server.api.console_with(first["select_champion"]["id"], "Promotion (if-better): ")
    assert "Promotion (if-better): " in promotion, promotion[-3000:]
    projects = server.api.project_ids(server.project)
    assert len(server.api.models(project=projects, tags=["champion"], system_tags=["-archived"])) == 1
    new_version = server.api.parameters(first["register_dataset"])["kwargs/dataset_id"]
    assert new_version != server.api.parameters(before["register_dataset"])["kwargs/dataset_id"]

    again = server.cli(*launch_args(server, data, "cnn_a,cnn_b", "--steps-local"), timeout=1200)
    assert again.returncode == 0, again.stdout[-4000:]
    assert f"Dataset unchanged: reusing version {new_version}" in again.stdout
    second = server.api.steps_of(pipeline_id(again.stdout))
    for name in ("register_dataset", "train_cnn_a", "train_cnn_b", "evaluate"):  # unchanged: served from cache
        assert second[name]["id"] == first[name]["id"], name
    assert second["select_champion"]["id"] != first["select_champion"]["id"]  # always runs: report and promotion
    assert second["select_champion"]["status"] == "completed"
