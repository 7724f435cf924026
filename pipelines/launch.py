"""`brain-tumor launch`: check the server and queues, put the data on the server as a dataset version, and start
the ClearML pipeline (controller on the services queue, or here)."""

from __future__ import annotations

import json
import subprocess
import sys

from brain_tumor.data import dataset_hash, scan
from steps.registry import register_version
from steps.tracking import PROJECT

from .dag import data_layout, parse_models, with_defaults
from .server import check_server


def launch(parameters: dict, gpu_queue: str = "gpu", cpu_queue: str = "default", controller_queue: str = "services",
           controller_local: bool = False, steps_local: bool = False) -> int:
    parameters = with_defaults(parameters)
    parse_models(parameters["models"])
    if steps_local:
        queues: tuple[str, ...] = ()
    else:
        queues = (gpu_queue, cpu_queue) + (() if controller_local else (controller_queue,))
    check_server(queues)
    if not parameters["dataset_id"]:
        layout = data_layout(parameters)
        content = dataset_hash(scan(layout, 8))  # validates every file here, before anything is uploaded
        parameters["dataset_id"] = register_version(layout, content, PROJECT)
        parameters.update(data="", train_dir="", test_dir="")  # agents read the dataset version, not this disk
    mode = "steps-local" if steps_local else "controller-local" if controller_local else "remote"
    config = {"parameters": parameters, "gpu_queue": gpu_queue, "cpu_queue": cpu_queue,
              "controller_queue": controller_queue, "mode": mode}
    # A process of its own, so that ClearML records pipelines/clearml_pipeline.py as the controller's script.
    return subprocess.run([sys.executable, "-m", "pipelines.clearml_pipeline", json.dumps(config)]).returncode
