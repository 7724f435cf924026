"""`brain-tumor tune` without a server: an Optuna study of one model's training recipe, kept in its folder.

    OUT/study.db          the study (SQLite): a killed study resumes where it stopped, finished trials are kept
    OUT/study.json        what the study searches (model, objective, space, fixed values, data): another study's
                          folder is refused
    OUT/registered/       the data registered once: manifest.csv (the pipeline's split), data_report.json
    OUT/split/            the tuning manifest (train and validation rows only: trials cannot read the test split),
                          class_weights.json, the decoded pixels
    OUT/trials/NNNN/      one trial: trial.json, log.txt, the training's files, val_predictions.csv, result.json
    OUT/trials.csv        number, status, objective, epochs, seconds, the parameters
    OUT/best.yaml         the best trial's parameters, a configuration file `brain-tumor run --config` takes
    OUT/report.html       history, importances, parallel coordinates, the best trial against the runner-up

Each trial is the pipeline's training step (`train_<model>` through `pipelines/executor.py`, as the local runner
runs it) in a child process of its own (`pipelines/tune_trial.py`), with the split and the class weights computed
once for the study as the pipeline's register_dataset and class_weights steps compute them. Pruning (Optuna's
MedianPruner by default) acts on the objective's per-epoch validation value; the objective is read from the kept
model's validation predictions.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

from brain_tumor import files
from brain_tumor.errors import UserError
from brain_tumor.recipe import Recipe
from brain_tumor.selection import CHAMPION_METRICS

from .config import PipelineConfig
from .dag import data_layout, expand
from .fingerprint import REPO_ROOT
from .local_runner import interrupts, log_tail, resolve
from .lock import RunLock
from .search_space import Range
from .tune_trial import PRUNED

STUDY = "brain-tumor-tune"
# What a study's result fixes: the training parameters a pipeline run takes from best.yaml.
BEST_KEYS = ("models", "image_size", "val_fraction", "test_fraction", "seed", "recipe",
             *(f.name for f in fields(Recipe)), "precision", "weights", "fine_tune_layers", "augment_on")
DATA_KEYS = ("data", "train_dir", "test_dir", "image_size", "val_fraction", "test_fraction", "seed")
DEFAULT_PRUNER = {"kind": "median", "n_startup_trials": 5, "n_warmup_steps": 2}
FAILURES_IN_A_ROW = 3  # then the study stops: the same fault would repeat in every trial


def storage_url(out: Path) -> str:
    return f"sqlite:///{out.resolve() / 'study.db'}"


def settings(config: PipelineConfig, model: str, objective: str, space: dict[str, Range], pruner: dict) -> dict:
    """What identifies a study: a folder holding a study of other settings is refused."""
    values = config.values()
    return {"model": model, "objective": objective, "space": {n: r.text() for n, r in space.items()},
            "fixed": {k: values[k] for k in BEST_KEYS if k not in space and k != "models"},
            "data": {k: values[k] for k in DATA_KEYS}, "pruner": pruner}


def check_folder(out: Path, wanted: dict) -> None:
    """Refuse a folder that holds another study (different settings), saying what differs and how to go on."""
    path = out / "study.json"
    if not path.is_file():
        if (out / "study.db").exists():
            raise UserError(f"{out} holds a study database but no study.json: it is not a study this command "
                            f"started. Choose another --out.")
        return
    held = json.loads(path.read_text())
    if held == wanted:
        return
    differences = []
    for section in wanted:
        a, b = held.get(section), wanted[section]
        if isinstance(a, dict) and isinstance(b, dict):
            differences += [f"{section}.{k}: {a.get(k, '(absent)')!r} there, {b.get(k, '(absent)')!r} now"
                            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            differences.append(f"{section}: {a!r} there, {b!r} now")
    raise UserError(f"{out} holds another study ({len(differences)} setting(s) differ):\n  - "
                    + "\n  - ".join(differences)
                    + f"\nTwo studies never share a folder: give this one another --out, or repeat the first "
                      f"study's options to continue it (its settings are in {path}).")


def register(config: PipelineConfig, out: Path, say) -> dict:
    """The data registered once for the study (the pipeline's split, its class weights); reused on resume, and
    refused when the data folder changed since."""
    import pandas as pd

    from brain_tumor.data import dataset_hash, folder_fingerprint
    from brain_tumor.experiment import prepare_data
    from steps.class_weights import class_weights

    layout = data_layout(config)
    fingerprint = folder_fingerprint(layout)
    split = out / "split"
    path = split / "registration.json"
    if path.is_file():
        record = json.loads(path.read_text())
        if record["fingerprint"] != fingerprint:
            raise UserError(f"The data folder changed since this study registered it ({path}): its trials would not "
                            f"compare. Start a new study (another --out).")
        return record
    say(f"Registering the data once for the study in {out / 'registered'}")
    prepared = prepare_data(layout, config.image_size, config.val_fraction, config.test_fraction, config.seed,
                            out / "registered", progress=False)
    digest = dataset_hash(prepared.scanned)
    shutil.rmtree(out / "registered" / "cache", ignore_errors=True)  # the trials decode train and validation only
    manifest = pd.read_csv(out / "registered" / "manifest.csv", dtype={"phash": str, "sha256": str})
    split.mkdir(parents=True, exist_ok=True)
    tuning = manifest[manifest["split"] != "test"]
    tuning.to_csv(split / "manifest.csv", index=False)
    weights = class_weights(str(split / "manifest.csv"), digest, str(split))["class_weights"]
    record = {"fingerprint": fingerprint, "manifest": str((split / "manifest.csv").resolve()),
              "dataset_hash": digest, "class_weights": weights,
              "images": {s: int((manifest["split"] == s).sum()) for s in ("train", "val", "test")}}
    files.write_text(path, json.dumps(record, indent=2))
    return record


def train_kwargs(config: PipelineConfig, model: str, registration: dict) -> dict:
    """The training step's resolved arguments, as the local runner resolves them for `train_<model>`."""
    (node,) = [n for n in expand([model]) if n.name == f"train_{model}"]
    results = {"register_dataset": {"manifest": registration["manifest"], "dataset_hash": registration["dataset_hash"],
                                    "dataset_id": None},
               "class_weights": {"class_weights": registration["class_weights"]}}
    parameters = config.replace(allow_cpu=True).values()  # trains wherever it runs, as a local run does
    return {key: resolve(value, parameters, results) for key, value in node.kwargs.items()}


def finished(study) -> list:
    """The trials that count towards --trials: complete, pruned or failed (not those a kill interrupted)."""
    from optuna.trial import TrialState

    return [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
            and not t.user_attrs.get("interrupted")]


def requeue_interrupted(study, say) -> None:
    """Trials left running by a killed study: recorded as interrupted, and their parameters tried again first."""
    import optuna
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        optuna.trial.Trial(study, t._trial_id).set_user_attr("interrupted", True)
        study.tell(t.number, state=TrialState.FAIL)
        if t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        say(f"Trial {t.number} was interrupted: its parameters run again")


def run_trial(out: Path, call: dict, env: dict) -> tuple[int, float]:
    """The trial's process, to its end (stopped with its children on Ctrl-C or SIGTERM); (exit code, seconds)."""
    folder = out / "trials" / f"{call['number']:04d}"
    start = time.perf_counter()
    with open(folder / "log.txt", "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "pipelines.tune_trial", str(folder)], stdout=log,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            return process.wait(), time.perf_counter() - start
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            raise


def tune(config: PipelineConfig, model: str, trials: int, objective: str, space: dict[str, Range],
         timeout_minutes: float = 0, config_file: dict | None = None, pruner: dict | None = None,
         quiet: bool = False) -> dict:
    """Run (or continue) the study in `config.run_dir` until it holds `trials` finished trials, or until
    `timeout_minutes` have passed (no trial starts after that); writes trials.csv, best.yaml and report.html.
    Returns {"out", "best", "trials"}."""
    import optuna

    from .tune_report import write_results

    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    if objective not in CHAMPION_METRICS:
        raise UserError(f"objective: {objective!r} is not one of {', '.join(CHAMPION_METRICS)} (validation only)")
    if config.recipe == "seed":
        raise UserError("tune searches the tuned recipe's parameters; recipe=seed fixes them all: drop --recipe seed")
    out = Path(config.run_dir).resolve()
    config = config.replace(run_dir=str(out), models=model)
    pruner = pruner or DEFAULT_PRUNER
    wanted = settings(config, model, objective, space, pruner)
    out.mkdir(parents=True, exist_ok=True)
    with RunLock(out), interrupts():
        check_folder(out, wanted)
        registration = register(config, out, say)
        files.write_text(out / "study.json", json.dumps(wanted, indent=2))
        if config_file:
            files.write_text(out / "config_file.json", json.dumps(config_file, indent=2))
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        from .tune_trial import make_pruner

        direction = "maximize" if CHAMPION_METRICS[objective][1] else "minimize"
        study = optuna.create_study(study_name=STUDY, storage=storage_url(out), direction=direction,
                                    sampler=optuna.samplers.TPESampler(seed=config.seed),
                                    pruner=make_pruner(pruner), load_if_exists=True)
        requeue_interrupted(study, say)
        done = len(finished(study))
        say(f"Study {out}: {model}, {objective} ({direction}), {len(space)} parameters searched, "
            f"{done} of {trials} trials already finished; validation {registration['images']['val']} images, "
            f"training {registration['images']['train']} (the test split is never read)")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
               "CLEARML_OFFLINE_MODE": "1"}
        deadline = time.monotonic() + timeout_minutes * 60 if timeout_minutes else None
        failures = 0
        while len(finished(study)) < trials:
            if deadline is not None and time.monotonic() > deadline:
                say(f"Stopped after {timeout_minutes:g} minutes: {len(finished(study))} of {trials} trials finished "
                    f"(the same command continues the study)")
                break
            trial = study.ask()
            params = {name: r.suggest(trial) for name, r in space.items()}
            folder = out / "trials" / f"{trial.number:04d}"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            try:
                trial_config = config.replace(**params, run_dir=str(folder))
            except UserError as error:  # a combination the configuration refuses
                trial.set_user_attr("why", str(error))
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                continue
            call = {"study": STUDY, "storage": storage_url(out), "trial_id": trial._trial_id, "number": trial.number,
                    "objective": objective, "pruner": pruner, "name": f"train_{model}", "params": params,
                    "kwargs": train_kwargs(trial_config, model, registration)}
            files.write_text(folder / "trial.json", json.dumps(call, indent=2, default=str))
            say(f"  trial {trial.number}: " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                                        for k, v in params.items()))
            code, seconds = run_trial(out, call, env)
            trial.set_user_attr("seconds", round(seconds, 1))
            if code == 0:
                result = json.loads((folder / "result.json").read_text())
                trial.set_user_attr("epochs", result["epochs"])
                trial.set_user_attr("best_epoch", result["best_epoch"])
                study.tell(trial, result["value"])
                failures = 0
                say(f"    {objective} {result['value']:.4f} ({result['epochs']} epochs, {seconds:.0f} s)")
            elif code == PRUNED:
                pruned = json.loads((folder / "pruned.json").read_text())
                trial.set_user_attr("epochs", pruned["epochs"])
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                failures = 0
                say(f"    pruned after {pruned['epochs']} epoch(s) ({seconds:.0f} s)")
            else:
                trial.set_user_attr("why", log_tail(folder / "log.txt", 3).strip()[-500:])
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                failures += 1
                say(f"    FAILED (exit code {code}); its log: {folder / 'log.txt'}\n{log_tail(folder / 'log.txt')}")
                if code == 2 or failures >= FAILURES_IN_A_ROW:
                    write_results(study, out, objective, space, config)
                    raise UserError(f"Trial {trial.number} failed (exit code {code}), log {folder / 'log.txt'}:\n"
                                    f"{log_tail(folder / 'log.txt')}\nFix the cause and run the same command: the "
                                    f"study continues.")
            write_results(study, out, objective, space, config, report=False)
        best = write_results(study, out, objective, space, config)
    say(f"Study: {len(finished(study))} trials in {out}: trials.csv, best.yaml, report.html")
    return {"out": out, "best": best, "trials": len(finished(study))}
