"""Faults, provoked for real on synthetic data: a training killed with SIGKILL resumes; a second run into a folder in
use stops at once; SIGTERM stops every step process and the same command resumes; damaged results and models are
redone; an unwritable folder or a full disk end with one message."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from brain_tumor.recipe import SEED
from pipelines.lock import RunLock


def command(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cli", "run", "--data", str(data), "--out", str(out), "--models", "cnn_b",
            "--image-size", "32", "--weights", "none", "--no-ensemble", *extra]


def step_processes(run_dir: Path) -> list[int]:
    """The pids of every process whose command line names this run folder (the step processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if str(run_dir) in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
    return found


def wait_for(condition, timeout: float = 300, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def checkpoint_epoch(run_dir: Path) -> int:
    with contextlib.suppress(OSError, ValueError):
        return json.loads((run_dir / "models" / "cnn_b" / "checkpoint" / "train" / "state.json").read_text())["epoch"]
    return 0


def test_a_killed_training_resumes_and_sigterm_leaves_no_step_process(pipeline_data, tmp_path):
    run_dir = tmp_path / "run"
    args = command(pipeline_data, run_dir, "--epochs", "12", "--patience", "12")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    wait_for(lambda: checkpoint_epoch(run_dir) >= 2, what="the second epoch's checkpoint")
    (training,) = [pid for pid in step_processes(run_dir) if pid != first.pid]
    os.kill(training, signal.SIGKILL)  # a crash, an OOM kill, a reboot: no chance to clean up
    assert first.wait(120) == 1
    assert "train_cnn_b (killed by signal 9)" in first.stdout.read()

    second = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    log = run_dir / "steps" / "train_cnn_b" / "log.txt"
    wait_for(lambda: log.is_file() and "Resuming after epoch" in log.read_text(), what="the resumed training")
    resumed_after = int(log.read_text().split("Resuming after epoch ")[1].split(":")[0])
    assert resumed_after >= 2
    # Another run into the same folder stops at once, naming the run that holds it.
    third = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    assert third.returncode == 2
    assert f"{run_dir} is in use by another run: process {second.pid}" in third.stderr
    # SIGTERM stops the run and every step process it started.
    wait_for(lambda: checkpoint_epoch(run_dir) > resumed_after, what="an epoch after resuming")
    second.send_signal(signal.SIGTERM)
    assert second.wait(60) == 128 + signal.SIGTERM
    assert step_processes(run_dir) == []
    assert "interrupted" in (run_dir / "summary.md").read_text()
    assert not (run_dir / ".lock").exists()

    final = subprocess.run(args, capture_output=True, text=True, timeout=900, env=env)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    history = json.loads((run_dir / "models" / "cnn_b" / "history.json").read_text())
    assert [row["epoch"] for row in history] == list(range(1, len(history) + 1))  # every epoch once
    assert len(history) == 12
    assert not (run_dir / "models" / "cnn_b" / "checkpoint").exists()  # the model is saved: nothing to resume

    # A damaged result and a truncated model are redone, with a warning, never a traceback.
    (run_dir / "steps" / "class_weights" / "result.json").write_text('{"result": {"class_w')
    model = run_dir / "models" / "cnn_b" / "model.keras"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    again = subprocess.run(args, capture_output=True, text=True, timeout=900, env=env)
    assert again.returncode == 0 and "Traceback" not in again.stderr
    assert "class_weights/result.json is unreadable (truncated?): running class_weights again" in again.stderr
    assert f"{model} is truncated or unreadable: running train_cnn_b again" in again.stderr
    statuses = {s["name"]: s["status"] for s in json.loads((run_dir / "run.json").read_text())["steps"]}
    assert statuses["register_dataset"] == "reused" and statuses["class_weights"] == "ran"
    assert statuses["train_cnn_b"] == "ran"


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".lock").write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "started": "then"}))
    with RunLock(tmp_path):
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    assert f"taking over {tmp_path / '.lock'}, left by process {dead.pid}" in capsys.readouterr().err
    assert not (tmp_path / ".lock").exists()


def test_a_training_stopped_after_its_second_epoch_resumes_at_the_third(learnable_data, tmp_path):
    from brain_tumor.data import find_layout, scan
    from brain_tumor.models import build_model
    from brain_tumor.training import TrainConfig, fit

    scanned = scan(find_layout(learnable_data), 32, progress=False)
    train = np.array(scanned.sources) == "train"
    data = (scanned.pixels[train], scanned.labels[train]), (scanned.pixels[~train], scanned.labels[~train])
    config = TrainConfig(replace(SEED, lr=1e-3, epochs=5, augment="none", patience=10), 32, 0, "none")
    seen = []

    def crash(folder):
        seen.append(json.loads((folder / "state.json").read_text())["epoch"])
        if seen[-1] == 2:
            raise KeyboardInterrupt  # as if killed right after the second epoch's checkpoint

    with pytest.raises(KeyboardInterrupt):
        fit(build_model("cnn_b", 32, 4), *data, 4, config, verbose=0, checkpoint=tmp_path, checkpoint_key="k",
            on_checkpoint=crash)
    history = fit(build_model("cnn_b", 32, 4), *data, 4, config, verbose=0, checkpoint=tmp_path,
                  checkpoint_key="k")
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5] and seen == [1, 2]
    fresh = fit(build_model("cnn_b", 32, 4), *data, 4, replace(config, recipe=replace(config.recipe, epochs=2)),
                verbose=0, checkpoint=tmp_path, checkpoint_key="other arguments")
    assert len(fresh) == 2  # a checkpoint of another training is never resumed


def test_an_unwritable_run_folder_is_one_message(pipeline_data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    mounted = False
    if os.geteuid() == 0:  # root writes through permission bits: make the folder read-only for real
        mounted = subprocess.run(["mount", "--bind", str(out), str(out)], capture_output=True).returncode == 0 and \
            subprocess.run(["mount", "-o", "remount,ro,bind", str(out)], capture_output=True).returncode == 0
        if not mounted:
            pytest.skip("cannot make a read-only folder here (root, no bind mount)")
    else:
        out.chmod(0o555)
    try:
        result = subprocess.run(command(pipeline_data, out), capture_output=True, text=True, timeout=300)
    finally:
        if mounted:
            subprocess.run(["umount", str(out)], capture_output=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"Cannot write to the run folder {out}" in result.stderr


def test_a_full_disk_is_one_message_and_finished_steps_stay(pipeline_data, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a small file system here")
    try:
        run = command(pipeline_data, disk / "run", "--epochs", "2")
        run[run.index("--models") + 1] = "cnn_a,cnn_b"  # two models: more to write than the disk holds
        result = subprocess.run(run, capture_output=True, text=True, timeout=900)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert "No space left on device" in result.stderr and str(disk / "run") in result.stderr
        statuses = {s["name"]: s["status"] for s in json.loads((disk / "run" / "run.json").read_text())["steps"]}
        assert statuses["register_dataset"] == "ran"  # kept, reusable once there is room
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_a_fault_in_the_scheduler_stops_the_step_processes_it_started(pipeline_data, tmp_path, monkeypatch):
    import pipelines.local_runner as runner
    from pipelines.config import PipelineConfig

    run_dir = tmp_path / "run"
    calls, sleep = [], time.sleep

    def broken_sleep(seconds):
        calls.append(seconds)
        if len(calls) == 20:  # register_dataset is running by now
            raise RuntimeError("a bug in the scheduler")
        sleep(seconds)

    monkeypatch.setattr(runner.time, "sleep", broken_sleep)
    config = PipelineConfig.from_values(data=str(pipeline_data), models="cnn_b", image_size=32, weights="none",
                                        run_dir=str(run_dir))
    with pytest.raises(RuntimeError, match="a bug in the scheduler"):
        runner.run_pipeline(config, quiet=True)
    assert step_processes(run_dir) == [] and not (run_dir / ".lock").exists()


CHECKPOINT = """
import sys
from pathlib import Path
from clearml import Task
Task.set_offline(True)
Task._report_subprocess_enabled = False
from steps.checkpoints import restore_checkpoint, upload_checkpoint
root = Path(sys.argv[1])
task = Task.init(project_name="p", task_name="train_cnn_b")
(root / "first" / "train").mkdir(parents=True)
(root / "first" / "train" / "state.json").write_text('{"epoch": 2}')
upload_checkpoint(task, root / "first")  # after an epoch, on the first attempt's agent
print("RESTORED=" + str(restore_checkpoint(task, root / "retry")))  # the retry, on a fresh agent
print("AGAIN=" + str(restore_checkpoint(task, root / "retry")))  # a checkpoint already there is kept
"""


def test_a_retried_training_task_gets_the_checkpoint_its_earlier_attempt_uploaded(tmp_path):
    env = {**os.environ, "CLEARML_CACHE_DIR": str(tmp_path / "clearml"), "HOME": str(tmp_path)}
    env.pop("CLEARML_API_HOST", None)
    result = subprocess.run([sys.executable, "-c", CHECKPOINT, str(tmp_path)], capture_output=True, text=True,
                            env=env, timeout=120)
    assert "RESTORED=True" in result.stdout and "AGAIN=False" in result.stdout, result.stderr
    assert (tmp_path / "retry" / "train" / "state.json").read_text() == '{"epoch": 2}'
