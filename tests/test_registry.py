"""Server-side decisions as pure functions, and model references resolved to local files."""

import re
from pathlib import Path
from types import SimpleNamespace

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
        step_data(str(tmp_path / "manifest.csv"), 32, "hash", "", 0.15, 0.15, 42, str(tmp_path))


def test_a_shared_run_folder_holding_another_agents_manifest_is_read_from_this_agents_copy(tmp_path, monkeypatch):
    """The run folder is on a shared disk; register_dataset's agent wrote its manifest there, listing that agent's
    copy of the dataset, which this agent cannot see. This agent splits its own copy (the same split), in a folder
    of its own, and leaves the shared manifest as it was."""
    import shutil

    import steps.registry as registry
    from brain_tumor.data import dataset_hash, find_layout
    from brain_tumor.experiment import prepare_data, read_manifest
    from brain_tumor.synthetic import write_dataset

    theirs = write_dataset(tmp_path / "agent-a" / "ds", 6, 2, size=32, seed=3)
    shared = tmp_path / "shared-run"
    registered = prepare_data(find_layout(theirs), 32, 0.2, 0.2, 42, shared)
    ours = tmp_path / "agent-b" / "ds"
    shutil.copytree(theirs, ours)
    shutil.rmtree(tmp_path / "agent-a")  # another machine's disk
    before = (shared / "manifest.csv").read_text()
    monkeypatch.setattr(registry, "dataset_local_copy", lambda dataset_id: ours)
    prepared = registry.step_data(str(shared / "manifest.csv"), 32, dataset_hash(registered.scanned), "ds1", 0.2,
                                  0.2, 42, str(shared))
    assert all(f.startswith(str(ours)) for f in prepared.scanned.files)
    def split_of(data):
        return {Path(f).name: split for f, split in zip(data.scanned.files, data.splits)}

    assert split_of(prepared) == split_of(registered)
    assert (shared / "manifest.csv").read_text() == before
    assert all(f.startswith(str(tmp_path / "agent-a")) for f in read_manifest(shared / "manifest.csv")[0]["file"])


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


class FakeServer:
    """The two API calls the model lookups make, answered as a ClearML server would: `projects.get_all` omits hidden
    projects unless asked (`search_hidden`), `models.get_all` filters by project ids, tag and published state."""

    def __init__(self, projects: dict, models: list[dict]):
        self.names, self.records = [], models
        server = self

        class Projects:
            def get_all(self, name, search_hidden=False, only_fields=None):
                server.names.append((name, search_hidden))
                return [SimpleNamespace(id=i) for n, i in projects.items()
                        if re.fullmatch(name, n) and (search_hidden or "/.pipelines/" not in n)]

        class Models:
            def get_all(self, project, tags, ready=None, system_tags=None, order_by=None, only_fields=None):
                return [SimpleNamespace(id=m["id"]) for m in models if m["project"] in project
                        and set(tags) <= set(m["tags"]) and (ready is None or m["published"] == ready)]

        self.projects, self.models = Projects(), Models()


@pytest.fixture
def server(monkeypatch):
    from clearml.automation import PipelineController
    from clearml.backend_api.session import client

    monkeypatch.setattr(PipelineController, "_pipeline_as_sub_project_cached", True)  # a server >= 2.17 answers so
    fake = FakeServer({"Brain Tumor MRI": "p-main", "Brain Tumor MRI/.pipelines/brain-tumor-mri": "p-pipeline"}, [
        {"id": "m-new", "project": "p-pipeline", "tags": ["cnn_b"], "published": False},
        {"id": "m-old", "project": "p-pipeline", "tags": ["cnn_a", "champion"], "published": True},
        {"id": "m-local", "project": "p-main", "tags": ["cnn_c"], "published": False},
    ])
    monkeypatch.setattr(client, "APIClient", lambda: fake)
    return fake


def test_models_are_looked_up_in_the_hidden_project_where_pipeline_steps_register_them(server):
    from steps.registry import champion_model_id, find_models, model_projects

    assert model_projects() == ["Brain Tumor MRI/.pipelines/brain-tumor-mri", "Brain Tumor MRI"]
    assert champion_model_id() == "m-old"
    assert find_models("cnn_c") == ["m-local"]  # a local run tracked on the server registers in the main project
    assert all(hidden for _, hidden in server.names)


def test_crowning_moves_the_champion_tag_across_the_pipeline_project(server, monkeypatch):
    import clearml

    from steps.select_champion import crown

    class Model:
        def __init__(self, model_id):
            self.record = next(m for m in server.records if m["id"] == model_id)

        @property
        def tags(self):
            return self.record["tags"]

        @tags.setter
        def tags(self, value):
            self.record["tags"] = list(value)

        def publish(self):
            self.record["published"] = True

    monkeypatch.setattr(clearml, "Model", Model)
    crown("m-new", "Brain Tumor MRI")
    tagged = {m["id"] for m in server.records if "champion" in m["tags"]}
    assert tagged == {"m-new"} and next(m for m in server.records if m["id"] == "m-new")["published"]


SYNC = """
import shutil, sys
from pathlib import Path
from clearml import Dataset, Task
Task.set_offline(True)
Task._report_subprocess_enabled = False
from brain_tumor.data import Layout
from steps.registry import sync_version
root = Path(sys.argv[1])
Task.init(project_name="p", task_name="version")
version = Dataset.create(dataset_project="p", dataset_name="d", use_current_task=True)
version.add_files(str(root / "Training"), dataset_path="Training", verbose=False)  # inherited from the parent
version.add_files(str(root / "Testing"), dataset_path="Testing", verbose=False)
(root / "Training" / "a" / "1.jpg").unlink()  # deleted since the parent version
(root / "Training" / "a" / "9.jpg").write_bytes(b"new")
shutil.rmtree(root / "Testing")
sync_version(version, Layout(root / "Training"))
print("FILES=" + ",".join(sorted(version.list_files())))
"""


def test_a_new_dataset_version_holds_exactly_the_folder(tmp_path):
    import os
    import subprocess
    import sys

    for folder, names in (("Training/a", ["0.jpg", "1.jpg", "2.jpg"]), ("Testing/a", ["t.jpg"])):
        (tmp_path / folder).mkdir(parents=True)
        for name in names:
            (tmp_path / folder / name).write_bytes(name.encode() * 10)
    env = {**os.environ, "CLEARML_CACHE_DIR": str(tmp_path / "clearml"), "HOME": str(tmp_path)}
    env.pop("CLEARML_API_HOST", None)
    result = subprocess.run([sys.executable, "-c", SYNC, str(tmp_path)], capture_output=True, text=True, env=env,
                            timeout=120)
    line = next((x for x in result.stdout.splitlines() if x.startswith("FILES=")), None)
    assert line, result.stdout + result.stderr
    assert line[len("FILES="):].split(",") == ["Training/a/0.jpg", "Training/a/2.jpg", "Training/a/9.jpg"]
