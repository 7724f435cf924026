"""The second runner: ClearML's PipelineController, built from the same declaration (`pipelines/dag.py`) and run
through the same executor as the local runner.

`brain-tumor launch` starts this module as the controller's script (`python -m pipelines.clearml_pipeline`, no
arguments: the configuration travels in an environment variable on the launching machine only). An agent re-running
the controller — after `launch` or for a run cloned and edited in the web UI — reads the controller's own ClearML
parameters instead, validates them all, and only then builds one node per chosen model on the chosen queues.
Code reaches agents only through the project's image (`docker_image`): the controller and every step run in it.
"""

import json
import os
import sys
from pathlib import Path

from brain_tumor import __version__
from brain_tumor.errors import UserError
from pipelines.clearml_step import from_json, run_step, to_json
from pipelines.config import PipelineConfig, parameters, type_name
from pipelines.dag import bind, expand
from pipelines.executor import DETERMINISTIC, FAILURE
from steps.tracking import PIPELINE_NAME, task_tags

LAUNCH_ENV = "BRAIN_TUMOR_LAUNCH"  # JSON set by `brain-tumor launch` for the controller it starts here
CONFIG_FILE = "config file"  # the configuration object holding the file a run was started from (--config)
RETRIES = 2  # for failures that may pass (network, storage, a killed agent); never for a deterministic one
STEP_SECTIONS = ("kwargs", "kwargs_artifacts")  # where a function step's arguments live on its task


def monitored(model: str) -> list:
    """What the pipeline page shows of a training while it runs: its validation accuracy and macro-F1 per epoch, one
    series per model. (ClearML forwards a monitored value only when it rises, so no loss curve: it would stop at its
    first point.)"""
    return [(("accuracy", "validation"), ("validation accuracy", model)),
            (("macro F1", "validation"), ("validation macro F1", model))]


def should_retry(failure: str | None, retries: int, max_retries: int = RETRIES) -> bool:
    """Retry a failed step unless it recorded a deterministic failure (bad input, a bug): running it again would
    fail the same way. No record at all means it was killed (out of memory, agent stopped): retry."""
    return retries < max_retries and failure != DETERMINISTIC


def retry_transient(pipeline, node, retries: int) -> bool:
    """ClearML's retry callback: asks the failed step's task how it failed."""
    task = node.job.task
    task.reload()
    failure = (task.get_user_properties(value_only=True) or {}).get(FAILURE)
    retry = should_retry(failure, retries)
    print(f"Step {node.name} failed ({failure or 'no failure recorded: killed?'}); "
          + ("retrying" if retry else "not retrying"))
    return retry


def as_configured(image: str):
    """A pre-execute callback that makes each step's task what this run's configuration says. A run cloned in the web
    UI rebuilds its steps from their *stored* definitions (`PipelineController.add_function_step` on an agent), so
    without this an edited docker_image never reaches them, and arguments of a model the edit removed survive as
    unresolved `${train_<model>.id}` references. ClearML calls it before it creates the step's task (`node.job` does
    not exist yet, whatever its docstring says), so it wraps the function that creates the task."""

    stored = {}  # each node's own task factory (a node's attributes are serialised into the pipeline's state)

    def prepare(pipeline, node, parameters) -> bool:
        create = stored.setdefault(node.name, node.task_factory_func)

        def create_as_configured(n):
            task = create(n)
            stale = [key for key in task.get_parameters(backwards_compatibility=False)
                     if key.split("/")[0] in STEP_SECTIONS and key not in parameters]
            for key in stale:
                task.delete_parameter(key)
            task.set_base_docker(docker_image=image)
            return task

        node.task_factory_func = create_as_configured
        return True

    return prepare


def build_controller(config, steps_here: bool = False):
    """A PipelineController with one parameter per pipeline parameter and one function step per node of the chosen
    models. Artifacts between steps are JSON (small dicts and addresses, never pickled models)."""
    from clearml import Task
    from clearml.automation import PipelineController

    if not isinstance(config, PipelineConfig):
        config = PipelineConfig.from_values(config)
    controller = PipelineController(
        name=PIPELINE_NAME, project=config.project, version=__version__, add_pipeline_tags=True,
        docker=config.docker_image, repo="",  # the controller runs the image's code, as its steps do
        packages="",  # and records no requirements for an agent to install over the image (docker/README.md)
        output_uri=config.output_uri or True, retry_on_failure=retry_transient,  # True: the files server
        artifact_serialization_function=to_json, artifact_deserialization_function=from_json)
    # The steps get the address itself: a step task's definition cannot hold True (the API expects a string).
    task = Task.current_task()
    uploads = task.output_uri
    for f in parameters("server"):
        controller.add_parameter(f.name, getattr(config, f.name), f.metadata["help"], param_type=type_name(f))
        if task.running_locally():  # ClearML 2.1 stores add_parameter's values but drops the descriptions (looked
            # up by bare name under "Args/name" keys); a stored description is kept, so store them first.
            task.set_parameter(f"{PipelineController._args_section}/{f.name}", getattr(config, f.name),
                               description=f.metadata["help"], value_type=type_name(f))
    values = config.values()
    for node in expand(config.model_names()):
        training = node.queue == "gpu"
        # The steps get the validated values, not `${pipeline.X}`: an agent re-running the controller re-connects its
        # parameters as stored (a PROJECT/NAME dataset, 'yes' for a flag), which the steps would otherwise receive.
        controller.add_function_step(
            name=node.name, function=run_step, function_kwargs={"node": node.name, **bind(node.kwargs, values)},
            function_return=list(node.returns), parents=list(node.parents),
            execution_queue=None if steps_here else config.gpu_queue if training else config.cpu_queue,
            docker=config.docker_image, output_uri=uploads,
            auto_connect_frameworks=False, auto_connect_arg_parser=False, tags=task_tags(node.name, node.model),
            packages="",  # no requirements recorded (None: clearml==<this version>); agents use the image as it is
            # select_champion always runs: a run served from cache would get no comparison, report or promotion.
            cache_executed_step=not config.force and node.name != "select_champion",
            retry_on_failure=retry_transient, pre_execute_callback=as_configured(config.docker_image),
            # One failed training does not stop the others' evaluation (the run still ends failed, saying which).
            continue_behaviour={"continue_on_fail": True, "skip_children_on_fail": False} if training else None,
            monitor_metrics=monitored(node.model) if training else None,
            monitor_models=[f"brain-tumor {node.model}"] if training else None,
            task_type="training" if training else "data_processing")
    return controller


def stored_parameters(task) -> dict:
    """The controller task's pipeline parameters as stored on the server (as the web UI edited them: strings)."""
    from clearml.automation import PipelineController

    section = PipelineController._args_section + "/"
    return {key[len(section):]: value for key, value in (task.get_parameters() or {}).items()
            if key.startswith(section)}


def outcome(nodes) -> list[str]:
    """What kept a pipeline run from finishing, one line per step that failed or never ran (empty: every step
    completed). ClearML marks the controller completed even when its thread died before launching a step."""
    problems = []
    for node in nodes:
        if node.job is not None and node.job.is_failed():
            problems.append(f"step {node.name} failed")
        elif not node.executed:
            problems.append(f"step {node.name} did not run")
    return problems


def run(controller, config: PipelineConfig, mode: str) -> int:
    """Run the pipeline in this process (on its agent, or here with steps on agents or here); a run that did not
    finish every step ends failed, with the reason on the controller task and in its console."""
    from clearml import Task

    from pipelines.stale_steps import StaleStepWatch

    task = Task.current_task()
    watch = StaleStepWatch(controller, config.stale_minutes)
    watch.start()
    try:
        if mode == "agent":
            controller.start()  # on its agent already: runs the pipeline in this process
        else:
            controller.start_locally(run_pipeline_steps_locally=mode == "steps-local")
    finally:
        watch.stopped.set()
    problems = outcome(controller._nodes.values())  # noqa: SLF001 (the SDK has no public accessor)
    if not problems:
        return 0
    reason = "The pipeline did not finish: " + "; ".join(problems)
    print(f"error: {reason}", file=sys.stderr, flush=True)
    task.mark_failed(status_reason=reason[:250], status_message=reason[:250], force=True)
    return 1


def resolve_dataset(config: PipelineConfig) -> PipelineConfig:
    """A PROJECT/NAME dataset reference becomes the id of its latest version, so the run records what it used."""
    if "/" not in config.dataset_id:
        return config
    from steps.registry import latest_dataset_version

    return config.replace(dataset_id=latest_dataset_version(config.dataset_id))


def main() -> int:
    """The controller's entry point: here (started by `launch`) or on the services agent that re-runs it."""
    from clearml import Task

    launch = json.loads(os.environ.pop(LAUNCH_ENV, "null"))
    try:
        if launch is not None:  # on the launching machine
            config, mode = PipelineConfig.from_values(launch["parameters"]), launch["mode"]
        elif not Task.running_locally():  # an agent runs this controller: its parameters are the stored ones
            config, mode = PipelineConfig.from_values(stored_parameters(Task.init())), "agent"
        else:
            raise UserError("Start the pipeline with `brain-tumor launch` (it checks the server and the data first).")
        if not (config.dataset_id or config.data or config.train_dir):
            raise UserError("No data: set the dataset_id parameter (a ClearML dataset version id or PROJECT/NAME).")
        config = resolve_dataset(config)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    controller = build_controller(config, steps_here=mode == "steps-local")
    if mode == "agent":
        return run(controller, config, mode)
    # The SDK stores its own controller.py as this task's "uncommitted changes" (repo=""): the code is the image's.
    Task.current_task().set_script(diff="")
    if launch.get("config_file"):  # the file the run was started from, on the controller's Configuration tab
        Task.current_task().set_configuration_object(CONFIG_FILE, config_text=launch["config_file"]["text"],
                                                     description=launch["config_file"]["path"])
    print(f"Pipeline {controller.id}: {Task.current_task().get_output_log_web_page()}", flush=True)
    if launch.get("record"):  # for the caller that needs the id (`tune --server` making its base task)
        Path(launch["record"]).write_text(controller.id)
    if mode == "draft":
        controller.create_draft()  # stored, not run: clone, edit and enqueue it in the web UI
        return 0
    if mode == "remote":
        controller.start(queue=launch["controller_queue"])  # enqueues the controller; this process then exits
        return 0
    return run(controller, config, mode)


if __name__ == "__main__":
    sys.exit(main())
