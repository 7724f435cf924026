"""Step: train one model (one node per model name), save its best epoch as .keras with its history."""

from __future__ import annotations

import json
import os
from pathlib import Path

from brain_tumor import figures
from brain_tumor.errors import UserError
from brain_tumor.experiment import train_and_save
from brain_tumor.model_specs import get_spec

from . import checkpoints, registry
from .registry import step_data
from .tracking import STEP_KEY_ENV, current_task, report_images, report_scalars, report_text, upload_artifact


# Called with each epoch's row after it is reported; `brain-tumor tune` adds one that reports to its trial and raises
# optuna.TrialPruned when the trial should stop (pipelines/tune_trial.py). Empty in a pipeline run.
EPOCH_LISTENERS: list = []


def report_epoch(row: dict) -> None:
    """Per-epoch scalars, as ClearML shows them: train vs validation curves, learning rate, epoch time; then the
    epoch listeners."""
    step = row["epoch"]
    report_scalars("accuracy", {"train": row.get("accuracy"), "validation": row.get("val_accuracy")}, step)
    report_scalars("loss", {"train": row.get("loss"), "validation": row.get("val_loss")}, step)
    report_scalars("macro F1", {"validation": row.get("val_macro_f1")}, step)
    report_scalars("learning rate", {"lr": row["learning_rate"]}, step)
    report_scalars("epoch seconds", {"seconds": row["epoch_seconds"]}, step)
    for listener in EPOCH_LISTENERS:
        listener(row)


def train_model(model: str, manifest: str, dataset_hash: str, class_weights: dict, run_dir: str, image_size: int,
                seed: int, dataset_id: str, val_fraction: float, test_fraction: float, precision: str,
                augment_on: str, allow_cpu: bool, recipe: str, weights: str = "none", fine_tune_layers: int = 0,
                **knobs) -> dict:
    """`knobs` are the tuned recipe's parameters (`brain_tumor.recipe.Recipe`); `recipe="seed"` trains with the
    notebook's instead. `weights` and `fine_tune_layers` reach transfer models only (the DAG's `only_for`), so a
    new weights file retrains those alone."""
    import tensorflow as tf

    from brain_tumor.models import summary_text
    from brain_tumor.recipe import Recipe, choose
    from brain_tumor.training import TrainConfig

    if not allow_cpu and not tf.config.list_physical_devices("GPU"):
        raise UserError(f"train_{model}: TensorFlow sees no GPU on this machine (CUDA_VISIBLE_DEVICES="
                        f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}). Check the agent: it needs `--gpus` and "
                        f"the project's image (docker/README.md shows how to check that TensorFlow sees the GPU), or "
                        f"set the pipeline parameter allow_cpu=true to train on the CPU (slow).")
    spec = get_spec(model)
    trained_with = choose(recipe, Recipe(**knobs))
    prepared = step_data(manifest, image_size, dataset_hash, dataset_id, val_fraction, test_fraction, seed, run_dir,
                         crop=trained_with.crop)
    names = prepared.scanned.class_names
    config = TrainConfig(trained_with, trained_with.batch_size or spec.batch_size, seed, augment_on)
    out = Path(run_dir) / "models" / model
    task = current_task()
    uploads = None
    if task is not None and not task.is_offline():  # on a server the checkpoint also goes up: a retry resumes it
        checkpoints.restore_checkpoint(task, out / "checkpoint")
        uploads = checkpoints.CheckpointUploads(task, out / "checkpoint")  # the folder restore_checkpoint fills
    try:
        keras_model, record = train_and_save(prepared, model, config, out,
                                             None if weights.lower() == "none" else weights,
                                             class_weight={names.index(c): w for c, w in class_weights.items()},
                                             on_epoch=report_epoch, fine_tune_layers=fine_tune_layers,
                                             precision=precision, checkpoint_key=os.environ.get(STEP_KEY_ENV, ""),
                                             on_checkpoint=uploads)
    finally:
        if uploads is not None:
            uploads.wait()  # once: the last epoch's checkpoint is on the server before the step goes on (or fails)
    summary = summary_text(keras_model)
    history = json.loads((out / "history.json").read_text())
    report_images(figures.training(history, model, summary, figures.report_dir(run_dir) / "models" / model,
                                   record["best_epoch"], record["monitor"]))
    report_text(summary)
    record["dataset_hash"] = dataset_hash
    model_ref = str(out / "model.keras")
    if task is not None:
        task.set_parameter("dataset/hash", dataset_hash)
        upload_artifact("training", record)
        model_ref = registry.publish_model(task, model_ref, record)
    return {"trained": {"model": model, "model_ref": model_ref, "training": record}, "dataset_hash": dataset_hash}
