"""ClearML plumbing shared by the steps: open a step's task (offline when no server is configured) and report."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT = "Brain Tumor MRI"  # the default of the pipeline parameter `project`
PIPELINE_NAME = "brain-tumor-mri"
# Set by the executor for the step it runs: a hash of the step's name, arguments and code. A training resumes only a
# checkpoint saved under the same key.
STEP_KEY_ENV = "BRAIN_TUMOR_STEP_KEY"  # ClearML keeps the pipeline's step tasks in PROJECT/.pipelines/PIPELINE_NAME
TAGS = ("Brain Tumor", "Medical Imaging")  # the seed notebook's tags, on every step's task
FAMILY_TAGS = {"custom_cnn": "CNN", "transfer": "Transfer Learning"}  # and a training's, by its model's family


def task_tags(node_name: str, model: str | None = None) -> list[str]:
    """The tags of a step's task (both runners): the seed's, and for a training its model family's."""
    from brain_tumor.model_specs import get_spec

    family = get_spec(model).family if model and node_name.startswith("train_") else None
    return [*TAGS, *([FAMILY_TAGS[family]] if family else [])]


def server_configured() -> bool:
    """A ClearML server is configured by CLEARML_API_HOST or by a clearml.conf (never by this code)."""
    if os.environ.get("CLEARML_API_HOST"):
        return True
    config = Path(os.environ.get("CLEARML_CONFIG_FILE", "~/clearml.conf")).expanduser()
    return config.is_file()


def open_task(name: str, parameters: dict, offline: bool, output_uri=None, project: str = PROJECT):
    """Start the ClearML task a step reports to (framework auto-logging off, as on agents), tag it, and connect its
    parameters (a training's include its `model`). `output_uri`: where its models and artifacts are uploaded (True:
    the files server)."""
    from clearml import Task

    if offline:
        Task.set_offline(True)
        # Offline, ClearML's reporting subprocess only adds a 10 s wait at close: report from this process.
        Task._report_subprocess_enabled = False
    task = Task.init(project_name=project, task_name=name, reuse_last_task_id=False,
                     auto_connect_frameworks=False, auto_connect_arg_parser=False, auto_resource_monitoring=False,
                     output_uri=output_uri)
    task.add_tags(task_tags(name, parameters.get("model")))
    task.connect(parameters, name="step")
    return task


def current_task():
    """The task this step runs in, or None when it runs untracked (e.g. called directly from Python)."""
    from clearml import Task

    return Task.current_task()


def report_scalars(title: str, values: dict[str, float], iteration: int = 0) -> None:
    task = current_task()
    if task is not None:
        for series, value in values.items():
            if value is not None:
                task.get_logger().report_scalar(title, series, float(value), iteration)


def report_single_values(prefix: str, values: dict[str, float]) -> None:
    """Final scores, each as "<prefix> <name>" in the summary table of the task's scalars (ClearML's single values)."""
    task = current_task()
    if task is not None:
        for name, value in values.items():
            if value is not None:
                task.get_logger().report_single_value(f"{prefix} {name}", float(value))


def report_html(title: str, path, task=None) -> None:
    """An HTML file shown in the web UI (Debug Samples) of `task`, by default the current one."""
    task = task or current_task()
    if task is not None:
        task.get_logger().report_media(title, Path(path).name, iteration=0, local_path=str(path),
                                       file_extension=".html")


def report_table(title: str, table, iteration: int = 0) -> None:
    task = current_task()
    if task is not None:
        task.get_logger().report_table(title, "table", iteration=iteration, table_plot=table)


def upload_artifact(name: str, artifact) -> None:
    task = current_task()
    if task is not None:
        task.upload_artifact(name, artifact_object=artifact)


def report_images(figures: dict, series: str = "") -> None:
    """PNG files already written to the run folder, shown under the step's Plots/Debug Samples in the web UI."""
    task = current_task()
    if task is not None:
        for title, path in figures.items():
            task.get_logger().report_image(title, series or Path(path).stem, iteration=0, local_path=str(path))


def report_text(text: str) -> None:
    task = current_task()
    if task is not None:
        task.get_logger().report_text(text, print_console=False)
