"""Run one pipeline step: the one way both runners execute a step.

The local runner calls `execute` in a step process it starts (`pipelines/step_process.py`); on ClearML, every step's
generated script calls it through `pipelines/clearml_step.py`. Either way the step's ClearML task is open (framework
auto-logging off), its arguments are coerced to their declared types (the web UI stores every value as a string),
upstream files are restored when the step needs them, a failure is recorded as transient or not (so that only a
transient one is retried), and the result is checked against the declaration.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import zipfile
from pathlib import Path

from brain_tumor import __version__
from brain_tumor.errors import UserError

from .config import coerce, parameters
from .dag import FILES, REFERENCE, declaration

FAILURE = "failure"  # the task's user property that says how the step failed
DETERMINISTIC, TRANSIENT = "deterministic", "transient"
# Errors that may pass when the same step runs again: network, storage, a GPU busy with another job.
TRANSIENT_ERRORS = ("ConnectionError", "TimeoutError", "Timeout", "ResourceExhaustedError", "UnavailableError",
                    "AbortedError", "DeadlineExceededError", "BrokenPipeError", "RemoteDisconnected")
RESERVED = ("code", "version")  # for the runners (reuse decisions, the launcher's version), not the step function
SHARED_SUFFIXES = (".keras",)  # travel through the model registry, not with the run files
LOCAL_FOLDERS = ("clearml", "cache")  # never shared: ClearML's offline sessions, the decoded pixels (re-made anywhere)
# The run files' artifact. Never named like a step result: ClearML's generated step script hands a downstream step
# an upstream *artifact* of the same name in place of the returned value (clearml/backend_interface/task/populate.py).
FILES_ARTIFACT = "run files"


def coerce_arguments(node_name: str, kwargs: dict) -> dict:
    """Each argument declared as `${pipeline.X}`, as parameter X's type; the others (upstream results) as they are."""
    step, model = declaration(node_name)
    declared = {key.replace("{model}", model or "{model}"): value for key, value in step.kwargs.items()}
    fields = {f.name: f for f in parameters()}
    typed, problems = {}, []
    for key, value in kwargs.items():
        match = REFERENCE.fullmatch(str(declared.get(key, "")))
        if match and match.group(1) == "pipeline":
            try:
                value = coerce(fields[match.group(2)], value)
            except ValueError as error:
                problems.append(str(error))
        typed[key] = value
    if problems:
        raise UserError(f"Step {node_name}: invalid arguments:\n  - " + "\n  - ".join(problems))
    return typed


def failure_kind(error: BaseException) -> str:
    """TRANSIENT for errors that may not happen again (network, storage, busy GPU), else DETERMINISTIC."""
    names = {cls.__name__ for cls in type(error).__mro__}
    return TRANSIENT if names & set(TRANSIENT_ERRORS) else DETERMINISTIC


def _record_failure(task, kind: str) -> None:
    if task is not None:
        task.set_user_properties(**{FAILURE: kind})


def _run_files(run_dir: Path) -> dict[str, int]:
    return {str(p.relative_to(run_dir)): p.stat().st_mtime_ns for p in run_dir.rglob("*")
            if p.is_file() and p.suffix not in SHARED_SUFFIXES and p.relative_to(run_dir).parts[0] not in LOCAL_FOLDERS}


def share_files(task, run_dir: Path, before: dict[str, int]) -> str | None:
    """Zip what the step wrote in the run folder (models travel through the registry) into an artifact of its task;
    returns the artifact's address, or None when there is nothing to share or no task."""
    written = sorted(name for name, mtime in _run_files(run_dir).items() if before.get(name) != mtime)
    if task is None or not written:
        return None
    bundle = Path(run_dir, "cache", f"{task.id}.{FILES}.zip")  # on disk, not in memory
    bundle.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in written:
            archive.write(run_dir / name, name)
    task.upload_artifact(FILES_ARTIFACT, artifact_object=bundle, wait_on_upload=True)
    bundle.unlink()
    return task.artifacts[FILES_ARTIFACT].url


def restore_files(reference: str | None, run_dir: Path) -> None:
    """Unpack an upstream step's run files (a local path or an address ClearML can download) into the run folder."""
    if not reference:
        return
    if Path(reference).is_file():
        local = reference
    else:
        from clearml import StorageManager

        local = StorageManager.get_local_copy(reference, extract_archive=False)
        if local is None:
            raise UserError(f"Could not download an upstream step's files from {reference}: check the files "
                            f"server address and storage credentials in clearml.conf.")
    with zipfile.ZipFile(local) as archive:
        archive.extractall(run_dir)


def execute(node_name: str, kwargs: dict, share: bool = False) -> dict:
    """Run the step `node_name` with `kwargs` in the ClearML task already open (if any); returns its result dict,
    with FILES: the address of its run files when `share` (steps on agents that share no disk), else None."""
    from steps.tracking import STEP_KEY_ENV, current_task

    step, _ = declaration(node_name)
    kwargs = coerce_arguments(node_name, kwargs)
    os.environ[STEP_KEY_ENV] = hashlib.sha256(json.dumps([node_name, kwargs], sort_keys=True, default=str).encode()
                                              ).hexdigest()  # what a checkpoint belongs to: code, arguments, data
    task = current_task()
    if task is not None:
        task.set_user_properties(**{FAILURE: ""})  # a retry of this task starts clean
    run_dir = Path(kwargs.get("run_dir") or ".")
    for key in [k for k in kwargs if k.startswith(f"{FILES}_")]:
        restore_files(kwargs.pop(key), run_dir)
    launched = kwargs.get("version")
    if launched and launched != __version__:
        print(f"warning: this agent runs brain-tumor-clearml {__version__}, the pipeline was launched with {launched}: "
              f"rebuild the image from the launcher's checkout (docker build -f docker/Dockerfile -t "
              f"brain-tumor-clearml:{launched} .) or launch from the checkout the image was built from", flush=True)
    for key in RESERVED:
        kwargs.pop(key, None)
    before = _run_files(run_dir) if share and run_dir.is_dir() else {}
    module, function = step.function.split(":")
    try:
        result = getattr(importlib.import_module(module), function)(**kwargs)
    except Exception as error:
        _record_failure(task, failure_kind(error))
        raise
    if sorted(result) != sorted(step.returns):  # the declaration is what ClearML wires
        raise RuntimeError(f"step {node_name} returned {sorted(result)}, declared {list(step.returns)}")
    result[FILES] = share_files(task, run_dir, before) if share else None
    shadowing = sorted(set(task.artifacts if task is not None else ()) & {*step.returns, FILES})
    if shadowing:  # downstream steps would receive these artifacts instead of the results
        raise RuntimeError(f"step {node_name} uploaded artifacts named like its results: {', '.join(shadowing)}")
    return result
