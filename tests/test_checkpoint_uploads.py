"""A training's checkpoint goes up after every epoch without holding the training up (steps/checkpoints.py
CheckpointUploads): a slow fake upload in place of ClearML's, the checkpoint folder written as checkpoint.py writes it
(each file replaced whole)."""

import json
import threading
import time
import zipfile
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import pytest

from brain_tumor.files import write_text
from brain_tumor.recipe import SEED
from pipelines.config import PipelineConfig
from steps import checkpoints

SLOW = 0.4  # seconds each fake upload takes


class SlowTask:
    """A task whose artifact uploads take SLOW seconds (or until `release` is set), recording what each one held."""

    def __init__(self, release: threading.Event | None = None):
        self.release, self.started = release, threading.Event()
        self.uploads, self.flushes, self.artifacts, self.active = [], [], {}, 0

    def is_offline(self):
        return False

    def upload_artifact(self, name, artifact_object, wait_on_upload=False):
        self.active += 1
        assert self.active == 1, "two checkpoint uploads at once"
        start = time.monotonic()
        self.started.set()
        with zipfile.ZipFile(artifact_object) as archive:  # read at the start: the file must outlive the upload
            held = {n: archive.read(n).decode() for n in archive.namelist()}
        if self.release is not None:
            assert self.release.wait(30), "the test never released the upload"
        else:
            time.sleep(SLOW)
        assert Path(artifact_object).is_file()  # still there at the end of the upload
        self.uploads.append({"name": name, "wait": wait_on_upload, "files": held, "start": start,
                             "end": time.monotonic()})
        self.active -= 1
        return True

    def flush(self, wait_for_uploads=False):
        self.flushes.append(wait_for_uploads)


def save_epoch(folder: Path, epoch: int, stage: str = "train") -> Path:
    """What Checkpoint.save leaves: every file written to a temporary name and renamed."""
    (folder / stage).mkdir(parents=True, exist_ok=True)
    write_text(folder / stage / "weights.weights.h5", f"weights {epoch}")
    write_text(folder / stage / "state.json", json.dumps({"epoch": epoch}))
    return folder / stage


def epoch_of(upload: dict) -> int:
    return json.loads(upload["files"]["train/state.json"])["epoch"]


def test_each_epoch_returns_at_once_and_the_newest_checkpoint_goes_up_in_order(tmp_path):
    release = threading.Event()
    task = SlowTask(release)
    folder = tmp_path / "checkpoint"
    uploads = checkpoints.CheckpointUploads(task, folder)
    uploads(save_epoch(folder, 1))  # returns while its upload is blocked
    assert task.started.wait(10)
    start = time.monotonic()
    uploads(save_epoch(folder, 2))  # waits behind epoch 1 ...
    uploads(save_epoch(folder, 3))  # ... and is superseded by epoch 3 before its turn
    assert time.monotonic() - start < 5 and not task.uploads  # training went on; nothing finished yet
    release.set()
    uploads.wait()
    assert [epoch_of(u) for u in task.uploads] == [1, 3]
    assert task.uploads[1]["files"]["train/weights.weights.h5"] == "weights 3"  # one epoch's files, not a mix
    assert all(u["name"] == checkpoints.CHECKPOINT and u["wait"] for u in task.uploads)
    assert task.flushes == [True]
    assert not uploads._scratch.exists()  # the snapshots are gone


def test_a_slow_upload_does_not_slow_the_epochs(tmp_path):
    task = SlowTask()
    folder = tmp_path / "checkpoint"
    uploads = checkpoints.CheckpointUploads(task, folder)
    took = []
    for epoch in range(1, 4):
        start = time.monotonic()
        uploads(save_epoch(folder, epoch))
        took.append(time.monotonic() - start)
    assert max(took) < SLOW / 2, took  # the upload took SLOW seconds; the callback did not wait for it
    uploads.wait()
    assert epoch_of(task.uploads[-1]) == 3
    assert all(a["end"] <= b["start"] for a, b in zip(task.uploads, task.uploads[1:]))  # one after the other


def test_a_failed_upload_warns_and_the_training_goes_on(tmp_path, capsys):
    class Failing(SlowTask):
        def upload_artifact(self, *args, **kwargs):
            raise ConnectionError("files server unreachable")

    uploads = checkpoints.CheckpointUploads(Failing(), tmp_path / "checkpoint")
    uploads(save_epoch(tmp_path / "checkpoint", 1))
    uploads.wait()
    assert "warning: the checkpoint upload failed (files server unreachable)" in capsys.readouterr().out


def test_the_training_step_uploads_the_whole_checkpoint_folder_and_waits_once_at_the_end(tmp_path, monkeypatch):
    """train_model wires it: the folder restore_checkpoint fills (every stage's subfolder), uploads in the
    background while the epochs go on, and one wait before the step ends, even when the training fails."""
    import steps.train_model as step

    task = SlowTask()
    took = []

    def train_and_save(prepared, model, config, out, weights, on_checkpoint, **kwargs):
        for epoch in range(1, 4):
            saved = save_epoch(out / "checkpoint", epoch)
            start = time.monotonic()
            on_checkpoint(saved)
            took.append(time.monotonic() - start)
        assert not task.flushes  # nobody waited during the training
        raise RuntimeError("killed after epoch 3")

    monkeypatch.setattr(step, "current_task", lambda: task)
    monkeypatch.setattr(step, "step_data", lambda *a, **k: SimpleNamespace(
        scanned=SimpleNamespace(class_names=["glioma_tumor", "no_tumor"])))
    monkeypatch.setattr(step, "train_and_save", train_and_save)
    knobs = {name: getattr(PipelineConfig(), name) for name in asdict(SEED)}
    with pytest.raises(RuntimeError, match="killed after epoch 3"):
        step.train_model("cnn_a", "manifest.csv", "h", {"glioma_tumor": 1.0, "no_tumor": 1.0}, str(tmp_path), 32,
                         1, "", 0.15, 0.15, "float32", "none", True, "tuned", **knobs)
    assert max(took) < SLOW / 2, took
    assert task.flushes == [True]  # waited once, before the failure reached the runner
    last = task.uploads[-1]["files"]
    assert set(last) == {"train/state.json", "train/weights.weights.h5"}  # as restore_checkpoint unpacks it
    assert json.loads(last["train/state.json"])["epoch"] == 3
