"""Champion promotion: the new champion takes the project's champion tag unless it is distinguishably worse than the
model holding it, on this run's validation images that neither model trained on. The rule is pure
(brain_tumor/promotion.py); the server side is tested against fakes of the ClearML calls it makes."""

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brain_tumor.promotion import CANDIDATE, CHAMPION, OFFLINE, comparison_mask, decide
from brain_tumor.report import promotion_sentence
from brain_tumor.synthetic import CLASS_NAMES

NAMES = ["a", "b", "c", "d"]
LABELS = np.repeat(np.arange(4), 50)  # 200 images


def test_a_clearly_worse_new_model_stays_a_candidate():
    worse = np.where(np.arange(200) % 2 == 0, LABELS, (LABELS + 1) % 4)  # half right
    decision = decide("if-better", LABELS, worse, LABELS, NAMES, holder="m-old")
    assert decision["high"] < 0 and decision["difference"] == pytest.approx(-0.5, abs=0.02)
    assert (decision["crown"], decision["tag"], decision["images"]) == (False, CANDIDATE, 200)
    assert "distinguishably worse than the champion m-old" in decision["why"]


def test_a_noise_level_difference_crowns_the_new_model():
    holder = LABELS.copy()
    new = LABELS.copy()
    holder[[0, 60]] = 3  # each wrong on two images the other gets right
    new[[120, 180]] = 0
    decision = decide("if-better", LABELS, new, holder, NAMES, holder="m-old")
    assert decision["low"] <= 0 <= decision["high"]
    assert (decision["crown"], decision["tag"]) == (True, CHAMPION)
    assert decision["why"].startswith("Crowned: not distinguishable from the champion m-old")


def test_a_clearly_better_new_model_is_crowned_as_better():
    worse = np.where(np.arange(200) % 2 == 0, LABELS, (LABELS + 1) % 4)
    decision = decide("if-better", LABELS, LABELS, worse, NAMES, holder="m-old")
    assert decision["crown"] and decision["low"] > 0 and "better than the champion m-old" in decision["why"]


def test_without_a_holder_the_new_model_is_crowned():
    decision = decide("if-better")
    assert (decision["crown"], decision["tag"], decision["holder"]) == (True, CHAMPION, None)
    assert "no model of the project held the champion tag" in decision["why"]


def test_always_crowns_and_never_keeps_the_holder():
    worse = (LABELS + 1) % 4  # always wrong: always still crowns
    always = decide("always", LABELS, worse, LABELS, NAMES, holder="m-old")
    never = decide("never", LABELS, LABELS, worse, NAMES, holder="m-old")
    assert (always["crown"], always["tag"]) == (True, CHAMPION)
    assert (never["crown"], never["tag"]) == (False, CANDIDATE) and "promote=never" in never["why"]
    with pytest.raises(ValueError, match="promote must be one of"):
        decide("sometimes")


def test_too_few_comparison_images_keep_the_holder():
    decision = decide("if-better", LABELS[:10], LABELS[:10], (LABELS[:10] + 1) % 4, NAMES, holder="m-old")
    assert (decision["crown"], decision["images"]) == (False, 10)
    assert "only 10 validation images neither model trained on (fewer than 20)" in decision["why"]


def test_no_comparison_keeps_the_holder_and_says_why():
    decision = decide("if-better", holder="m-old", unavailable="its split manifest was not found")
    assert not decision["crown"] and "(its split manifest was not found)" in decision["why"]
    assert "promote=always would crown it anyway" in decision["why"]


def test_the_comparison_images_are_validation_images_the_holder_did_not_train_on():
    sha = ["h1", "h2", "h3", "h4", "h5", "h6"]
    splits = ["train", "val", "val", "test", "val", "val"]
    mask = comparison_mask(sha, splits, {"h1", "h3", "h4"})  # h3: a validation image here, training for the holder
    assert mask.tolist() == [False, True, False, False, True, True]  # never train, never test


def test_the_report_says_what_promotion_decided():
    crowned = {"champion": "cnn_a", "promotion": decide("if-better")}
    assert promotion_sentence(crowned) == ("Promotion (promote=if-better): cnn_a took the project's champion tag. "
                                           "Crowned: no model of the project held the champion tag.")
    assert promotion_sentence({"champion": "cnn_a", "promotion": OFFLINE}) == "Promotion: offline: no model registry."
    assert promotion_sentence({"champion": "cnn_a"}) is None  # a run recorded before promotion


# --- the server side, against fakes -------------------------------------------------------------------------------

LEVELS = (40, 100, 160, 220)  # each class's mean brightness in the images below


def write_levels(root, per_class=30, size=32, seed=0):
    """Images whose class is their mean brightness (a random smooth pattern around it), so that a hand-set model
    classifies them perfectly without training."""
    rng = np.random.default_rng(seed)
    for name, level in zip(CLASS_NAMES, LEVELS):
        folder = root / "Training" / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            pattern = np.asarray(Image.fromarray(rng.uniform(0, 255, (4, 4)).astype(np.uint8)).resize(
                (size, size), Image.BILINEAR), np.float32)
            pixels = np.clip(level + (pattern - pattern.mean()) * 25 / 128, 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "L").convert("RGB").save(folder / f"{i:03d}.png")
    return root


def level_model(path, size, constant=None):
    """A .keras model without training: the class whose brightness level is nearest the image's mean (logit
    2·c·m − c², the −m² every class shares left out), or always class `constant`."""
    import keras

    from brain_tumor.models import save_model

    inputs = keras.Input((size, size, 3))
    dense = keras.layers.Dense(len(LEVELS), activation="softmax")
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(inputs)))
    c = np.asarray(LEVELS, np.float32) / 100
    kernel, bias = np.tile(2 * c / 3, (3, 1)) / 100, -c ** 2
    if constant is not None:
        kernel, bias = np.zeros_like(kernel), np.eye(len(LEVELS), dtype=np.float32)[constant]
    dense.set_weights([kernel, bias])
    return save_model(model, path, {"model_name": path.stem, "class_names": CLASS_NAMES, "image_size": size,
                                    "crop": False})


@pytest.fixture
def run(tmp_path):
    """A run folder prepared from brightness-level images: its manifest and pixel cache."""
    from brain_tumor.data import find_layout
    from brain_tumor.experiment import prepare_data

    out = tmp_path / "run"
    out.mkdir()
    prepared = prepare_data(find_layout(write_levels(tmp_path / "data")), 32, 0.3, 0.2, 0, out, progress=False)
    return SimpleNamespace(dir=out, prepared=prepared)


class Server:
    """The ClearML objects promotion touches: models (tags, published state, metadata, the task that made them),
    tasks (parent, artifacts, the pipeline's recorded DAG) and the step's own task."""

    def __init__(self, models: dict, tasks: dict, files: dict):
        self.models, self.tasks, self.files = models, tasks, files
        server = self

        class Model:
            def __init__(self, model_id):
                self.record = server.models[model_id]

            tags = property(lambda self: self.record["tags"],
                            lambda self, value: self.record.update(tags=list(value)))
            task = property(lambda self: self.record.get("task"))

            def get_metadata(self, key):
                return self.record.get("metadata", {}).get(key)

            def publish(self):
                self.record["published"] = True

        class Task:
            @staticmethod
            def get_task(task_id=None, **_):
                if task_id not in server.tasks:
                    raise ValueError(f"no task {task_id}")
                return server.tasks[task_id]

            @staticmethod
            def _query_tasks(parent=None, task_name=None, **_):
                return [SimpleNamespace(id=i) for i, t in server.tasks.items()
                        if t.parent == parent and f"^{t.name}$" == task_name]

        self.Model, self.Task = Model, Task

    def find_models(self, tag, only_published=False, project=None):
        return [i for i, m in self.models.items() if tag in m["tags"] and (m["published"] or not only_published)]

    def tagged(self, tag):
        return {i for i, m in self.models.items() if tag in m["tags"]}


def task(task_id, name, parent=None, artifacts=None, dag=None, parameters=None):
    return SimpleNamespace(
        id=task_id, name=name, parent=parent, artifacts=artifacts or {}, get_parameters=lambda: parameters or {},
        get_configuration_object_as_dict=lambda section: dag if section == "Pipeline" else None)


def artifact(path):
    return SimpleNamespace(get_local_copy=lambda extract_archive=True: str(path))


def holder_manifest(run, tmp_path, taken_from_val: int):
    """The holder's split manifest: this run's, with `taken_from_val` of this run's validation images in its training
    split (the holder trained on them)."""
    manifest = pd.read_csv(run.dir / "manifest.csv", dtype={"phash": str, "sha256": str})
    val = manifest.index[manifest["split"] == "val"][:taken_from_val]
    manifest.loc[val, "split"] = "train"
    path = tmp_path / "holder_manifest.csv"
    manifest.to_csv(path, index=False)
    return path


@pytest.fixture
def server(run, tmp_path, monkeypatch):
    """A project whose champion m-old (perfect, trained on 10 of this run's validation images, at 24 px) came from an
    earlier pipeline; this run's champion m-new always answers glioma."""
    import clearml

    import steps.promotion
    import steps.registry
    import steps.select_champion
    import steps.tracking

    paths = {"m-new": level_model(tmp_path / "new.keras", 32, constant=0),
             "m-b": level_model(tmp_path / "b.keras", 32, constant=1),
             "m-old": level_model(tmp_path / "old.keras", 24)}
    fake = Server(
        models={"m-old": {"tags": ["cnn_c", CHAMPION], "published": True, "task": "t-train-old",
                          "metadata": {"dataset_hash": "other"}},
                "m-new": {"tags": ["cnn_a"], "published": False, "task": "t-train-new"},
                "m-b": {"tags": ["cnn_b"], "published": False, "task": "t-train-b"}},
        tasks={"t-train-old": task("t-train-old", "train_cnn_c", parent="p-old"),
               "p-old": task("p-old", "brain-tumor-mri", dag={"register_dataset": {"executed": "t-register-old"}}),
               "t-register-old": task("t-register-old", "register_dataset", parent="p-older", artifacts={
                   "split manifest": artifact(holder_manifest(run, tmp_path, 10))})},
        files=paths)
    step_task = SimpleNamespace(is_offline=lambda: False, parent=None, set_parameter=lambda *a, **k: None,
                                upload_artifact=lambda *a, **k: None,
                                get_logger=lambda: SimpleNamespace(report_table=lambda *a, **k: None,
                                                                   report_image=lambda *a, **k: None))
    monkeypatch.setattr(clearml, "Model", fake.Model)
    monkeypatch.setattr(clearml, "Task", fake.Task)
    for module in (steps.tracking, steps.select_champion):
        monkeypatch.setattr(module, "current_task", lambda: step_task)
    for module in (steps.promotion, steps.select_champion):
        monkeypatch.setattr(module, "find_models", fake.find_models)
    def resolve(reference, project=None):
        return paths[reference]

    monkeypatch.setattr(steps.registry, "resolve_model", resolve)
    monkeypatch.setattr(steps.promotion, "resolve_model", resolve)
    return fake


def row(model, val_f1):
    return {"model": model, "family": "custom_cnn", "filters": "32-64", "kernel": "3x3", "dropout": 0.3, "batch": 32,
            "params_total": 100, "params_trainable": 100, "train_acc": 0.9, "val_acc": 0.8, "val_loss": 0.5,
            "val_macro_f1": val_f1, "val_macro_f1_low": val_f1 - 0.1, "val_macro_f1_high": val_f1 + 0.1,
            "val_glioma_recall": 0.8, "test_acc": 0.8, "test_macro_f1": 0.8, "epochs_run": 3, "train_seconds": 1.0}


ROWS = [row("cnn_a", 0.9), row("cnn_b", 0.8)]
REFS = {"cnn_a": "m-new", "cnn_b": "m-b"}


def test_a_worse_champion_does_not_take_the_tag(server, run, capsys):
    """The defect: crown() moved the tag to any run's champion, however bad."""
    from steps.select_champion import select_champion

    returned = select_champion(ROWS, REFS, [], str(run.dir), "val_macro_f1", "Brain Tumor MRI", "if-better")
    assert server.tagged(CHAMPION) == {"m-old"}  # the holder keeps it
    assert server.tagged(CANDIDATE) == {"m-new"} and server.models["m-new"]["published"]
    promotion = json.loads((run.dir / "champion.json").read_text())["promotion"]
    val = int(np.sum(run.prepared.splits == "val"))
    assert (promotion["crown"], promotion["holder"], promotion["images"]) == (False, "m-old", val - 10)
    assert promotion["high"] < 0
    assert f"Promotion (if-better): {promotion['why']}" in capsys.readouterr().out
    assert "promotion" not in returned  # the DAG declares the step's results


def test_promote_always_moves_the_tag(server, run):
    from steps.select_champion import select_champion

    select_champion(ROWS, REFS, [], str(run.dir), "val_macro_f1", "Brain Tumor MRI", "always")
    assert server.tagged(CHAMPION) == {"m-new"} and server.tagged(CANDIDATE) == set()
    assert server.models["m-new"]["published"]


def test_an_equal_champion_takes_the_tag(server, run, tmp_path):
    """As good as the holder (both perfect) on the images neither trained on: a noise-level difference crowns."""
    from steps.promotion import promotion

    server.files["m-new"] = level_model(tmp_path / "new.keras", 32)
    decision = promotion("if-better", "m-new", server.files["m-new"], run.dir, "Brain Tumor MRI", {})
    assert decision["crown"] and decision["difference"] == 0 and decision["images"] >= 20


def test_too_few_images_neither_trained_on(server, run, tmp_path):
    from steps.promotion import promotion

    val = int(np.sum(run.prepared.splits == "val"))
    server.tasks["t-register-old"].artifacts["split manifest"] = artifact(holder_manifest(run, tmp_path, val - 5))
    decision = promotion("if-better", "m-new", server.files["m-new"], run.dir, "Brain Tumor MRI", {})
    assert (decision["crown"], decision["images"]) == (False, 5) and "only 5 validation images" in decision["why"]


def test_without_the_holders_manifest_only_the_same_split_is_comparable(server, run):
    from steps.promotion import promotion

    server.models["m-old"]["task"] = "t-local"  # a local run tracked on the server: no pipeline, no manifest
    server.tasks["t-local"] = task("t-local", "train_cnn_c",
                                   parameters={"kwargs/seed": "0", "kwargs/val_fraction": "0.3"})
    data = {"dataset_hash": "this", "seed": 0, "val_fraction": 0.3, "test_fraction": 0.2}
    other = promotion("if-better", "m-new", server.files["m-new"], run.dir, "p", data)
    assert not other["crown"] and "trained on other data" in other["why"]
    server.models["m-old"]["metadata"]["dataset_hash"] = "this"
    same = promotion("if-better", "m-new", server.files["m-new"], run.dir, "p", data)
    val = int(np.sum(run.prepared.splits == "val"))
    assert same["images"] == val and same["high"] < 0  # every validation image: the holder's train split is this one
    reseeded = promotion("if-better", "m-new", server.files["m-new"], run.dir, "p", {**data, "seed": 7})
    assert not reseeded["crown"] and "its split differs from this run's (seed)" in reseeded["why"]


def test_the_register_step_is_found_among_the_pipelines_children(server, run):
    """A pipeline whose recorded DAG does not name the step: its child task of that name."""
    from steps.promotion import holder_manifest as find

    server.tasks["p-old"].get_configuration_object_as_dict = lambda section: None
    server.tasks["t-register-old"].parent = "p-old"
    manifest, training = find("m-old")
    assert training.name == "train_cnn_c" and manifest.is_file()
    assert str(manifest) == server.tasks["t-register-old"].artifacts["split manifest"].get_local_copy()


def test_on_an_agent_without_the_run_images_they_are_re_derived_from_the_dataset_version(run, tmp_path, monkeypatch):
    """select_champion's folder holds the restored manifest, not the images it lists: the same split comes back from
    the run's dataset version, so the comparison images are the same ones."""
    import steps.registry
    from brain_tumor.data import dataset_hash
    from steps.promotion import Incomparable, run_images

    (tmp_path / "data").rename(tmp_path / "fetched")  # the manifest's files are not on this machine
    monkeypatch.setattr(steps.registry, "dataset_local_copy", lambda dataset_id: tmp_path / "fetched")
    data = {"dataset_hash": dataset_hash(run.prepared.scanned), "dataset_id": "ds-1", "val_fraction": 0.3,
            "test_fraction": 0.2, "seed": 0}
    again = run_images(run.dir, 24, False, data)
    val = [s for s, split in zip(run.prepared.scanned.sha256s, run.prepared.splits) if split == "val"]
    assert [s for s, split in zip(again.scanned.sha256s, again.splits) if split == "val"] == val
    assert again.scanned.image_size == 24 and (run.dir / "cache" / "promotion" / "manifest.csv").is_file()
    with pytest.raises(Incomparable, match="no dataset version to fetch them from"):
        run_images(run.dir, 24, False, {**data, "dataset_id": None})
