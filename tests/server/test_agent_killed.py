"""A training whose agent is killed mid-run: the controller hears nothing from it, fails it after `stale_minutes`,
retries it on the queue's other agent, and the training resumes from the checkpoint its first attempt uploaded."""

import os
import signal
import subprocess
import sys
import time

from .runs import launch_args, pipeline_id

QUEUE = "gpu-retry"  # this test's own queue, with two agents it starts and kills


def start_agent(server, tmp_path, n: int) -> subprocess.Popen:
    home = tmp_path / f"agent-{n}"
    home.mkdir()
    env = {**server.env, "HOME": str(home), "CLEARML_WORKER_ID": f"{server.project}:retry-{n}",
           "CLEARML_AGENT_SKIP_PIP_VENV_INSTALL": sys.executable, "CLEARML_AGENT_SKIP_PYTHON_ENV_INSTALL": "1"}
    return subprocess.Popen([sys.executable, "-m", "clearml_agent", "daemon", "--queue", QUEUE, "--create-queue",
                             "--foreground"], env=env, stdout=open(home / "agent.log", "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)  # its own group: killed with the task it runs


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_training_whose_agent_dies_is_retried_elsewhere_and_resumes(launched, server, server_data, tmp_path):
    agents = {}
    try:
        for n in (1, 2):  # one after the other: the first creates the queue (two at once race to create it)
            agents[f"{server.project}:retry-{n}"] = start_agent(server, tmp_path, n)
            wait_for(lambda: {w["id"] for w in server.api.call("workers.get_all")["workers"]} >= set(agents), 180,
                     f"agent {n} to register")
        args = launch_args(server, server_data, "cnn_b", "--controller-local", "--stale-minutes", "1")
        args[args.index("--epochs") + 1] = "80"  # long enough to be killed mid-run: the kill follows epoch 1
        args[args.index("--gpu-queue") + 1] = QUEUE
        controller = subprocess.Popen([sys.executable, "-m", "cli", *args, "--patience", "80"], cwd=server.env[
            "PYTHONPATH"], env=server.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = wait_for(lambda: controller.stdout.readline(), 300, "the pipeline id")
        while not line.startswith("Pipeline "):
            line = controller.stdout.readline()
        pipeline = pipeline_id(line)

        def training_with_checkpoint():
            task = server.api.steps_of(pipeline).get("train_cnn_b")
            return task if task and "checkpoint" in server.api.artifacts(task) and task["status"] == "in_progress" \
                else None

        training = wait_for(training_with_checkpoint, 600, "a training with an uploaded checkpoint")
        worker = training["last_worker"]
        os.killpg(agents[worker].pid, signal.SIGKILL)  # the agent and the training it runs
        output, _ = controller.communicate(timeout=900)
        assert controller.returncode == 0, output[-4000:]
        retried = server.api.task(training["id"])
        assert retried["status"] == "completed"
        assert retried["last_worker"] != worker and retried["last_worker"] in agents
        assert "no report from step train_cnn_b for 1 min" in output
        text = "Restored the checkpoint of an earlier attempt"
        assert text in server.api.console_with(training["id"], text)
    finally:
        for agent in agents.values():
            if agent.poll() is None:
                os.killpg(agent.pid, signal.SIGTERM)
                agent.wait(timeout=30)
