"""Every step as a ClearML agent runs it: in an empty working folder (a fresh container) that holds only the step's
arguments — a dataset reference instead of a data folder, upstream results as JSON, no earlier step's files — and
gone once the step ends. No server here: the dataset fetch and the model registry are injected (a folder plays the
server), and each step's offline ClearML task keeps its artifacts, which play the files server."""

import json
import os
import subprocess
import sys

from conftest import FAST

AGENTS = """
import json, shutil, sys
from pathlib import Path
from clearml import Task
Task.set_offline(True)
import steps.registry as registry
from pipelines.config import PipelineConfig
from pipelines.dag import expand
from pipelines.executor import execute
from pipelines.local_runner import resolve
from steps.tracking import open_task

server = Path(sys.argv[1])
config = PipelineConfig.from_values(json.loads(sys.argv[2]))

def dataset_local_copy(dataset_id):  # Dataset.get(...).get_local_copy() on a server
    assert dataset_id == "ds-1", dataset_id
    return server / "dataset"

def publish_model(task, path, record):  # OutputModel upload on a server: returns the model id
    (server / "models").mkdir(exist_ok=True)
    model_id = f"model-{record['model']}"
    shutil.copyfile(path, server / "models" / f"{model_id}.keras")
    return model_id

def resolve_model(reference):  # InputModel(id).get_local_copy() on a server
    return server / "models" / f"{reference}.keras"

registry.dataset_local_copy, registry.publish_model, registry.resolve_model = (
    dataset_local_copy, publish_model, resolve_model)
results, report = {}, {}
for node in expand(config.model_names()):
    agent = server.parent / "agents" / node.name
    agent.mkdir(parents=True)
    os.chdir(agent)
    kwargs = {key: resolve(value, config.values(), results) for key, value in node.kwargs.items()}
    task = open_task(node.name, {}, offline=True)
    result = execute(node.name, kwargs, share=True)
    task.close()
    results[node.name] = json.loads(json.dumps(result))  # what ClearML's JSON artifacts carry to the next step
    report[node.name] = sorted(str(p.relative_to(agent)) for p in agent.rglob("*") if p.is_file())
    os.chdir(server)
    if node.name != "select_champion":
        shutil.rmtree(agent)  # the container is gone
print("AGENTS=" + json.dumps({"results": results, "files": report}))
"""


def test_every_step_completes_on_a_fresh_agent(tmp_path):
    from brain_tumor.synthetic import plant_twins, write_dataset

    server = tmp_path / "server"
    data = write_dataset(server / "dataset", 30, 8, size=32, seed=5)
    plant_twins(data, 2, seed=5)
    values = {**FAST, "epochs": 1, "models": "cnn_b", "dataset_id": "ds-1", "run_dir": "runs/pipeline",
              "allow_cpu": True}  # this machine has no GPU
    env = {**os.environ, "CLEARML_CACHE_DIR": str(tmp_path / "clearml"), "HOME": str(tmp_path)}
    env.pop("CLEARML_API_HOST", None)
    run = subprocess.run([sys.executable, "-c", "import os\n" + AGENTS, str(server), json.dumps(values)],
                         capture_output=True, text=True, env=env, timeout=900)
    line = next((x for x in run.stdout.splitlines() if x.startswith("AGENTS=")), None)
    assert line, run.stdout[-3000:] + run.stderr[-5000:]
    out = json.loads(line[len("AGENTS="):])
    results, files = out["results"], out["files"]

    assert results["train_cnn_b"]["trained"]["model_ref"] == "model-cnn_b"  # through the registry, not a path
    assert results["select_champion"]["champion"] == "cnn_b"
    for name in ("register_dataset", "class_weights", "train_cnn_b", "evaluate"):
        assert results[name]["files"], name  # each step's run files went up as an artifact
    # The last step's folder: the upstream files restored from those artifacts, and what it made from them.
    last = set(files["select_champion"])
    for name in ("runs/pipeline/data_report.json", "runs/pipeline/report/leakage/leakage.json",
                 "runs/pipeline/models/cnn_b/training.json", "runs/pipeline/metrics/cnn_b.json",
                 "runs/pipeline/comparison.csv", "runs/pipeline/champion.json", "runs/pipeline/champion.keras",
                 "runs/pipeline/report/ensemble/selection.json", "runs/pipeline/report.html"):
        assert name in last, name
    report = (tmp_path / "agents" / "select_champion" / "runs" / "pipeline" / "report.html").read_text()
    for section in ('id="exploration"', 'id="leakage"', 'id="training"', 'id="evaluation"', 'id="conclusion"'):
        assert section in report
    assert "No ensemble: fewer than two trained models; trained models: cnn_b." in report  # the ensemble step's outcome
    assert not any(name.endswith(".keras") for name in files["evaluate"] if "models/" in name)  # via the registry


def test_a_training_step_that_sees_no_gpu_fails_clearly_unless_cpu_is_allowed(monkeypatch, tmp_path):
    import pytest
    import tensorflow as tf

    from brain_tumor.errors import UserError
    from steps.train_model import train_model

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    from dataclasses import asdict

    from brain_tumor.recipe import SEED

    arguments = dict(model="cnn_a", manifest=str(tmp_path / "absent.csv"), dataset_hash="h", class_weights={},
                     run_dir=str(tmp_path), image_size=32, seed=0, augment_on="none", dataset_id="",
                     val_fraction=0.15, test_fraction=0.15, precision="float32", recipe="seed", **asdict(SEED))
    with pytest.raises(UserError, match="sees no GPU.*allow_cpu=true"):
        train_model(**arguments, allow_cpu=False)
    with pytest.raises(UserError, match="manifest .* is not on this machine"):  # allowed: it goes on to the data
        train_model(**arguments, allow_cpu=True)
