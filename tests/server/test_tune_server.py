"""`brain-tumor tune --server`: ClearML's optimizer (here, --controller-local) clones a finished pipeline run's training
step per trial with the trial's parameters, the trials train on the GPU queue's agent, and the study's best trial is
the one whose reported objective is highest."""

import csv

import pytest
import yaml

from pipelines.config import coerce, parameters
from pipelines.search_space import search_space

SEARCH = ("lr=log:1e-4:1e-2", "label_smoothing=uniform:0:0.2", "optimizer=choice:adamw,adam")
FIXED = {"epochs": "1", "image_size": "32", "allow_cpu": "True", "augment": "none", "batch_size": "16",
         "crop": "False", "normalize": "False", "schedule": "cosine", "warmup_epochs": "0", "patience": "2",
         "weight_decay": "0.0001"}


def reported(task: dict, title: str, series: str) -> float:
    """The highest value of a scalar the task reported, as the server keeps it (`last_metrics`)."""
    for variants in (task.get("last_metrics") or {}).values():
        for entry in variants.values():
            if entry.get("metric") == title and entry.get("variant") == series:
                return entry["max_value"]
    raise AssertionError(f"task {task['id']} reported no {title}/{series}: {task.get('last_metrics')}")


def test_a_server_study_clones_the_training_step_per_trial_and_keeps_the_best(launched, server, tmp_path):
    base = launched["steps"]["train_cnn_b"]
    out = tmp_path / "study"
    fixed = []
    for name, value in FIXED.items():
        flag = name.replace("_", "-")
        fixed += ([f"--{flag}"] if value == "True" else [f"--no-{flag}"] if value == "False"
                  else [f"--{flag}", value])
    done = server.cli("tune", "--server", "--controller-local", "--base-task", base["id"], "--model", "cnn_b",
                      "--trials", "2", "--concurrency", "2", *fixed,
                      *(a for s in SEARCH for a in ("--search", s)), "--project", server.project,
                      "--gpu-queue", server.queues["gpu"], "--out", str(out), timeout=1500)
    assert done.returncode == 0, done.stdout[-4000:]
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 2, rows
    space = search_space({s.split("=")[0]: s.split("=")[1] for s in SEARCH}, set(FIXED))
    assert set(space) == {"lr", "label_smoothing", "optimizer"}  # the others are fixed by the options above
    by_name = {f.name: f for f in parameters()}
    gpu_workers = {w["id"] for w in server.api.call("workers.get_all")["workers"]
                   if server.queues["gpu"] in {q["name"] for q in w.get("queues") or []}}
    tasks = [server.api.task(row["task"]) for row in rows]
    chosen = []
    for task in tasks:
        assert task["id"] != base["id"]
        assert task["status"] == "completed", server.api.console(task["id"])[-3000:]
        assert task["last_worker"] in gpu_workers, task["last_worker"]  # trained on the GPU queue's agent
        params = server.api.parameters(task)
        assert params["kwargs/node"] == "train_cnn_b"
        for name, value in FIXED.items():  # the values the study fixed, on every trial
            assert coerce(by_name[name], params[f"kwargs/{name}"]) == coerce(by_name[name], value), name
        values = {name: coerce(by_name[name], params[f"kwargs/{name}"]) for name in space}
        assert all(space[name].contains(v) for name, v in values.items()), values
        chosen.append(tuple(values.values()))
    assert len(set(chosen)) == 2, chosen  # every trial tried other parameters
    objectives = {t["id"]: reported(t, "macro F1", "validation") for t in tasks}
    best = max(objectives, key=objectives.get)
    best_row = next(r for r in rows if r["task"] == best)
    assert abs(float(best_row["objective"]) - objectives[best]) < 1e-6
    written = yaml.safe_load((out / "best.yaml").read_text())
    best_params = server.api.parameters(server.api.task(best))
    for name in space:
        assert written[name] == coerce(by_name[name], best_params[f"kwargs/{name}"]), name
    assert written["epochs"] == 1 and written["image_size"] == 32
    assert f"task {best}" in (out / "best.yaml").read_text()
    # The test split is never read while tuning: the objective is a validation scalar, and no trial reports a test one
    for task in tasks:
        names = {e.get("metric") for v in (task.get("last_metrics") or {}).values() for e in v.values()}
        assert not any("test" in str(n).lower() for n in names), names


def test_a_remote_study_makes_its_base_task_and_runs_its_optimizer_on_the_services_agent(launched, server,
                                                                                        server_data, tmp_path):
    """Without --base-task the study first runs a pipeline of its one model on the same data (the same dataset
    version as `launched`), whose train step is the base. Without --controller-local the optimizer is then a task
    of its own on the services queue; its one trial trains on the GPU queue, and the optimizer task holds the table
    and the best trial. The command only creates and enqueues that task after the base run (the SDK's repository
    detection once held it there for five minutes)."""
    done = server.cli("tune", "--server", "--data", str(server_data), "--model", "cnn_b", "--trials", "1",
                      "--epochs", "1", "--image-size", "32", "--allow-cpu", "--search", "lr=log:1e-4:1e-2",
                      "--project", server.project, "--gpu-queue", server.queues["gpu"],
                      "--controller-queue", server.queues["services"], "--out", str(tmp_path / "study"), timeout=600)
    assert done.returncode == 0, done.stdout[-4000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("Base task: train_cnn_b of pipeline "))
    pipeline, base_id = line.split()[5].rstrip(":"), line.split()[-1]
    assert pipeline != launched["controller"]["id"]
    made = server.api.steps_of(pipeline)
    assert [name for name in made if name.startswith("train_")] == ["train_cnn_b"], sorted(made)
    assert made["train_cnn_b"]["id"] == base_id and made["train_cnn_b"]["status"] == "completed"
    dataset = {n: server.api.parameters(steps["register_dataset"])["kwargs/dataset_id"]
               for n, steps in (("made", made), ("launched", launched["steps"]))}
    assert dataset["made"] == dataset["launched"] and len(dataset["made"]) == 32, dataset  # the same version
    optimizer_id = next(line.split()[2].rstrip(":") for line in done.stdout.splitlines()
                        if line.startswith("Optimizer task "))
    optimizer = server.api.wait(optimizer_id, timeout=900)
    assert optimizer["status"] == "completed", server.api.console(optimizer_id)[-4000:]
    assert optimizer["type"] == "optimizer"
    services = {w["id"] for w in server.api.call("workers.get_all")["workers"]
                if server.queues["services"] in {q["name"] for q in w.get("queues") or []}}
    assert optimizer["last_worker"] in services
    assert "trials" in server.api.artifacts(optimizer)
    best = server.api.task(server.api.parameters(optimizer)["best/task"])
    parent = best.get("parent")
    assert best["status"] == "completed" and (parent.get("id") if isinstance(parent, dict) else parent) == optimizer_id
    objective = float(server.api.parameters(optimizer)["best/objective"])
    assert reported(best, "macro F1", "validation") == pytest.approx(objective)
