"""Step: balanced class weights from the training split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from brain_tumor.class_balance import balanced_class_weights
from brain_tumor.errors import UserError
from brain_tumor.experiment import read_manifest

from .tracking import report_scalars


def class_weights(manifest: str, dataset_hash: str, run_dir: str, counts: dict | None = None) -> dict:
    """From the manifest's training rows; on an agent without the run folder, from the registered split's counts
    (images per split and class, in class order), which give the same weights."""
    if Path(manifest).is_file():
        rows, names = read_manifest(manifest)
        labels = rows.loc[rows["split"] == "train", "label"].to_numpy()
    elif counts:
        names = list(counts["train"])
        labels = np.repeat(np.arange(len(names)), list(counts["train"].values()))
    else:
        raise UserError(f"The manifest {manifest} is not on this machine and no split counts were given.")
    weights = {names[c]: w for c, w in balanced_class_weights(labels, len(names)).items()}
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    Path(run_dir, "class_weights.json").write_text(json.dumps({"dataset_hash": dataset_hash, **weights}, indent=2))
    report_scalars("class weight", weights)
    return {"class_weights": weights, "dataset_hash": dataset_hash}
