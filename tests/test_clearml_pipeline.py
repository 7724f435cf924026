"""Contract tests for the ClearML runner, with no server: the real PipelineController built offline, and what the SDK
itself generates from it (step scripts, stored parameters, the controller's entry point), checked the way an agent
would use it. Builds run in subprocesses so their offline tasks never become this test process's current task."""

import json
import os
import py_compile
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pipelines.clearml_pipeline import LAUNCH_ENV, retry_transient, should_retry
from pipelines.config import PipelineConfig, parameters, type_name
from pipelines.executor import DETERMINISTIC, TRANSIENT, execute, failure_kind

BUILD = """
import json, sys
from clearml import Task
Task.set_offline(True)
Task._report_subprocess_enabled = False  # as steps/tracking.py does offline: no 10 s wait at exit
from pipelines.clearml_pipeline import build_controller
controller = build_controller(json.loads(sys.argv[1]))
nodes = {}
for name, node in controller._nodes.items():
    definition = json.loads(controller._task._get_configuration_text(name=name))
    nodes[name] = {"callback": name in controller._pre_step_callbacks, "parents": node.parents,
                   "queue": node.queue, "cache": node.cache_executed_step,
                   "parameters": node.parameters, "monitor_metrics": node.monitor_metrics,
                   "monitor_models": node.monitor_models, "script": definition["script"]["diff"],
                   "image": definition["container"]["image"], "output": definition["output"]["destination"],
                   "type": definition["type"]}
print("BUILT=" + json.dumps({"nodes": nodes, "output_uri": Task.current_task().output_uri,
                             "parameters": controller.get_parameters()}, default=str))
"""


def offline_env(tmp_path) -> dict:
    env = {**os.environ, "CLEARML_CACHE_DIR": str(tmp_path / "clearml"), "HOME": str(tmp_path)}
    for name in ("CLEARML_API_HOST", "CLEARML_API_ACCESS_KEY", "CLEARML_API_SECRET_KEY"):
        env.pop(name, None)
    return env


def build(tmp_path, values: dict) -> dict:
    result = subprocess.run([sys.executable, "-c", BUILD, json.dumps(values)], capture_output=True, text=True,
                            env=offline_env(tmp_path), timeout=300)
    line = next((x for x in result.stdout.splitlines() if x.startswith("BUILT=")), None)
    assert line, result.stdout + result.stderr
    return json.loads(line[len("BUILT="):])


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    return build(tmp_path_factory.mktemp("build"), {"models": "cnn_b,resnet50", "epochs": 7, "gpu_queue": "gpu-a100",
                                                    "cpu_queue": "cpu", "dataset_id": "ds1"})


def pre_main(script: str) -> str:
    return script[:script.index("if __name__ == '__main__':")]


@pytest.mark.parametrize("models", ["cnn_b", "cnn_a,cnn_c,resnet50"])
def test_every_generated_step_script_compiles_and_its_imports_run(tmp_path, models):
    built = build(tmp_path, {"models": models})
    assert list(built["nodes"]) == ["register_dataset", "class_weights", "baselines",
                                    *[f"train_{m}" for m in models.split(",")], "evaluate", "ensemble",
                                    "select_champion"]
    for name, node in built["nodes"].items():
        path = tmp_path / f"{name}.py"
        path.write_text(node["script"])
        py_compile.compile(str(path), doraise=True)  # a `from __future__` copied after the header would fail here
        # The script's header, its copied imports and function definitions, run as an agent would run them.
        head = tmp_path / f"{name}_head.py"
        head.write_text(pre_main(node["script"]) + "\nassert callable(run_step) and callable(from_json)\n")
        result = subprocess.run([sys.executable, str(head)], capture_output=True, text=True, cwd=tmp_path,
                                env=offline_env(tmp_path), timeout=120)
        assert result.returncode == 0, result.stderr
        assert "Import error" not in result.stdout + result.stderr


def test_nodes_for_exactly_the_chosen_models_on_the_chosen_queues(two_models):
    nodes = two_models["nodes"]
    assert list(nodes) == ["register_dataset", "class_weights", "baselines", "train_cnn_b", "train_resnet50",
                           "evaluate", "ensemble", "select_champion"]
    assert nodes["evaluate"]["parents"] == ["train_cnn_b", "train_resnet50"]
    assert {n: d["queue"] for n, d in nodes.items()} == {
        "register_dataset": "cpu", "class_weights": "cpu", "baselines": "cpu", "train_cnn_b": "gpu-a100",
        "train_resnet50": "gpu-a100", "evaluate": "cpu", "ensemble": "cpu", "select_champion": "cpu"}
    assert all(d["cache"] for d in nodes.values())  # the local runner's reuse rule: same code, arguments, data
    assert nodes["train_cnn_b"]["monitor_metrics"] == [["accuracy", "validation"], ["loss", "validation"]]
    assert nodes["train_resnet50"]["monitor_models"] == ["brain-tumor resnet50"]  # the name publish_model registers


def test_force_turns_clearmls_step_cache_off(tmp_path):
    assert not any(d["cache"] for d in build(tmp_path, {"models": "cnn_a", "force": "true"})["nodes"].values())


def test_steps_run_in_the_image_with_auto_logging_off_and_upload_where_the_controller_does(two_models):
    uri = two_models["output_uri"]
    assert isinstance(uri, str) and uri  # True (the files server) resolved to an address a task can hold
    for node in two_models["nodes"].values():
        assert node["image"] == "brain-tumor-clearml:0.2.0"  # the controller's image: one copy of the code
        assert node["output"] == uri
        assert "auto_connect_frameworks=False" in node["script"]  # no second model per Keras save, no double plots
        assert "from __future__" not in node["script"]
        assert node["callback"]  # the image is set again when the step starts (a clone keeps stored definitions)


def test_parameter_references_and_upstream_files(two_models):
    train = two_models["nodes"]["train_cnn_b"]["parameters"]
    assert train["kwargs/epochs"] == "${pipeline.epochs}" and train["kwargs/node"] == "train_cnn_b"
    assert "kwargs/weights" not in train  # a new weights file retrains the transfer models alone
    assert train["kwargs_artifacts/manifest"] == "${register_dataset.id}.manifest"
    assert train["kwargs_artifacts/class_weights"] == "${class_weights.id}.class_weights"
    last = two_models["nodes"]["select_champion"]["parameters"]
    assert last["kwargs_artifacts/files_evaluate"] == "${evaluate.id}.files"
    assert last["kwargs_artifacts/files_register_dataset"] == "${register_dataset.id}.files"


def launch_draft(tmp_path, values: dict) -> dict:
    """What `brain-tumor launch --draft` leaves on the server, offline: the controller task as the SDK stored it."""
    env = {**offline_env(tmp_path), "CLEARML_OFFLINE_MODE": "1",
           LAUNCH_ENV: json.dumps({"parameters": values, "mode": "draft", "controller_queue": "services"})}
    result = subprocess.run([sys.executable, "-m", "pipelines.clearml_pipeline"], capture_output=True, text=True,
                            env=env, timeout=300, cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    (session,) = (tmp_path / "clearml" / "offline").glob("*.zip")
    return json.loads(zipfile.ZipFile(session).read("task.json"))


@pytest.fixture(scope="module")
def draft(tmp_path_factory):
    return launch_draft(tmp_path_factory.mktemp("draft"), {"dataset_id": "ds-abc", "models": "cnn_a,resnet50"})


def test_the_ui_shows_every_parameter_with_its_type_and_description(draft):
    stored = draft["hyperparams"]["Args"]
    assert set(stored) == {f.name for f in parameters("server")}
    for f in parameters("server"):
        assert stored[f.name]["type"] == type_name(f), f.name
        assert stored[f.name]["description"] == f.metadata["help"], f.name
    assert stored["models"]["value"] == "cnn_a,resnet50"  # the launch's value
    assert stored["epochs"]["value"] == str(PipelineConfig().epochs)  # the typed default, as text


def test_the_controller_runs_the_image_code_and_records_no_arguments(draft):
    script = draft["script"]
    assert script["entry_point"] == "-m pipelines.clearml_pipeline"  # nothing for the agent to split wrongly
    assert script["repository"] == ""  # no clone: the agent runs the image's installed package, as the steps do
    assert draft["execution"]["docker_cmd"] == "brain-tumor-clearml:0.2.0"


AGENT_SHIM = '''
# Stands in for the ClearML server while this process plays the agent: the controller's task is an offline task
# holding the parameters as the web UI stored them (strings); PipelineController.start prints the DAG it would run.
import json, os
from clearml import Task
from clearml.automation import PipelineController
from clearml.config.remote import override_current_task_id

override_current_task_id(None)  # offline mode cannot be switched on while "running remotely"
Task.set_offline(True)
override_current_task_id("replayed-controller")
Task._report_subprocess_enabled = False
_init = Task.init.__func__

def init(cls, *args, **kwargs):
    override_current_task_id(None)
    task = _init(cls, project_name="replay", task_name="controller")
    override_current_task_id("replayed-controller")
    task.set_parameters({"Args/" + k: v for k, v in json.loads(os.environ["STORED_ARGS"]).items()})
    return task

def start(self, *args, **kwargs):
    print("STARTED=" + json.dumps({n: {"queue": node.queue, "parameters": node.parameters}
                                   for n, node in self._nodes.items()}))
    return True

Task.init = classmethod(init)
PipelineController.start = start
'''


def replay_agent(tmp_path, draft: dict, edited: dict) -> subprocess.CompletedProcess:
    """Run the controller's entry point as clearml-agent does (clearml_agent/commands/worker.py: for a `-m` entry
    point, `shlex.split(execution.entry_point)` becomes the python arguments), in a folder outside the repository,
    with the stored parameters as edited in the web UI."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(AGENT_SHIM)
    stored = {name: item["value"] for name, item in draft["hyperparams"]["Args"].items()} | edited
    env = {**offline_env(tmp_path), "CLEARML_TASK_ID": "replayed-controller", "PYTHONPATH": str(shim),
           "STORED_ARGS": json.dumps(stored)}
    env.pop(LAUNCH_ENV, None)
    workdir = tmp_path / "agent"
    workdir.mkdir()
    argv = [sys.executable, *shlex.split(draft["script"]["entry_point"])]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=workdir, timeout=300)


def test_an_agent_rerunning_the_controller_reads_the_edited_parameters(draft, tmp_path):
    result = replay_agent(tmp_path, draft, {"models": "cnn_c", "epochs": "3", "gpu_queue": "gpu-h200",
                                            "cpu_queue": "cpu-small"})
    line = next((x for x in result.stdout.splitlines() if x.startswith("STARTED=")), None)
    assert line, result.stdout + result.stderr
    nodes = json.loads(line[len("STARTED="):])
    assert list(nodes) == ["register_dataset", "class_weights", "baselines", "train_cnn_c", "evaluate", "ensemble",
                           "select_champion"]
    assert nodes["train_cnn_c"]["queue"] == "gpu-h200" and nodes["evaluate"]["queue"] == "cpu-small"


def test_bad_edited_parameters_stop_the_controller_before_any_step(draft, tmp_path):
    result = replay_agent(tmp_path, draft, {"models": "cnn_a,cnn_x", "epochs": "many", "champion_metric": "test_acc"})
    assert result.returncode == 2
    assert "STARTED=" not in result.stdout
    for expected in ("unknown model(s) 'cnn_x'", "epochs: 'many' is not an int", "champion_metric: 'test_acc'"):
        assert expected in result.stderr
    assert "Traceback" not in result.stderr


STRING_PARAMETERS = """
import json, sys
from clearml import Task
Task.set_offline(True)
Task._report_subprocess_enabled = False
import steps.train_model
from pipelines.clearml_pipeline import build_controller
from pipelines.clearml_step import run_step
seen = {}
def spy(**kwargs):
    seen.update(kwargs)
    return {"trained": None, "dataset_hash": kwargs["dataset_hash"]}
steps.train_model.train_model = spy
controller = build_controller({"models": "cnn_b"})
controller._pipeline_args.update(epochs="20", lr="0.003", allow_cpu="true", image_size="64")  # as the UI stores them
node = controller._nodes["train_cnn_b"]
kwargs = {key.split("/", 1)[1]: controller._parse_step_ref(value)
          for key, value in node.parameters.items() if key.startswith("kwargs/")}
kwargs.update(manifest="m.csv", dataset_hash="h", dataset_id="ds", class_weights={"a": 1.0})  # upstream artifacts
run_step(**kwargs)
print("SEEN=" + json.dumps({k: [type(v).__name__, v] for k, v in seen.items()}))
"""


def test_a_parameter_edited_as_a_string_reaches_the_step_with_its_declared_type(tmp_path):
    result = subprocess.run([sys.executable, "-c", STRING_PARAMETERS], capture_output=True, text=True,
                            env=offline_env(tmp_path), timeout=300, cwd=tmp_path)
    line = next((x for x in result.stdout.splitlines() if x.startswith("SEEN=")), None)
    assert line, result.stdout + result.stderr
    seen = json.loads(line[len("SEEN="):])
    assert seen["epochs"] == ["int", 20] and seen["image_size"] == ["int", 64]
    assert seen["lr"] == ["float", 0.003] and seen["allow_cpu"] == ["bool", True]
    assert seen["seed"] == ["int", 42] and seen["val_fraction"] == ["float", 0.15]
    assert "code" not in seen and "node" not in seen


def test_every_step_task_is_put_in_the_configured_image_before_it_runs():
    from types import SimpleNamespace

    from pipelines.clearml_pipeline import run_in

    class Task:
        def set_base_docker(self, docker_image):
            self.image = docker_image

    node = SimpleNamespace(job=SimpleNamespace(task=Task()))
    assert run_in("brain-tumor-clearml:9.9.9")(None, node, {}) is True
    assert node.job.task.image == "brain-tumor-clearml:9.9.9"


def test_only_failures_that_may_pass_are_retried():
    assert should_retry(None, 0) and should_retry(TRANSIENT, 1)  # killed (no record), network
    assert not should_retry(DETERMINISTIC, 0)  # bad input or a bug fails the same way again
    assert not should_retry(TRANSIENT, 2)  # at most two retries
    assert failure_kind(ConnectionResetError()) == TRANSIENT and failure_kind(TimeoutError()) == TRANSIENT
    assert failure_kind(ValueError("bad")) == DETERMINISTIC


class FakeTask:
    def __init__(self, properties=None):
        self.properties = dict(properties or {})

    def reload(self):
        pass

    def set_user_properties(self, **values):
        self.properties.update(values)

    def get_user_properties(self, value_only=False):
        return self.properties


def test_the_retry_callback_reads_how_the_step_failed(monkeypatch):
    from types import SimpleNamespace

    node = SimpleNamespace(name="train_cnn_a", job=SimpleNamespace(task=FakeTask({"failure": DETERMINISTIC})))
    assert retry_transient(None, node, 0) is False
    node.job.task = FakeTask({"failure": TRANSIENT})
    assert retry_transient(None, node, 0) is True


def test_the_executor_records_how_a_step_failed(monkeypatch, tmp_path):
    import steps.class_weights
    import steps.tracking
    from brain_tumor.errors import UserError

    task = FakeTask()
    monkeypatch.setattr(steps.tracking, "current_task", lambda: task)
    for error, kind in ((UserError("bad folder"), DETERMINISTIC), (ConnectionError("reset"), TRANSIENT)):
        def fail(**kwargs):
            raise error

        monkeypatch.setattr(steps.class_weights, "class_weights", fail)
        with pytest.raises(type(error)):
            execute("class_weights", {"manifest": "m", "dataset_hash": "h", "run_dir": str(tmp_path), "counts": {}})
        assert task.properties["failure"] == kind


def test_an_agent_without_the_package_gets_a_clear_message(tmp_path):
    import inspect

    from pipelines import clearml_step

    script = tmp_path / "step.py"
    script.write_text("import builtins\nreal = builtins.__import__\n"
                      "def blocked(name, *a, **k):\n"
                      "    if name.startswith('pipelines'):\n        raise ModuleNotFoundError(name)\n"
                      "    return real(name, *a, **k)\nbuiltins.__import__ = blocked\n"
                      + inspect.getsource(clearml_step.run_step) + "\nrun_step('train_cnn_a')\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "cannot import the brain-tumor-clearml package" in result.stderr and "--docker" in result.stderr
    assert "Traceback" not in result.stderr
