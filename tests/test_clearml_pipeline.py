"""The ClearML runner: the real PipelineController, built offline from the one DAG declaration, read back through
get_pipeline_dag(). It runs in a subprocess so its offline task never becomes this test process's current task."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from pipelines.clearml_pipeline import run_step
from pipelines.dag import PARAMETERS

BUILD = """
import json, sys
from clearml import Task
Task.set_offline(True)
Task._report_subprocess_enabled = False  # as steps/tracking.py does offline: no 10 s wait at exit
from pipelines.clearml_pipeline import build_controller
controller = build_controller({"epochs": 7, "models": "cnn_a,resnet50"}, gpu_queue="gpu-a100", cpu_queue="cpu")
dag = {name: {"parents": node.parents, "queue": node.queue, "cache": node.cache_executed_step,
              "parameters": node.parameters, "monitor_metrics": node.monitor_metrics,
              "monitor_models": node.monitor_models}
       for name, node in controller.get_pipeline_dag().items()}
print("DAG=" + json.dumps({"dag": dag, "parameters": controller.get_parameters()}, default=str))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    env = {**os.environ, "CLEARML_CACHE_DIR": str(tmp_path_factory.mktemp("clearml"))}
    env.pop("CLEARML_API_HOST", None)
    result = subprocess.run([sys.executable, "-c", BUILD], capture_output=True, text=True, env=env, timeout=300)
    line = next((x for x in result.stdout.splitlines() if x.startswith("DAG=")), None)
    assert line, result.stdout + result.stderr
    return json.loads(line[4:])


def test_one_node_per_step_and_one_training_node_per_model(built):
    dag = built["dag"]
    assert list(dag) == ["register_dataset", "class_weights", "train_cnn_a", "train_cnn_b", "train_cnn_c",
                         "train_resnet50", "evaluate", "select_champion"]
    assert dag["register_dataset"]["parents"] == []
    assert dag["train_cnn_b"]["parents"] == ["register_dataset", "class_weights"]
    assert dag["evaluate"]["parents"] == ["train_cnn_a", "train_cnn_b", "train_cnn_c", "train_resnet50"]
    assert dag["select_champion"]["parents"] == ["evaluate"]


def test_queues_cache_and_monitoring(built):
    dag = built["dag"]
    assert {n: d["queue"] for n, d in dag.items() if n.startswith("train_")} == {
        "train_cnn_a": "gpu-a100", "train_cnn_b": "gpu-a100", "train_cnn_c": "gpu-a100", "train_resnet50": "gpu-a100"}
    assert {d["queue"] for n, d in dag.items() if not n.startswith("train_")} == {"cpu"}
    assert {n for n, d in dag.items() if d["cache"]} == {"register_dataset", "class_weights"}
    assert dag["train_cnn_a"]["monitor_metrics"] == [["accuracy", "validation"], ["loss", "validation"]]
    assert dag["train_resnet50"]["monitor_models"] == ["brain-tumor resnet50"]  # the name train_model registers


def test_parameter_references_resolve_at_run_time(built):
    train = built["dag"]["train_resnet50"]["parameters"]
    assert train["kwargs/epochs"] == "${pipeline.epochs}"
    assert train["kwargs/resnet_weights"] == "${pipeline.resnet_weights}"
    assert train["kwargs/selected_models"] == "${pipeline.models}"  # the UI-edited list decides who trains
    assert train["kwargs/step_model"] == "resnet50"
    assert train["kwargs_artifacts/manifest"] == "${register_dataset.id}.manifest"
    assert train["kwargs_artifacts/class_weights"] == "${class_weights.id}.class_weights"
    evaluate = built["dag"]["evaluate"]["parameters"]
    assert evaluate["kwargs_artifacts/trained_cnn_c"] == "${train_cnn_c.id}.trained"


def test_controller_parameters_and_defaults(built):
    parameters = built["parameters"]
    assert parameters["epochs"] == 7 and parameters["models"] == "cnn_a,resnet50"
    assert parameters["gpu_queue"] == "gpu-a100" and parameters["cpu_queue"] == "cpu"
    for name, (default, _) in PARAMETERS.items():
        if name not in ("epochs", "models"):
            assert parameters[name] == default, name


def test_run_step_skips_a_model_left_out_of_the_list():
    assert run_step("steps.train_model:train_model", '["trained", "dataset_hash"]', step_model="cnn_c",
                    selected_models="cnn_a, resnet50") == (None, None)


def test_run_step_returns_results_in_declared_order(tmp_path):
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"file": ["a", "b", "c"], "class": ["x", "y", "y"], "label": [0, 1, 1],
                  "split": ["train"] * 3, "phash": ["0"] * 3, "sha256": ["0"] * 3, "group": [0, 1, 2]}).to_csv(
        manifest, index=False)
    weights, digest = run_step("steps.class_weights:class_weights", '["class_weights", "dataset_hash"]',
                               manifest=str(manifest), dataset_hash="abc", run_dir=str(tmp_path))
    assert weights == pytest.approx({"x": 1.5, "y": 0.75}) and digest == "abc"
