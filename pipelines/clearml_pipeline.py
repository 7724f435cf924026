"""The second runner: ClearML's PipelineController, built from the same declaration (`pipelines/dag.py`) and the same
`steps/` functions as the local runner.

Every model in the registry gets a training node, and each node trains only if its model is in `${pipeline.models}`,
read when the node runs. So a run cloned in the web UI with an edited model list re-runs with that list, whether the
controller rebuilds the DAG from this code or restores the one stored with the cloned run.
"""

from __future__ import annotations

import json

from brain_tumor import __version__
from brain_tumor.model_specs import MODEL_SPECS
from pipelines.dag import PARAMETERS, expand  # absolute: an agent runs this file as a script
from steps.tracking import PROJECT

PIPELINE_NAME = "brain-tumor-mri"
MONITORED = [("accuracy", "validation"), ("loss", "validation")]  # shown on the pipeline page per training node


def run_step(step_function: str, step_returns: str, step_model: str = "", selected_models: str = "", **kwargs):
    """The body of every ClearML function step: call the step function, return its results in declared order.
    A training node whose model is not in the run's model list trains nothing and returns None."""
    import importlib
    import json

    keys = json.loads(step_returns)
    if step_model and step_model not in [m.strip() for m in str(selected_models).split(",")]:
        print(f"{step_model} is not in this run's model list ({selected_models}): not trained")
        values = tuple(None for _ in keys)
    else:
        module, name = step_function.split(":")
        result = getattr(importlib.import_module(module), name)(**kwargs)
        values = tuple(result[key] for key in keys)
    return values if len(values) > 1 else values[0]


def _to_json(value) -> bytes:
    return json.dumps(value).encode()


def _from_json(data: bytes):
    return json.loads(data)


def build_controller(parameters: dict, gpu_queue: str = "gpu", cpu_queue: str = "default", retries: int = 2,
                     docker: str | None = "brain-tumor-clearml:latest"):
    """A PipelineController with one parameter per pipeline parameter and one function step per DAG node.
    Artifacts between steps are JSON (small dicts and paths, never pickled models)."""
    from clearml.automation import PipelineController

    controller = PipelineController(
        name=PIPELINE_NAME, project=PROJECT, version=__version__, add_pipeline_tags=True,
        retry_on_failure=retries, docker=docker, artifact_serialization_function=_to_json,
        artifact_deserialization_function=_from_json)
    for name, (default, description) in PARAMETERS.items():
        controller.add_parameter(name, parameters.get(name, default), description)
    controller.add_parameter("gpu_queue", gpu_queue, "queue of the training steps (GPU agents)")
    controller.add_parameter("cpu_queue", cpu_queue, "queue of the light steps")
    for node in expand(list(MODEL_SPECS)):
        kwargs = {"step_function": node.function, "step_returns": json.dumps(node.returns), **node.kwargs}
        if node.model:
            kwargs.update(step_model=node.model, selected_models="${pipeline.models}")
        training = node.queue == "gpu"
        controller.add_function_step(
            name=node.name, function=run_step, function_kwargs=kwargs, function_return=list(node.returns),
            parents=list(node.parents), execution_queue=gpu_queue if training else cpu_queue,
            cache_executed_step=node.cache, retry_on_failure=retries,
            monitor_metrics=MONITORED if training else None,
            monitor_models=[f"brain-tumor {node.model}"] if training else None,
            task_type="training" if training else "data_processing")
    return controller


def main(config_json: str) -> None:
    """The controller's entry point, here and on the services agent that re-runs it: build, then start.
    The configuration comes as one JSON argument (no argparse, whose arguments ClearML would take over)."""
    from clearml import Task

    config = json.loads(config_json)
    controller = build_controller(config["parameters"], config["gpu_queue"], config["cpu_queue"])
    if Task.running_locally():
        page = Task.get_task(task_id=controller.id).get_output_log_web_page()
        print(f"Pipeline {controller.id}: {page}", flush=True)
    if config["mode"] == "steps-local":
        controller.start_locally(run_pipeline_steps_locally=True)
    elif config["mode"] == "controller-local":
        controller.start_locally(run_pipeline_steps_locally=False)
    else:
        controller.start(queue=config["controller_queue"])  # enqueues the controller; this process then exits


if __name__ == "__main__":
    import sys

    main(sys.argv[1])
