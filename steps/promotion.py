"""Server side of champion promotion: which model holds the project's champion tag, which images it trained on, and
both models' predictions on this run's validation images that neither trained on. `brain_tumor.promotion.decide`
makes the decision; `select_champion` moves the tags."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brain_tumor.errors import UserError
from brain_tumor.promotion import comparison_mask, decide

from .registry import CHAMPION_TAG, find_models, resolve_model, step_data

REGISTER_STEP = "register_dataset"
MANIFEST_ARTIFACT = "split manifest"  # steps/register_dataset.py uploads the run's manifest.csv under this name
SPLIT_ARGUMENTS = ("val_fraction", "test_fraction", "seed")  # with the data, they fix the split (deterministic)


class Incomparable(Exception):
    """The two models cannot be compared on images neither trained on; the message says why."""


def promotion(policy: str, new_id: str, new_path: Path, run_dir: Path, project: str, data: dict) -> dict:
    """The promotion decision for the run's champion `new_id` (its .keras at `new_path`). `data`: this run's
    dataset_hash and what re-derives its split elsewhere (dataset_id, val_fraction, test_fraction, seed)."""
    if policy != "if-better":
        return decide(policy)
    holder = tag_holder(project)
    if holder is None:
        return decide(policy)
    if holder == new_id:  # a re-run whose champion already holds the tag
        return {**decide(policy), "holder": holder, "why": "Crowned: it already holds the champion tag."}
    try:
        holder_train = holder_training_hashes(holder, data)
        new = scored(new_path, run_dir, data, holder_train)
        old = scored(resolve_model(holder, project), run_dir, data, holder_train)
    except (Incomparable, UserError) as reason:
        return decide(policy, holder=holder, unavailable=str(reason))
    if new[0] != old[0]:
        return decide(policy, holder=holder, unavailable="the images loaded for the two models differ")
    names = sorted({*new[1], *new[2], *old[2]})
    index = {n: i for i, n in enumerate(names)}
    labels, pred_new, pred_old = (np.array([index[n] for n in values], np.int64) for values in (new[1], new[2], old[2]))
    return decide(policy, labels, pred_new, pred_old, names, holder=holder)


def tag_holder(project: str) -> str | None:
    """The published model of the project that carries the champion tag (the one `predict champion` serves)."""
    tagged = find_models(CHAMPION_TAG, only_published=True, project=project)
    return tagged[0] if tagged else None


def holder_training_hashes(holder: str, data: dict) -> set[str]:
    """The content hashes of the holder's training images, from its pipeline's split manifest. Without that manifest,
    the empty set when the holder was trained on this run's data with this run's split arguments (its training split
    is then this run's, which the validation images are apart from); else Incomparable."""
    from brain_tumor.experiment import read_manifest

    manifest, training = holder_manifest(holder)
    if manifest is not None:
        frame, _ = read_manifest(manifest)
        return set(frame.loc[frame["split"] == "train", "sha256"])
    from clearml import Model

    holder_hash = Model(holder).get_metadata("dataset_hash")
    if holder_hash != data.get("dataset_hash"):
        raise Incomparable(f"its split manifest was not found, and it was trained on other data (dataset hash "
                           f"{str(holder_hash)[:12]}…, this run's {str(data.get('dataset_hash'))[:12]}…)")
    differ = [name for name, value in split_arguments(training).items()
              if name in data and float(value) != float(data[name])]
    if differ:
        raise Incomparable(f"its split manifest was not found, and its split differs from this run's "
                           f"({', '.join(differ)})")
    return set()


def holder_manifest(holder: str):
    """(local copy of the holder's split manifest or None, the holder's training task or None): the model's task →
    its pipeline → that pipeline's register_dataset step → artifact 'split manifest'."""
    from clearml import Model, Task

    try:  # an unknown or deleted task, no access: the SDK has no single error type for these
        training = Task.get_task(task_id=Model(holder).task)
    except Exception:
        return None, None
    if not training.parent:  # not a pipeline step (a local run tracked on the server)
        return None, training
    try:
        step = register_step(Task.get_task(task_id=training.parent))
        if step is None or MANIFEST_ARTIFACT not in step.artifacts:
            return None, training
        local = step.artifacts[MANIFEST_ARTIFACT].get_local_copy(extract_archive=False)
    except Exception:
        return None, training
    return (Path(local) if local else None), training


def register_step(pipeline):
    """A pipeline's register_dataset task: the one its controller recorded (a step reused from the cache ran under an
    earlier pipeline), else its child task of that name."""
    from clearml import Task
    from clearml.automation import PipelineController

    dag = pipeline.get_configuration_object_as_dict(PipelineController._config_section) or {}
    executed = (dag.get(REGISTER_STEP) or {}).get("executed")
    if executed:
        return Task.get_task(task_id=executed)
    found = Task._query_tasks(parent=pipeline.id, task_name=f"^{REGISTER_STEP}$", order_by=["-last_update"],
                              fetch_only_first_page=True, search_hidden=True, _allow_extra_fields_=True)
    return Task.get_task(task_id=found[0].id) if found else None


def split_arguments(training) -> dict:
    """The split arguments a training step ran with (its task's kwargs), those it recorded."""
    if training is None:
        return {}
    parameters = training.get_parameters() or {}
    return {name: parameters[f"kwargs/{name}"] for name in SPLIT_ARGUMENTS if f"kwargs/{name}" in parameters}


def run_images(run_dir: Path, image_size: int, crop: bool, data: dict):
    """This run's images at a model's size and crop: from the run's manifest where its files are on this machine,
    else re-derived from the run's dataset version (the split is deterministic), in the run's local cache."""
    from brain_tumor.experiment import load_prepared, read_manifest

    manifest = Path(run_dir) / "manifest.csv"
    if manifest.is_file() and all(Path(f).is_file() for f in read_manifest(manifest)[0]["file"]):
        return load_prepared(manifest, image_size, progress=False, crop=crop)
    if not data.get("dataset_id"):
        raise Incomparable(f"this run's images are not on this machine ({manifest} lists files it does not hold) "
                           f"and the run has no dataset version to fetch them from")
    return step_data("", image_size, data["dataset_hash"], data["dataset_id"], data["val_fraction"],
                     data["test_fraction"], data["seed"], str(Path(run_dir) / "cache" / "promotion"), crop=crop)


def scored(model_path, run_dir: Path, data: dict, holder_train: set[str]) -> tuple[list, list, list]:
    """(content hashes, true classes, predicted classes) of the comparison images, for the model at `model_path`."""
    from brain_tumor.evaluation import predict_probabilities
    from brain_tumor.models import load_model
    from brain_tumor.pixels import Rows

    model, metadata = load_model(model_path)
    prepared = run_images(run_dir, metadata["image_size"], metadata.get("crop", False), data)
    rows = np.flatnonzero(comparison_mask(prepared.scanned.sha256s, prepared.splits, holder_train))
    probabilities = predict_probabilities(model, Rows(prepared.scanned.pixels, rows))
    names, run_names = metadata["class_names"], prepared.scanned.class_names
    return ([prepared.scanned.sha256s[i] for i in rows], [run_names[label] for label in prepared.scanned.labels[rows]],
            [names[i] for i in probabilities.argmax(axis=1)])
