"""A training's checkpoint on the server: uploaded after every epoch (in the background) as its task's artifact, and
restored by a retry of the same task on another agent, which then resumes where the first attempt stopped."""

from __future__ import annotations

from pathlib import Path

CHECKPOINT = "checkpoint"


def upload_checkpoint(task, folder: Path) -> None:
    """A training's checkpoint folder (every stage's subfolder) as the artifact `checkpoint` of its task, uploaded
    before this returns: a retry of the task (on a fresh agent) resumes from it. Stored, not deflated: weights barely
    compress, and a ResNet50's take seconds to deflate."""
    import tempfile
    import zipfile

    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / f"{CHECKPOINT}.zip"  # the same name, so the same address, every epoch
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED, allowZip64=True) as zipped:
            for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
                zipped.write(path, path.relative_to(folder).as_posix())
        task.upload_artifact(CHECKPOINT, artifact_object=str(archive), wait_on_upload=True)


class CheckpointUploads:
    """A training's `on_checkpoint`: uploads its checkpoint folder after every epoch without holding training up.
    Each call snapshots the folder (hard links: checkpoint.py only ever replaces its files whole) and returns; one
    upload at a time runs in the background, always of the newest snapshot (one superseded while it waited is
    dropped, so uploads never pile up or land out of order). `wait()` once training is over: the last checkpoint is
    then on the server."""

    def __init__(self, task, folder: Path):
        import tempfile
        import threading

        self.task, self.folder = task, Path(folder)
        self.folder.parent.mkdir(parents=True, exist_ok=True)  # the snapshots beside it: hard links need one disk
        self._scratch = Path(tempfile.mkdtemp(prefix=".checkpoint-uploads-", dir=self.folder.parent))
        self._state = threading.Condition()
        self._newest: Path | None = None  # the snapshot waiting for its upload
        self._uploading = False
        self._snapshots = 0

    def __call__(self, saved: Path | None = None) -> None:
        """After a save (of `saved`, one stage's subfolder): the whole folder goes up, in the background."""
        import shutil
        import threading

        snapshot = self._snapshot()
        with self._state:
            superseded, self._newest = self._newest, snapshot
            start = not self._uploading
            self._uploading = True
        if superseded is not None:
            shutil.rmtree(superseded, ignore_errors=True)
        if start:
            threading.Thread(target=self._upload_newest, name="checkpoint upload", daemon=True).start()

    def _snapshot(self) -> Path:
        import os
        import shutil

        self._snapshots += 1
        target = self._scratch / str(self._snapshots)
        for path in self.folder.rglob("*"):
            if path.is_file():
                copy = target / path.relative_to(self.folder)
                copy.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(path, copy)
                except OSError:  # another file system, or one without hard links
                    shutil.copy2(path, copy)
        return target

    def _upload_newest(self) -> None:
        import shutil

        while True:
            with self._state:
                snapshot, self._newest = self._newest, None
                if snapshot is None:
                    self._uploading = False
                    self._state.notify_all()
                    return
            try:
                upload_checkpoint(self.task, snapshot)
            except Exception as error:  # a lost upload must not fail the training it only insures
                print(f"warning: the checkpoint upload failed ({error}): a retry of this task would resume from an "
                      f"earlier epoch", flush=True)
            finally:
                shutil.rmtree(snapshot, ignore_errors=True)

    def wait(self) -> None:
        """Until the newest checkpoint is uploaded (and ClearML has sent what it queued)."""
        import shutil

        with self._state:
            self._state.wait_for(lambda: not self._uploading)
        self.task.flush(wait_for_uploads=True)
        shutil.rmtree(self._scratch, ignore_errors=True)


def restore_checkpoint(task, folder: Path) -> bool:
    """Unpack the task's checkpoint artifact (left by an earlier attempt of this task) into `folder`, unless a
    checkpoint is already there. Returns whether one was restored."""
    import zipfile

    if folder.is_dir() or CHECKPOINT not in task.artifacts:
        return False
    local = task.artifacts[CHECKPOINT].get_local_copy(extract_archive=False)
    with zipfile.ZipFile(local) as archive:
        archive.extractall(folder)
    print(f"Restored the checkpoint of an earlier attempt of this task into {folder}")
    return True
