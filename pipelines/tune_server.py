"""`brain-tumor tune --server`: the study on a ClearML server. ClearML's HyperParameterOptimizer with Optuna clones a
base training task (the `train_<model>` step task of a finished pipeline run: given by id, or made by a run of
that one model on the same dataset version) once per trial with the trial's
parameters (`kwargs/<name>`, the function step's arguments), enqueues each clone on the GPU queue (at most
`--concurrency` at once) and reads the objective from what the training reports per epoch (`macro F1` /
`validation` or `accuracy` / `validation`, `steps/train_model.py::report_epoch`). Optuna prunes on those per-epoch
values. Validation only: the trial tasks train and validate; no test metric is ever the objective.

The optimizer runs here (`--controller-local`) or as its own task on the services queue. Every trial is an ordinary
training task a user can open, compare and clone in the web UI (children of the optimizer task). Here, in the
study folder: trials.csv (task, status, objective, epochs, the parameters) and best.yaml, as the local path writes
them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from brain_tumor import files
from brain_tumor.errors import UserError

from .config import PipelineConfig
from .search_space import Range, clearml_ranges

SECTION = "kwargs"  # a function step's arguments on its task
OBJECTIVES = {"val_macro_f1": ("macro F1", "validation"), "val_accuracy": ("accuracy", "validation")}
POLL_MINUTES = 0.1  # how often the optimizer reads a running trial's scalars
TUNE_ENV = "BRAIN_TUMOR_TUNE"  # JSON handed to the optimizer process this command starts (remote mode)
SETTINGS = "tune settings"  # the optimizer task's configuration object holding them (read back on its agent)
# Task.init with no framework hooks and no repository detection: the optimizer's script is set by hand, and the SDK's
# detection thread (a whole-repository package analysis) can outlast its own 300 s wait, which set_packages and
# execute_remotely sit through. A dict is the only way to say so (False keeps the detection), and a key it lacks is on.
NOTHING_AUTOMATIC = {"detect_repository": False, **dict.fromkeys((
    "matplotlib", "tensorflow", "tensorboard", "tfdefines", "pytorch", "megengine", "xgboost", "catboost", "scikit",
    "joblib", "fastai", "lightgbm", "hydra", "gradio", "jsonargparse"), False)}


def objective_metric(objective: str) -> tuple[str, str]:
    if objective not in OBJECTIVES:
        raise UserError(f"objective {objective!r}: on a server the objective is a scalar the training reports per "
                        f"epoch: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[objective]


def trial_ranges(space: dict[str, Range]):
    """The space as the trial tasks take it: `kwargs/<name>`."""
    return clearml_ranges(space, section=SECTION)


def check_base(parameters: dict, model: str, space: dict[str, Range], fixed: dict) -> list[str]:
    """What makes a task's parameters (`Task.get_parameters()`) unfit as the study's base: not `model`'s training
    step, or missing an argument the study sets."""
    problems = []
    if parameters.get(f"{SECTION}/node") != f"train_{model}":
        problems.append(f"it is not a train_{model} step task (its kwargs/node is "
                        f"{parameters.get(f'{SECTION}/node')!r}): give the train_{model} step of a finished "
                        f"pipeline run")
    missing = [name for name in (*space, *fixed) if f"{SECTION}/{name}" not in parameters]
    if missing:
        problems.append(f"it has no argument {', '.join(missing)} (the study sets them)")
    return problems


def epochs_ceiling(space: dict[str, Range], fixed: dict, parameters: dict) -> int:
    """The most epochs a trial can train: the optimizer never cuts a trial short below it."""
    if "epochs" in space:
        return int(space["epochs"].high if space["epochs"].kind != "choice" else max(space["epochs"].choices))
    return int(fixed.get("epochs", parameters.get(f"{SECTION}/epochs") or 0) or 1)


def prepare_base(base_id: str, model: str, space: dict[str, Range], fixed: dict) -> tuple[str, dict]:
    """The task the trials are cloned from: the base task itself, or, with values the study fixes (--epochs ...),
    a draft clone of it holding them. (its id, its parameters)"""
    from clearml import Task

    try:
        base = Task.get_task(task_id=base_id)
    except Exception as error:  # noqa: BLE001 (the SDK raises ValueError or a server error for an unknown id)
        raise UserError(f"--base-task {base_id}: no such task on the server ({error})") from None
    parameters = base.get_parameters(backwards_compatibility=False) or {}
    problems = check_base(parameters, model, space, fixed)
    if problems:
        raise UserError(f"--base-task {base_id} ({base.name}) cannot be the study's base: " + "; ".join(problems))
    if not fixed:
        return base.id, parameters
    draft = Task.clone(source_task=base, name=f"{base.name} (tune base)",
                       comment=f"The base of a tune study: task {base.id} with " + ", ".join(
                           f"{k}={v}" for k, v in fixed.items()))
    draft.update_parameters({f"{SECTION}/{k}": v for k, v in fixed.items()})  # set_parameters would drop the rest
    return draft.id, draft.get_parameters(backwards_compatibility=False) or {}


def create_base(config: PipelineConfig, model: str, say=print) -> str:
    """No --base-task: a pipeline run of `model` alone, steps on the agents (`launch --controller-local`), on the
    study's data as a dataset version (the version already on the server when its content is); its train_<model>
    step, which trained with the study's configuration, is the base. Its id."""
    import tempfile

    from clearml import Task

    from .launch import launch

    if not (config.data or config.train_dir or config.dataset_id):
        raise UserError("tune on a server needs --base-task ID (the train_<model> step task of a finished pipeline "
                        "run) or the data to make one: --data ROOT")
    say(f"No --base-task: a pipeline run of {model} alone makes one (steps on the agents)")
    with tempfile.TemporaryDirectory() as scratch:
        record = Path(scratch) / "pipeline"
        # The pipeline's own run folder, relative: each agent's, not the study's (trials cloned from it run at once)
        code = launch(config.replace(models=model, run_dir=PipelineConfig().run_dir), mode="controller-local",
                      record=record)
        pipeline = record.read_text() if record.exists() else ""
    if code or not pipeline:
        raise UserError(f"The pipeline run that makes the study's base task failed (exit code {code}, above); "
                        f"fix it, or give --base-task ID.")
    nodes = json.loads(Task.get_task(task_id=pipeline).get_configuration_object("Pipeline") or "{}")
    base = (nodes.get(f"train_{model}") or {}).get("job_id")
    if not base:
        raise UserError(f"Pipeline {pipeline} ran no train_{model} step to be the study's base; give --base-task ID.")
    say(f"Base task: train_{model} of pipeline {pipeline}: {base}")
    return base


def trial_row(task, number: int, space: dict[str, Range], title: str, series: str) -> dict:
    """One trial as trials.csv lists it, read back from the server."""
    task.reload()
    scalars = (task.get_last_scalar_metrics() or {}).get(title, {}).get(series, {})
    parameters = task.get_parameters(backwards_compatibility=False) or {}
    status = str(task.get_status())
    return {"number": number, "task": task.id, "status": status,
            "objective": scalars.get("max") if status in ("completed", "published") else None,
            "epochs_run": int(task.data.last_iteration or 0) or None,
            **{name: parameters.get(f"{SECTION}/{name}") for name in space}}


def best_of(rows: list[dict]) -> dict | None:
    scored = [r for r in rows if r["objective"] is not None]
    return max(scored, key=lambda r: (r["objective"], -r["number"])) if scored else None


def write_results(out: Path, rows: list[dict], space: dict[str, Range], config: PipelineConfig, objective: str,
                  say) -> dict | None:
    """trials.csv, and best.yaml from the best completed trial (the local path's writer); printed too."""
    import pandas as pd

    from .search_space import _number
    from .tune_report import best_text

    table = pd.DataFrame(rows, columns=["number", "task", "status", "objective", "epochs_run", *space])
    table.astype({"epochs_run": "Int64"}).to_csv(out / "trials.csv", index=False)
    say(table.to_string(index=False))
    best = best_of(rows)
    if best is None:
        return None
    from .config import coerce
    from .config import parameters as fields

    by_name = {f.name: f for f in fields()}
    params = {name: coerce(by_name[name], best[name]) for name in space}  # the server's strings, typed
    text, values = best_text(config, objective, f"{best['number']} (task {best['task']})", best["objective"], params)
    files.write_text(out / "best.yaml", text)
    say(f"Best: trial {best['number']} (task {best['task']}), {objective} {best['objective']:.4f}: "
        + ", ".join(f"{k}={_number(v)}" for k, v in params.items()))
    return values


def optimize(settings: dict, say=print) -> dict:
    """Run the optimizer in this process (here, or on its services agent) to its end; the trials' rows."""
    import optuna
    from clearml import Task
    from clearml.automation import HyperParameterOptimizer
    from clearml.automation.optuna import OptimizerOptuna

    from .search_space import build
    from .tune_trial import make_pruner

    space = {name: build(name, spec)[0] for name, spec in settings["space"].items()}
    title, series = objective_metric(settings["objective"])
    pruner = settings["pruner"]
    optimizer = HyperParameterOptimizer(
        base_task_id=settings["base"], hyper_parameters=trial_ranges(space),
        objective_metric_title=title, objective_metric_series=series,
        objective_metric_sign="max_global",  # the training keeps its best epoch: its best value is the trial's
        optimizer_class=OptimizerOptuna, execution_queue=settings["gpu_queue"],
        max_number_of_concurrent_tasks=settings["concurrency"], total_max_jobs=settings["trials"],
        optimization_time_limit=settings["timeout_minutes"] or None,
        time_limit_per_job=settings["trial_minutes"] or None, pool_period_min=POLL_MINUTES,
        # Optuna reports and prunes per epoch; a trial is never cut at its last epoch (+1), and pruning starts
        # after the pruner's warm-up.
        max_iteration_per_job=settings["max_epochs"] + 1,
        min_iteration_per_job=pruner.get("n_warmup_steps") or None,
        optuna_sampler=optuna.samplers.TPESampler(seed=settings["seed"]), optuna_pruner=make_pruner(pruner),
        auto_connect_task=Task.current_task() or False)
    optimizer.set_report_period(POLL_MINUTES)  # its default, 5 minutes, is also how long stop() may wait for it
    optimizer.start()
    optimizer.wait()
    optimizer.stop()
    created = optimizer.get_optimizer().get_created_jobs_ids()  # {task id: parameters}, in creation order
    rows = [trial_row(Task.get_task(task_id=task_id), number, space, title, series)
            for number, task_id in enumerate(created)]
    task = Task.current_task()
    if task is not None:  # the table on the optimizer task too, for whoever opens it in the web UI
        import pandas as pd

        table = pd.DataFrame(rows)
        task.upload_artifact("trials", table, wait_on_upload=True)
        best = best_of(rows)
        if best is not None:
            task.set_parameter("best/task", best["task"])
            task.set_parameter("best/objective", best["objective"])
    say(f"{len(rows)} trials ended")
    return {"rows": rows}


def tune_on_server(config: PipelineConfig, model: str, trials: int, objective: str, space: dict[str, Range],
                   base_task: str, fixed: dict | None = None, concurrency: int = 1, timeout_minutes: float = 0,
                   trial_minutes: float = 0, mode: str = "controller-local", controller_queue: str = "services",
                   quiet: bool = False) -> dict:
    """The study on the server; with mode "controller-local" the optimizer runs here and the results are written to
    `config.run_dir` (trials.csv, best.yaml). Remote: the optimizer task is enqueued on `controller_queue`, and
    its results are on it (the `trials` artifact, `best/*` parameters). Returns {"out", "best", "rows", "task"}."""
    from clearml import Task

    from .server import check_server
    from .tune import DEFAULT_PRUNER

    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    objective_metric(objective)
    if concurrency < 1:
        raise UserError(f"--concurrency {concurrency}: at least 1")
    fixed = dict(fixed or {})
    check_server(tuple(dict.fromkeys((config.gpu_queue, *((controller_queue,) if mode == "remote" else ())))))
    out = Path(config.run_dir).resolve()
    if (out / "study.db").exists():
        raise UserError(f"{out} holds a local study: give the server study another --out")
    base_task = base_task or create_base(config, model, say)
    base, parameters = prepare_base(base_task, model, space, fixed)
    settings = {"base": base, "source": base_task, "model": model, "objective": objective,
                "space": {n: r.text() for n, r in space.items()}, "fixed": fixed, "trials": trials,
                "concurrency": concurrency, "timeout_minutes": timeout_minutes, "trial_minutes": trial_minutes,
                "gpu_queue": config.gpu_queue, "max_epochs": epochs_ceiling(space, fixed, parameters),
                "seed": config.seed, "pruner": DEFAULT_PRUNER, "project": config.project,
                "docker_image": config.docker_image}
    say(f"Tuning {model} on the server: {trials} trials cloned from task {base}, on queue '{config.gpu_queue}' "
        f"({concurrency} at once), {objective} on validation; {len(space)} parameters searched")
    if mode == "remote":
        env = {**os.environ, TUNE_ENV: json.dumps({"settings": settings, "queue": controller_queue})}
        done = subprocess.run([sys.executable, "-m", "pipelines.tune_server"], env=env, check=False)
        if done.returncode:
            raise UserError(f"The optimizer task could not be started (exit code {done.returncode}, above).")
        return {"out": None, "best": None, "rows": [], "task": None}
    out.mkdir(parents=True, exist_ok=True)
    task = Task.init(project_name=config.project, task_name=f"tune {model} ({objective})",
                     task_type=Task.TaskTypes.optimizer, auto_connect_arg_parser=False,
                     auto_connect_frameworks=NOTHING_AUTOMATIC, reuse_last_task_id=False)
    task.set_configuration_object(SETTINGS, config_text=json.dumps(settings, indent=2))
    files.write_text(out / "study.json", json.dumps({**settings, "optimizer_task": task.id}, indent=2))
    say(f"Optimizer task {task.id}: {task.get_output_log_web_page()}")
    start = time.monotonic()
    rows = optimize(settings, say)["rows"]
    best = write_results(out, rows, space, config.replace(run_dir=str(out), models=model), objective, say)
    task.close()
    say(f"Study on the server: {len(rows)} trials in {time.monotonic() - start:.0f} s; {out}: trials.csv"
        + (", best.yaml" if best else ""))
    if best is None:
        raise UserError(f"No trial completed ({len(rows)} ended: {', '.join(r['status'] for r in rows) or 'none'}); "
                        f"each trial's console log is on its task (the table above). Fix the cause and run again.")
    return {"out": out, "best": best, "rows": rows, "task": task.id}


def main() -> int:
    """The optimizer task's entry point: started here by `tune --server` (remote), or re-run by its agent."""
    from clearml import Task

    launch = json.loads(os.environ.pop(TUNE_ENV, "null"))
    if launch is not None:  # on the launching machine: create the task, hand it to the services queue
        settings = launch["settings"]
        task = Task.init(project_name=settings["project"], task_name=f"tune {settings['model']} "
                         f"({settings['objective']})", task_type=Task.TaskTypes.optimizer,
                         auto_connect_arg_parser=False, auto_connect_frameworks=NOTHING_AUTOMATIC,
                         reuse_last_task_id=False)
        task.set_configuration_object(SETTINGS, config_text=json.dumps(settings, indent=2))
        # The agent runs the image's code (as a pipeline's controller does): this module, no repository, no diff,
        # no requirements to install over the image.
        task.set_packages("")
        task.set_script(repository="", branch="", commit="", diff="", working_dir=".",
                        entry_point="-m pipelines.tune_server")
        task.set_base_docker(docker_image=settings["docker_image"])
        print(f"Optimizer task {task.id}: {task.get_output_log_web_page()}", flush=True)
        task.execute_remotely(queue_name=launch["queue"], exit_process=True)
        return 0
    if Task.running_locally():
        print("error: start a study with `brain-tumor tune --server`", file=sys.stderr)
        return 2
    task = Task.init(auto_connect_arg_parser=False, auto_connect_frameworks=False)
    settings = json.loads(task.get_configuration_object(SETTINGS))
    optimize(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
