"""`brain-tumor launch`: check the server and queues, put the data on the server as a dataset version, and start
the ClearML pipeline (controller on the services queue, or here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from brain_tumor.data import dataset_hash, scan
from steps.registry import register_version
from steps.tracking import PROJECT

from .clearml_pipeline import LAUNCH_ENV
from .config import PipelineConfig
from .dag import data_layout
from .server import check_server

MODES = ("remote", "controller-local", "steps-local", "draft")


def launch(config: PipelineConfig, mode: str = "remote", controller_queue: str = "services") -> int:
    """Start the controller in `mode`: remote (enqueued on `controller_queue`), controller-local (here, steps on
    agents), steps-local (everything here, tracked on the server) or draft (stored on the server, not run: clone,
    edit and enqueue it in the web UI)."""
    queues = {"remote": (config.gpu_queue, config.cpu_queue, controller_queue),
              "controller-local": (config.gpu_queue, config.cpu_queue)}.get(mode, ())
    check_server(tuple(dict.fromkeys(queues)))
    if not config.dataset_id:
        layout = data_layout(config)
        content = dataset_hash(scan(layout, 8))  # validates every file here, before anything is uploaded
        config = config.replace(dataset_id=register_version(layout, content, PROJECT), data="", train_dir="",
                                test_dir="")  # agents read the dataset version, not this disk
    if mode == "steps-local":
        config = config.replace(allow_cpu=True)  # the steps train here, on whatever this machine has
    launch_env = json.dumps({"parameters": config.values(), "mode": mode, "controller_queue": controller_queue})
    # A process of its own, so that ClearML records `-m pipelines.clearml_pipeline` (no arguments) as the controller's
    # entry point: an agent re-runs exactly that, and the controller then reads its parameters from its task.
    return subprocess.run([sys.executable, "-m", "pipelines.clearml_pipeline"],
                          env={**os.environ, LAUNCH_ENV: launch_env}).returncode
