"""What a user sees in ClearML's web UI: final scores in the summary table (single values), report.html shown on the
step's and the pipeline's page, dataset versions uploaded where the pipeline's output_uri says, and every step's task
tagged. Fakes of the SDK's Task and Logger record what the steps call; the tags of a local run are read back from a
real offline task."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import steps.tracking
from steps.tracking import report_html, report_single_values, task_tags


class Logger:
    def __init__(self):
        self.calls = []

    def __getattr__(self, method):
        return lambda *args, **kwargs: self.calls.append((method, args, kwargs))

    def named(self, method):
        return [(args, kwargs) for m, args, kwargs in self.calls if m == method]


class FakeTask:
    def __init__(self, offline=True, parent=None):
        self.logger, self.offline, self.parent, self.artifacts = Logger(), offline, parent, {}
        self.uploaded = []

    def get_logger(self):
        return self.logger

    def is_offline(self):
        return self.offline

    def upload_artifact(self, name, artifact_object=None, **kwargs):
        self.uploaded.append(name)

    def set_parameter(self, *args, **kwargs):
        pass


@pytest.fixture
def task(monkeypatch):
    task = FakeTask()
    monkeypatch.setattr(steps.tracking, "current_task", lambda: task)
    return task


# ---------------------------------------------------------------- final scores

def test_final_scores_are_single_values_named_by_their_model(task):
    report_single_values("cnn_a", {"val accuracy": 0.91, "test macro F1": None, "val ECE": np.float32(0.05)})
    assert task.logger.named("report_single_value") == [(("cnn_a val accuracy", 0.91), {}),
                                                        (("cnn_a val ECE", pytest.approx(0.05)), {})]
    assert not task.logger.named("report_scalar")


def test_the_baselines_report_their_final_scores_as_single_values(task, monkeypatch, tmp_path):
    import steps.baselines as step
    from brain_tumor.baselines import BASELINES

    prepared = SimpleNamespace(scanned=SimpleNamespace(class_names=["a", "b"]), splits=np.array(["train", "val"]),
                               subset=lambda split: (np.zeros((1, 4, 4, 3), np.uint8), np.zeros(1, int)))
    monkeypatch.setattr(step, "step_data", lambda *args, **kwargs: prepared)
    monkeypatch.setattr(step, "fit_and_predict", lambda *args: {"train": None, "val": None})
    monkeypatch.setattr(step, "evaluate_predictions", lambda *args: {"accuracy": 0.5, "macro_f1": 0.4})
    monkeypatch.setattr(step, "comparison_row", lambda training, metrics: {"model": training["model"]})
    step.baselines("m.csv", "h", str(tmp_path), 32, "", 0.15, 0.15, 0)
    names = {args[0] for args, _ in task.logger.named("report_single_value")}
    assert names == {f"baseline_{b} {score}" for b in BASELINES for score in ("val accuracy", "val macro F1")}
    assert not task.logger.named("report_scalar")


def test_the_evaluation_reports_its_final_scores_as_single_values(task, monkeypatch, tmp_path):
    import steps.evaluate as step

    prepared = SimpleNamespace(scanned=SimpleNamespace(class_names=["glioma", "none"]),
                               subset=lambda split: (None, np.zeros(2, int)))
    data = SimpleNamespace(get=lambda size, crop: (prepared, np.zeros(2, bool), []), dataset_hash="h", seed=0)
    row = {"val_acc": 0.9, "val_macro_f1": 0.8, "val_macro_f1_low": 0.7, "val_macro_f1_high": 0.85,
           "test_acc": 0.88, "test_macro_f1": 0.79}
    monkeypatch.setattr(step, "predict_splits", lambda model, prepared: {"val": None})
    monkeypatch.setattr(step, "evaluate_splits", lambda *args: {"calibration": {"val": {"ece": 0.03}}})
    monkeypatch.setattr(step, "gradcam_background", lambda *args, **kwargs: {
        "per_class": {"glioma": {"mean": 0.2}, "none": {"mean": 0.1}}, "flagged": []})
    monkeypatch.setattr(step, "predictions_frame", lambda *args: SimpleNamespace(to_csv=lambda *a, **k: None))
    monkeypatch.setattr(step, "figures", SimpleNamespace(heldout_split=lambda metrics: "val",
                                                         evaluation=lambda *args: {},
                                                         report_dir=lambda run_dir: Path(run_dir)))
    monkeypatch.setattr(step, "comparison_row", lambda training, metrics: row)
    step.assess(None, "cnn_a", {"image_size": 32}, data, str(tmp_path))
    assert dict(args for args, _ in task.logger.named("report_single_value")) == {
        "cnn_a val accuracy": 0.9, "cnn_a val macro F1": 0.8, "cnn_a test accuracy": 0.88,
        "cnn_a test macro F1": 0.79, "cnn_a val ECE": 0.03,
        "cnn_a Grad-CAM background share glioma": 0.2, "cnn_a Grad-CAM background share none": 0.1}
    assert not task.logger.named("report_scalar")


# ---------------------------------------------------------------- report.html in the web UI

def row(model, val_f1, params):
    return {"model": model, "family": "custom_cnn", "filters": "32-64-128", "kernel": "3x3", "dropout": 0.3,
            "batch": 32, "params_total": params, "params_trainable": params, "train_acc": 0.9, "val_acc": 0.8,
            "val_loss": 0.5, "val_macro_f1": val_f1, "test_acc": 0.7, "test_macro_f1": 0.7, "epochs_run": 3,
            "train_seconds": 1.0}


def test_report_html_is_shown_on_the_steps_and_the_pipelines_page(monkeypatch, tmp_path):
    import clearml

    import steps.select_champion as step

    rows = [row("cnn_a", 0.8, 1000), row("cnn_c", 0.9, 2000)]
    refs = {}
    for r in rows:  # local model files: nothing to publish in a registry
        refs[r["model"]] = str(tmp_path / f"{r['model']}.keras")
        Path(refs[r["model"]]).write_bytes(b"model")
    task, pipeline = FakeTask(offline=False, parent="pipeline-id"), FakeTask(offline=False)
    monkeypatch.setattr(steps.tracking, "current_task", lambda: task)
    monkeypatch.setattr(step, "current_task", lambda: task)
    monkeypatch.setattr(clearml.Task, "get_task", staticmethod(lambda task_id: {"pipeline-id": pipeline}[task_id]))
    monkeypatch.setattr(step, "missing_inputs", lambda out: [])  # every step's files are here
    monkeypatch.setattr(step, "build_report", lambda out: (Path(out) / "report.html").write_text("<html/>") and
                        Path(out) / "report.html")
    step.select_champion(rows, refs, [], str(tmp_path / "run"), "val_macro_f1", "Brain Tumor MRI", "if-better")
    report = str(tmp_path / "run" / "report.html")
    for shown in (task, pipeline):
        assert shown.logger.named("report_media") == [(("report", "report.html"), {
            "iteration": 0, "local_path": report, "file_extension": ".html"})]
        assert "report" in shown.uploaded  # still downloadable as an artifact


def test_report_html_goes_to_the_task_it_is_given(task):
    other = FakeTask()
    report_html("report", "/run/report.html", task=other)
    assert other.logger.named("report_media") and not task.logger.named("report_media")


# ---------------------------------------------------------------- dataset versions where output_uri says

CREATED = []  # the FakeDataset versions, in order


class FakeDataset:
    def __init__(self):
        self.id, self.uploaded_to = f"v{len(CREATED) + 1}", "not uploaded"
        CREATED.append(self)

    @staticmethod
    def get(**kwargs):
        raise ValueError("no version yet")

    @classmethod
    def create(cls, **kwargs):
        return cls()

    def sync_folder(self, *args, **kwargs):
        pass

    def remove_files(self, *args, **kwargs):
        pass

    def upload(self, output_url=None, **kwargs):
        self.uploaded_to = output_url

    def finalize(self):
        pass


@pytest.mark.parametrize("output_uri, expected", [("s3://bucket/brain", "s3://bucket/brain"), ("", None)])
def test_a_dataset_version_is_uploaded_to_the_pipelines_output_uri(monkeypatch, tmp_path, output_uri, expected):
    import clearml

    from steps.registry import register_version

    monkeypatch.setattr(clearml, "Dataset", FakeDataset)
    layout = SimpleNamespace(train_dir=tmp_path / "Training", test_dir=tmp_path / "Testing")
    version = register_version(layout, "hash", "Brain Tumor MRI", output_uri=output_uri)
    assert CREATED[-1].id == version and CREATED[-1].uploaded_to == expected


def test_launch_uploads_its_dataset_versions_to_the_output_uri(monkeypatch, tmp_path):
    from pipelines import launch
    from pipelines.config import PipelineConfig

    registered = []
    monkeypatch.setattr(launch, "check_server", lambda queues: None)
    monkeypatch.setattr(launch, "data_layout", lambda config: "layout")
    monkeypatch.setattr(launch, "find_layout", lambda folder: "external layout")
    monkeypatch.setattr(launch, "folders", lambda path: [Path(path)])
    monkeypatch.setattr(launch, "scan", lambda layout, workers: layout)
    monkeypatch.setattr(launch, "dataset_hash", lambda scanned: f"hash of {scanned}")
    monkeypatch.setattr(launch, "register_version", lambda *args, **kwargs: registered.append(kwargs) or "v1")
    monkeypatch.setattr(launch.subprocess, "run", lambda *args, **kwargs: SimpleNamespace(returncode=0))
    external = tmp_path / "external"
    (external / "glioma_tumor").mkdir(parents=True)
    config = PipelineConfig(output_uri="s3://bucket/brain", external_dir=str(external))
    assert launch.launch(config, mode="draft") == 0
    assert registered == [{"output_uri": "s3://bucket/brain"}] * 2  # the data and the external folder


# ---------------------------------------------------------------- tags

def test_the_tags_of_a_steps_task():
    assert task_tags("register_dataset") == ["Brain Tumor", "Medical Imaging"]
    assert task_tags("train_cnn_c", "cnn_c") == ["Brain Tumor", "Medical Imaging", "CNN"]
    assert task_tags("train_efficientnetv2b0", "efficientnetv2b0") == ["Brain Tumor", "Medical Imaging",
                                                                       "Transfer Learning"]


OPEN = """
import json, sys
from steps.tracking import open_task
task = open_task(sys.argv[1], json.loads(sys.argv[2]), offline=True)
task.close()
"""


@pytest.mark.parametrize("name, parameters, family", [("train_resnet50", {"model": "resnet50"}, "Transfer Learning"),
                                                       ("train_cnn_a", {"model": "cnn_a"}, "CNN"),
                                                       ("evaluate", {"run_dir": "runs/x"}, None)])
def test_a_local_run_tags_each_steps_task(tmp_path, name, parameters, family):
    env = {**os.environ, "CLEARML_CACHE_DIR": str(tmp_path / "clearml"), "HOME": str(tmp_path)}
    for key in ("CLEARML_API_HOST", "CLEARML_API_ACCESS_KEY", "CLEARML_API_SECRET_KEY"):
        env.pop(key, None)
    result = subprocess.run([sys.executable, "-c", OPEN, name, json.dumps(parameters)], capture_output=True,
                            text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    (session,) = (tmp_path / "clearml" / "offline").glob("*.zip")
    stored = json.loads(zipfile.ZipFile(session).read("task.json"))
    assert sorted(stored["tags"]) == sorted(["Brain Tumor", "Medical Imaging", *([family] if family else [])])
