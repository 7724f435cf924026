"""The server tests: end to end against whatever ClearML server the environment names (CLEARML_API_HOST and the
keys), with agents on its queues (`services`, `default`, and `gpu`, or BRAIN_TUMOR_TEST_QUEUES="services,default,gpu"
in that order). Everything a run creates goes into a project of its own (`brain-tumor-tests-<random>`), so a real
workspace stays clean. With no server configured every test here is skipped, and pytest counts the skips.

The root conftest takes the server's variables out of the environment (the other tests run with no server) and
keeps them for these tests: their commands run in subprocesses with the server's variables put back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from .api import Api
from .runs import launch_args, pipeline_id

REPO = Path(__file__).resolve().parents[2]
SERVER_STASH = "BRAIN_TUMOR_TEST_SERVER"  # set by the root conftest: the server's variables, as JSON


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.server)
            item.add_marker(pytest.mark.xdist_group("server"))  # one worker: runs share the server's agents


@dataclass
class Server:
    env: dict  # this process's environment with the server's variables
    api: Api
    project: str
    queues: dict  # role → queue name: services, default (light steps), gpu (trainings)

    def cli(self, *args: str, timeout: float = 900, cwd: Path | None = None, env: dict | None = None):
        """`brain-tumor ARGS` against the server; the completed process (stdout and stderr together)."""
        return subprocess.run([sys.executable, "-m", "cli", *args], cwd=cwd or REPO, env={**self.env, **(env or {})},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)

    def python(self, code: str, *args: str, timeout: float = 300):
        """Run Python `code` with the SDK pointed at the server (for what only the SDK does, e.g. clone a task)."""
        return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=self.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    stash = json.loads(os.environ.get(SERVER_STASH) or "{}")
    if not stash.get("CLEARML_API_HOST"):
        pytest.skip("no ClearML server configured (CLEARML_API_HOST and keys): the server tests are skipped")
    api = Api(stash["CLEARML_API_HOST"], stash.get("CLEARML_API_ACCESS_KEY", ""),
              stash.get("CLEARML_API_SECRET_KEY", ""))
    roles = ("services", "default", "gpu")
    names = (os.environ.get("BRAIN_TUMOR_TEST_QUEUES") or ",".join(roles)).split(",")
    queues = dict(zip(roles, names))
    listening = {q["name"] for w in api.call("workers.get_all")["workers"] for q in w.get("queues") or []}
    missing = [q for q in queues.values() if q not in listening]
    if missing:
        pytest.skip(f"no agent listens on queue(s) {', '.join(missing)} of {stash['CLEARML_API_HOST']}")
    home = tmp_path_factory.mktemp("server-home")  # the SDK's session cache, apart from the user's
    env = {**os.environ, **stash, "HOME": str(home), "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop(SERVER_STASH, None)
    return Server(env, api, f"brain-tumor-tests-{uuid.uuid4().hex[:8]}", queues)


@pytest.fixture(scope="session")
def server_data(tmp_path_factory):
    """A small synthetic dataset (Training + Testing) the server runs train on."""
    from brain_tumor.synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("server-data") / "data", 12, 4, size=32, seed=5)


@pytest.fixture(scope="session")
def launched(server, server_data):
    """`brain-tumor launch` (remote: the controller on the services queue) of two models, run to its end."""
    done = server.cli(*launch_args(server, server_data, "cnn_a,cnn_b", "--controller-queue",
                                   server.queues["services"]), timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    controller = server.api.wait(pipeline_id(done.stdout), timeout=900)
    return {"controller": controller, "steps": server.api.steps_of(controller["id"]), "output": done.stdout}
