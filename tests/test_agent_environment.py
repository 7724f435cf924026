"""What the agents get besides the image: the requirements and tags the ClearML pipeline records for its controller and
steps (the real PipelineController, built offline, as tests/test_clearml_pipeline.py builds it), and the warning a
step prints when its image holds another version of the package than the launcher's."""

import json
import os
import subprocess
import sys

import pytest

from brain_tumor import __version__
from pipelines.dag import expand
from pipelines.executor import RESERVED, execute

BUILD = """
import json, sys
from clearml import Task
Task.set_offline(True)
Task._report_subprocess_enabled = False
from pipelines.clearml_pipeline import build_controller
controller = build_controller(json.loads(sys.argv[1]))


class Created:  # stands in for the step task ClearML creates from a node when the step starts
    output_uri = None

    def __init__(self):
        self.tags = []

    def update_task(self, definition):
        pass

    def add_tags(self, tags):
        self.tags += [tags] if isinstance(tags, str) else list(tags)


Task.create = staticmethod(lambda *args, **kwargs: Created())
nodes = {}
for name, node in controller._nodes.items():
    definition = json.loads(controller._task._get_configuration_text(name=name))
    nodes[name] = {"requirements": definition["script"].get("requirements"), "tags": node.task_factory_func(node).tags}
print("BUILT=" + json.dumps({"nodes": nodes, "controller": controller._task.data.script.requirements}, default=str))
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    home = tmp_path_factory.mktemp("build")
    env = {**os.environ, "CLEARML_CACHE_DIR": str(home / "clearml"), "HOME": str(home)}
    for name in ("CLEARML_API_HOST", "CLEARML_API_ACCESS_KEY", "CLEARML_API_SECRET_KEY"):
        env.pop(name, None)
    result = subprocess.run([sys.executable, "-c", BUILD, json.dumps({"models": "cnn_b,resnet50", "dataset_id": "d1"})],
                            capture_output=True, text=True, env=env, timeout=300, check=False)
    line = next((x for x in result.stdout.splitlines() if x.startswith("BUILT=")), None)
    assert line, result.stdout + result.stderr
    return json.loads(line[len("BUILT="):])


def test_no_step_and_not_the_controller_records_requirements_for_an_agent_to_install(built):
    # Without packages="" each step would record clearml==<this version> and the controller its imports (pathlib2,
    # ...), which an agent pip-installs over the image.
    for name, node in built["nodes"].items():
        assert node["requirements"] == {"pip": ""}, name
    assert built["controller"] == {"pip": ""}


def test_step_tasks_carry_the_seed_notebooks_tags_and_a_trainings_model_family(built):
    tags = {name: node["tags"] for name, node in built["nodes"].items()}
    assert tags["train_cnn_b"] == ["Brain Tumor", "Medical Imaging", "CNN"]
    assert tags["train_resnet50"] == ["Brain Tumor", "Medical Imaging", "Transfer Learning"]
    for name in ("register_dataset", "class_weights", "baselines", "evaluate", "ensemble", "select_champion"):
        assert tags[name] == ["Brain Tumor", "Medical Imaging"], name


def test_the_controller_launch_stores_records_no_requirements(tmp_path):
    """What `brain-tumor launch --draft` leaves on the server, offline: the controller task as the SDK stored it."""
    import zipfile
    from pathlib import Path

    from pipelines.clearml_pipeline import LAUNCH_ENV

    env = {**os.environ, "CLEARML_CACHE_DIR": str(tmp_path / "clearml"), "HOME": str(tmp_path),
           "CLEARML_OFFLINE_MODE": "1", LAUNCH_ENV: json.dumps({"parameters": {"dataset_id": "d1", "models": "cnn_a"},
                                                              "mode": "draft", "controller_queue": "services"})}
    env.pop("CLEARML_API_HOST", None)
    result = subprocess.run([sys.executable, "-m", "pipelines.clearml_pipeline"], capture_output=True, text=True,
                            env=env, timeout=300, cwd=Path(__file__).resolve().parent.parent, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    (session,) = (tmp_path / "clearml" / "offline").glob("*.zip")
    assert json.loads(zipfile.ZipFile(session).read("task.json"))["script"]["requirements"] == {"pip": ""}


# ---------------------------------------------------------------- the launcher's version

def test_every_node_carries_the_launchers_version_for_the_executor_alone():
    assert "version" in RESERVED  # popped before the step function is called
    assert {node.kwargs["version"] for node in expand(["cnn_a", "resnet50"])} == {__version__}


@pytest.mark.parametrize("launched", ["0.0.1", __version__])
def test_a_step_on_an_image_of_another_version_says_so(monkeypatch, capsys, tmp_path, launched):
    import steps.class_weights
    import steps.tracking

    received = {}

    def class_weights(**kwargs):
        received.update(kwargs)
        return {"class_weights": {"a": 1.0}, "dataset_hash": "h"}

    monkeypatch.setattr(steps.tracking, "current_task", lambda: None)
    monkeypatch.setattr(steps.class_weights, "class_weights", class_weights)
    execute("class_weights", {"manifest": "m", "dataset_hash": "h", "run_dir": str(tmp_path), "counts": {},
                              "code": "c", "version": launched})
    assert "version" not in received and "code" not in received
    out = capsys.readouterr().out
    if launched == __version__:
        assert "warning" not in out
    else:
        (line,) = [x for x in out.splitlines() if x.startswith("warning:")]
        assert f"this agent runs brain-tumor-clearml {__version__}, the pipeline was launched with 0.0.1" in line
        assert "docker/Dockerfile" in line and "brain-tumor-clearml:0.0.1" in line
