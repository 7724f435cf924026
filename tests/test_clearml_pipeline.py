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
                   "continue_on_fail": node.continue_on_fail, "skip_children_on_fail": node.skip_children_on_fail,
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
    # The local runner's reuse rule (same code, arguments, data), but select_champion always runs: a cached one gives
    # the new run no comparison, report or promotion.
    assert {n for n, d in nodes.items() if not d["cache"]} == {"select_champion"}
    # One series per model on the pipeline page (ClearML forwards only rising values: no loss curve)
    assert nodes["train_cnn_b"]["monitor_metrics"] == [[["accuracy", "validation"], ["validation accuracy", "cnn_b"]],
                                                       [["macro F1", "validation"], ["validation macro F1", "cnn_b"]]]
    assert nodes["train_resnet50"]["monitor_models"] == ["brain-tumor resnet50"]  # the name publish_model registers
    # A failed training does not stop the evaluation of the others (the controller still ends failed, saying so)
    assert {n for n, d in nodes.items() if d["continue_on_fail"] and not d["skip_children_on_fail"]} == {
        "train_cnn_b", "train_resnet50"}


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
    # The validated values, not ${pipeline.X}: an agent re-running the controller re-connects the stored strings.
    assert train["kwargs/epochs"] == 7 and train["kwargs/node"] == "train_cnn_b"
    assert not any("${pipeline." in str(v) for v in train.values())
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
# As an agent re-running an edited clone reads them (stored_parameters): strings, 'yes' for a flag.
controller = build_controller({"models": "cnn_b", "epochs": "20", "lr": "0.003", "allow_cpu": "yes",
                               "image_size": "64"})
node = controller._nodes["train_cnn_b"]
kwargs = {key.split("/", 1)[1]: str(controller._parse_step_ref(value))  # a task's parameters are strings
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


def test_each_step_task_is_made_as_configured_before_it_runs():
    """ClearML calls the pre-execute callback before it creates the step's task (node.job is None then, as in
    clearml/automation/controller.py `_launch_node`), and then creates the task with node.task_factory_func from the
    definition stored by the run that was cloned: the task gets the configured image and loses the arguments of
    models the edit removed. (The server test of an edited clone runs this against the SDK's own factory.)"""
    from types import SimpleNamespace

    from pipelines.clearml_pipeline import as_configured

    class StoredTask:
        def __init__(self):
            self.parameters = {"kwargs/node": "evaluate", "kwargs_artifacts/trained_cnn_b": "${train_cnn_b.id}.trained",
                               "kwargs_artifacts/trained_cnn_a": "${train_cnn_a.id}.trained", "Args/x": "1"}

        def get_parameters(self, backwards_compatibility=True):
            return dict(self.parameters)

        def delete_parameter(self, key):
            del self.parameters[key]

        def set_base_docker(self, docker_image):
            self.image = docker_image

    node = SimpleNamespace(name="evaluate", job=None, task_factory_func=lambda n: StoredTask())
    wanted = {"kwargs/node": "evaluate", "kwargs_artifacts/trained_cnn_b": "${train_cnn_b.id}.trained"}
    callback = as_configured("brain-tumor-clearml:9.9.9")
    assert callback(None, node, dict(wanted)) is True
    task = node.task_factory_func(node)
    assert task.image == "brain-tumor-clearml:9.9.9"
    assert task.parameters == {**wanted, "Args/x": "1"}  # cnn_a's stale reference is gone; other sections stay
    assert callback(None, node, dict(wanted)) is True  # a second launch of the node wraps the stored factory once
    assert node.task_factory_func(node).image == "brain-tumor-clearml:9.9.9"


def test_a_run_that_did_not_finish_every_step_is_reported_as_failed():
    """ClearML marks the controller completed even when its thread died before launching the next step."""
    from types import SimpleNamespace

    from pipelines.clearml_pipeline import outcome

    def node(name, executed, failed=None):
        job = None if failed is None else SimpleNamespace(is_failed=lambda: failed)
        return SimpleNamespace(name=name, executed=executed, job=job)

    assert outcome([node("a", "t1", False), node("b", "t2", False)]) == []
    assert outcome([node("a", "t1", False), node("train_x", "t2", True), node("c", None)]) == [
        "step train_x failed", "step c did not run"]


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


def test_a_steps_shared_files_leave_out_the_pixel_cache_and_offline_sessions(tmp_path):
    """The run files a step shares hold what it wrote, never the decoded pixel cache (hundreds of MB, re-made on any
    machine) or ClearML's offline sessions; the archive is written to disk, not built in memory."""
    from pipelines.executor import FILES_ARTIFACT, _run_files, share_files

    class Task:
        id, artifacts = "t1", {}

        def upload_artifact(self, name, artifact_object, wait_on_upload):
            with zipfile.ZipFile(artifact_object) as archive:
                self.names = sorted(archive.namelist())
            self.artifacts[name] = type("Artifact", (), {"url": f"http://files/{name}"})()

    run = tmp_path / "run"
    before = _run_files(run) if run.is_dir() else {}
    for name in ("metrics/cnn_a.json", "cache/pixels-128px.u8", "clearml/offline/s.zip", "models/cnn_a/model.keras"):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(b"x")
    task = Task()
    assert share_files(task, run, before) == f"http://files/{FILES_ARTIFACT}"
    assert task.names == ["metrics/cnn_a.json"]
    assert not list((run / "cache").glob("*.zip"))  # the archive is gone once uploaded
