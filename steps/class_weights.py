"""Step: balanced class weights from the training split."""

from __future__ import annotations

import json
from pathlib import Path

from brain_tumor.class_balance import balanced_class_weights
from brain_tumor.experiment import read_manifest

from .tracking import report_scalars


def class_weights(manifest: str, dataset_hash: str, run_dir: str) -> dict:
    rows, names = read_manifest(manifest)
    labels = rows.loc[rows["split"] == "train", "label"].to_numpy()
    weights = {names[c]: w for c, w in balanced_class_weights(labels, len(names)).items()}
    Path(run_dir, "class_weights.json").write_text(json.dumps({"dataset_hash": dataset_hash, **weights}, indent=2))
    report_scalars("class weight", weights)
    return {"class_weights": weights, "dataset_hash": dataset_hash}
