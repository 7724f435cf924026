"""Step: train one model (one node per model name), save its best epoch as .keras with its history."""

from __future__ import annotations

from pathlib import Path

from brain_tumor.experiment import load_prepared, train_and_save
from brain_tumor.model_specs import get_spec

from .tracking import current_task, report_scalars, upload_artifact


def report_epoch(row: dict) -> None:
    """Per-epoch scalars, as ClearML shows them: train vs validation curves, learning rate, epoch time."""
    step = row["epoch"]
    report_scalars("accuracy", {"train": row.get("accuracy"), "validation": row.get("val_accuracy")}, step)
    report_scalars("loss", {"train": row.get("loss"), "validation": row.get("val_loss")}, step)
    report_scalars("learning rate", {"lr": row["learning_rate"]}, step)
    report_scalars("epoch seconds", {"seconds": row["epoch_seconds"]}, step)


def train_model(model: str, manifest: str, dataset_hash: str, class_weights: dict, run_dir: str, epochs: int,
                image_size: int, batch_size: int, lr: float, seed: int, resnet_weights: str = "imagenet",
                augment_on: str = "auto") -> dict:
    from brain_tumor.training import TrainConfig

    spec = get_spec(model)
    prepared = load_prepared(manifest, image_size)
    names = prepared.scanned.class_names
    config = TrainConfig(epochs=epochs, learning_rate=lr, batch_size=batch_size or spec.batch_size, seed=seed,
                         augment_on=augment_on)
    weights = None if str(resnet_weights).lower() in ("", "none") else resnet_weights
    out = Path(run_dir) / "models" / model
    _, record = train_and_save(prepared, model, config, out, weights,
                               class_weight={names.index(c): w for c, w in class_weights.items()},
                               on_epoch=report_epoch)
    record["dataset_hash"] = dataset_hash
    task = current_task()
    if task is not None:
        task.set_parameter("dataset/hash", dataset_hash)
        upload_artifact("training", record)
    return {"trained": {"model": model, "model_ref": str(out / "model.keras"), "training": record},
            "dataset_hash": dataset_hash}
