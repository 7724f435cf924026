"""`brain-tumor launch`: check the server and queues, put the data on the server as a dataset version, and start
the ClearML pipeline (controller on the services queue, or here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from brain_tumor.data import dataset_hash, scan
from brain_tumor.data import find_layout
from brain_tumor.external import folders
from steps.registry import DATASET_NAME, EXTERNAL, register_version

from .clearml_pipeline import LAUNCH_ENV
from .config import PipelineConfig
from .dag import data_layout
from .server import check_server

MODES = ("remote", "controller-local", "steps-local", "draft")


def register_external(folder: Path, project: str, output_uri: str = "") -> str:
    """An external folder as a version of its own dataset ("<dataset>-external-<folder name>")."""
    (folder,) = folders(str(folder))  # a clear error for a missing folder
    layout = find_layout(folder)
    return register_version(layout, dataset_hash(scan(layout, 8)), project, f"{DATASET_NAME}-external-{folder.name}",
                            output_uri=output_uri)


def launch(config: PipelineConfig, mode: str = "remote", controller_queue: str = "services",
           config_file: dict | None = None, record: Path | None = None) -> int:
    """Start the controller in `mode`: remote (enqueued on `controller_queue`), controller-local (here, steps on
    agents), steps-local (everything here, tracked on the server) or draft (stored on the server, not run: clone,
    edit and enqueue it in the web UI). `config_file` ({"path", "text"}): the file the run was started from, stored
    on the controller task. `record`: a file the controller's task id is written to."""
    queues = {"remote": (config.gpu_queue, config.cpu_queue, controller_queue),
              "controller-local": (config.gpu_queue, config.cpu_queue)}.get(mode, ())
    check_server(tuple(dict.fromkeys(queues)))
    if not config.dataset_id:
        layout = data_layout(config)
        content = dataset_hash(scan(layout, 8))  # validates every file here, before anything is uploaded
        config = config.replace(dataset_id=register_version(layout, content, config.project,
                                                            output_uri=config.output_uri),
                                data="", train_dir="", test_dir="")  # agents read the dataset version, not this disk
    if config.external_dir:  # agents see none of this disk: each external folder goes up as a dataset of its own
        config = config.replace(external_dir=",".join(
            path if path.startswith(EXTERNAL) else EXTERNAL + register_external(Path(path), config.project,
                                                                                config.output_uri)
            for path in config.external_dir.split(",") if path.strip()))
    if mode == "steps-local":
        config = config.replace(allow_cpu=True)  # the steps train here, on whatever this machine has
    launch_env = json.dumps({"parameters": config.values(), "mode": mode, "controller_queue": controller_queue,
                             "config_file": config_file, "record": str(record) if record else None})
    # A process of its own, so that ClearML records `-m pipelines.clearml_pipeline` (no arguments) as the controller's
    # entry point: an agent re-runs exactly that, and the controller then reads its parameters from its task.
    return subprocess.run([sys.executable, "-m", "pipelines.clearml_pipeline"],
                          env={**os.environ, LAUNCH_ENV: launch_env}).returncode
