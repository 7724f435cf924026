"""The whole of one experiment, from a data folder to a saved, evaluated model: what `brain-tumor train` and
`brain-tumor evaluate` run, and what the pipeline steps call piece by piece."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .data import Layout, ScannedData, data_report, find_layout, scan, write_data_report
from .errors import UserError
from .evaluation import evaluate_predictions, overfitting_check, predict_probabilities
from .models import build_model, count_params, get_spec, load_model, save_model, spec_dict
from .split import DEFAULT_MAX_DISTANCE, carve, write_manifest
from .training import TrainConfig, balanced_class_weights, best_epoch, fit


@dataclass
class PreparedData:
    scanned: ScannedData
    splits: np.ndarray  # "train" / "val" / "test" per image
    groups: np.ndarray

    def subset(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        mask = self.splits == split
        return self.scanned.pixels[mask], self.scanned.labels[mask]


def split_counts(prepared: PreparedData) -> dict:
    names = prepared.scanned.class_names
    return {split: {name: int(np.sum((prepared.splits == split) & (prepared.scanned.labels == i)))
                    for i, name in enumerate(names)}
            for split in ("train", "val", "test")}


def prepare_data(layout: Layout, image_size: int, val_fraction: float, test_fraction: float, seed: int,
                 out_dir: Path, max_distance: int = DEFAULT_MAX_DISTANCE, progress: bool = True) -> PreparedData:
    """Scan and decode once, carve the grouped stratified splits, and write manifest.csv and data_report.json."""
    scanned = scan(layout, image_size, progress=progress)
    groups, splits = carve(scanned.phashes, scanned.labels, scanned.sources, val_fraction, test_fraction, seed,
                           max_distance)
    prepared = PreparedData(scanned, splits, groups)
    write_manifest(out_dir / "manifest.csv", scanned.files, scanned.class_names, scanned.labels, splits,
                   scanned.phashes, scanned.sha256s, groups)
    report = data_report(scanned, layout)
    report["splits"] = split_counts(prepared)
    report["near_duplicates"] = {"max_hamming_distance": max_distance, "groups": int(groups.max() + 1),
                                 "images_in_groups_of_two_or_more": int(np.sum(np.bincount(groups)[groups] > 1))}
    write_data_report(report, out_dir)
    return prepared


def train_one(prepared: PreparedData, model_name: str, config: TrainConfig, out_dir: Path,
              resnet_weights: str | None = "imagenet") -> dict:
    """Build, fit and evaluate one model; save model.keras, history.json and metrics.json in out_dir."""
    names = prepared.scanned.class_names
    image_size = prepared.scanned.image_size
    model = build_model(model_name, image_size, len(names), resnet_weights)
    train, val = prepared.subset("train"), prepared.subset("val")
    class_weight = balanced_class_weights(train[1], len(names))
    print(f"Training {model_name}: {len(train[1])} train / {len(val[1])} validation images, "
          f"{count_params(model)['total']:,} parameters, class weights "
          + ", ".join(f"{names[c]} {w:.3f}" for c, w in class_weight.items()))
    start = time.perf_counter()
    history = fit(model, train, val, len(names), config, class_weight)
    train_seconds = time.perf_counter() - start

    results = {"model": model_name, "spec": spec_dict(model_name), "params": count_params(model),
               "config": asdict(config), "class_names": names, "image_size": image_size,
               "class_weights": {names[c]: w for c, w in class_weight.items()},
               "epochs_run": len(history), "best_epoch": best_epoch(history)["epoch"],
               "train_seconds": train_seconds}
    for split in ("train", "val", "test"):
        pixels, labels = prepared.subset(split)
        if len(labels):
            results[split] = evaluate_predictions(labels, predict_probabilities(model, pixels), names)
    results["overfitting"] = overfitting_check(results["train"]["accuracy"], results["val"]["accuracy"])

    metadata = {"model_name": model_name, "class_names": names, "image_size": image_size,
                "params": results["params"], "val_accuracy": results["val"]["accuracy"],
                "val_macro_f1": results["val"]["macro_f1"], "brain_tumor_version": __version__}
    save_model(model, out_dir / "model.keras", metadata)
    (out_dir / "history.json").write_text(json.dumps(history, indent=2))
    pd.DataFrame(history).to_csv(out_dir / "history.csv", index=False)
    (out_dir / "metrics.json").write_text(json.dumps(results, indent=2))
    return results


def load_labelled(data: str | Path, class_names: list[str], image_size: int, split: str | None = None,
                  progress: bool = True) -> tuple[np.ndarray, np.ndarray, list]:
    """Pixels and labels (in the model's class order) from a folder of class folders, or from a manifest.csv and
    one of its splits. Returns (pixels, labels, skipped)."""
    data = Path(data)
    if data.suffix == ".csv":
        if not data.is_file():
            raise UserError(f"Manifest not found: {data}.")
        manifest = pd.read_csv(data)
        if split is not None:
            manifest = manifest[manifest["split"] == split]
        if manifest.empty:
            raise UserError(f"No rows with split '{split}' in {data}; splits there: "
                            f"{', '.join(sorted(pd.read_csv(data)['split'].unique()))}.")
        files, classes = manifest["file"].tolist(), manifest["class"].tolist()
        scanned = scan(Layout(data.parent), image_size, class_names=class_names, files=list(zip(files, classes)),
                       progress=progress)
    else:
        layout = find_layout(data)
        folder = layout.test_dir or layout.train_dir  # ROOT/Training + ROOT/Testing: evaluate on Testing
        scanned = scan(Layout(folder), image_size, class_names=class_names, progress=progress)
    return scanned.pixels, scanned.labels, scanned.skipped


def evaluate_saved(model_path: str | Path, data: str | Path, split: str | None = None, progress: bool = True) -> dict:
    """Evaluate a saved model on a labelled folder (or a manifest split)."""
    model, metadata = load_model(model_path)
    pixels, labels, skipped = load_labelled(data, metadata["class_names"], metadata["image_size"], split, progress)
    results = evaluate_predictions(labels, predict_probabilities(model, pixels), metadata["class_names"])
    results.update(model=metadata["model_name"], data=str(data), split=split, skipped_count=len(skipped),
                   skipped=[{"path": s.path, "reason": s.reason} for s in skipped])
    return results


def check_model_name(name: str) -> str:
    get_spec(name)
    return name
