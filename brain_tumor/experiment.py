"""From a data folder to a saved, evaluated model, in the pieces the pipeline steps call one by one
(prepare → train → evaluate) and whole for `brain-tumor train`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__, files
from .class_balance import balanced_class_weights
from .data import Layout, ScannedData, data_report, find_layout, rows_digest, scan, write_data_report
from .errors import UserError
from .pixels import PixelFile, Rows
from .split import DEFAULT_MAX_DISTANCE, carve, write_manifest


@dataclass
class PreparedData:
    scanned: ScannedData
    splits: np.ndarray  # "train" / "val" / "test" per image
    groups: np.ndarray

    def subset(self, split: str) -> tuple[Rows, np.ndarray]:
        """The split's images (read a batch at a time when they are on disk) and labels."""
        mask = self.splits == split
        return Rows(self.scanned.pixels, np.flatnonzero(mask)), self.scanned.labels[mask]


def pixel_cache(run_dir: str | Path, image_size: int, crop: bool) -> Path:
    """Where a run keeps its images decoded at one size (and crop): decoded once, read by every step."""
    return Path(run_dir) / "cache" / f"pixels-{image_size}px{'-crop' if crop else ''}.u8"


def split_counts(prepared: PreparedData) -> dict:
    names = prepared.scanned.class_names
    return {split: {name: int(np.sum((prepared.splits == split) & (prepared.scanned.labels == i)))
                    for i, name in enumerate(names)}
            for split in ("train", "val", "test")}


def prepare_data(layout: Layout, image_size: int, val_fraction: float, test_fraction: float, seed: int,
                 out_dir: Path, max_distance: int = DEFAULT_MAX_DISTANCE, progress: bool = True,
                 crop: bool = False) -> PreparedData:
    """Scan and decode once (into the run's pixel cache), carve the grouped stratified splits, and write manifest.csv
    and data_report.json."""
    scanned = scan(layout, image_size, progress=progress, crop=crop, pixels_to=pixel_cache(out_dir, image_size, crop))
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


def read_manifest(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """The manifest and its class names (in label order)."""
    if not Path(path).is_file():
        raise UserError(f"Manifest not found: {path}.")
    manifest = pd.read_csv(path, dtype={"phash": str, "sha256": str})
    pairs = manifest[["label", "class"]].drop_duplicates().sort_values("label")
    return manifest, pairs["class"].tolist()


def unchanged(files: list[str], sha256s: list[str], manifest_path) -> None:
    """Refuse to go on when a file is gone or differs from what the manifest recorded (data changed mid-run)."""
    def digest(path: str) -> str | None:
        try:
            return hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            return None

    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        changed = [f for f, sha, now in zip(files, sha256s, pool.map(digest, files)) if now != sha]
    if changed:
        raise UserError(f"The data changed since {manifest_path} was written: {len(changed)} files missing, "
                        f"unreadable or modified (e.g. {changed[0]}). Register the dataset again (re-run).")


def load_prepared(manifest_path: str | Path, image_size: int, progress: bool = True,
                  crop: bool = False) -> PreparedData:
    """The images a manifest lists, in its splits: from the run's pixel cache when it holds exactly these images
    (every file still checked against its recorded SHA-256), else decoded once into it."""
    manifest, names = read_manifest(manifest_path)
    files, sha256s = list(manifest["file"]), list(manifest["sha256"])
    cache = pixel_cache(Path(manifest_path).parent, image_size, crop)
    try:
        pixels = PixelFile(cache)
    except (OSError, ValueError, KeyError):  # no cache yet, or a truncated one: decode again
        pixels = None
    if pixels is not None and pixels.meta.get("rows") != rows_digest(files, sha256s):
        pixels = None  # a cache of other images (another run wrote this folder)
    if pixels is not None:
        unchanged(files, sha256s, manifest_path)
        scanned = ScannedData(names, image_size, files, manifest["label"].to_numpy(np.int64), ["train"] * len(files),
                              list(manifest["phash"]), sha256s, pixels, crop=crop)
    else:
        scanned = scan(Layout(Path(manifest_path).parent), image_size, class_names=names,
                       files=list(zip(files, manifest["class"])), progress=progress, crop=crop, pixels_to=cache)
        actual = dict(zip(scanned.files, scanned.sha256s))
        if any(actual.get(f) != sha for f, sha in zip(files, sha256s)):
            unchanged(files, sha256s, manifest_path)
    return PreparedData(scanned, manifest["split"].to_numpy(str), manifest["group"].to_numpy())


def train_and_save(prepared: PreparedData, model_name: str, config, out_dir: Path, weights: str | None = None,
                   class_weight: dict[int, float] | None = None, on_epoch: Callable[[dict], None] | None = None,
                   fine_tune_layers: int = 0, precision: str = "float32", checkpoint_key: str = "",
                   on_checkpoint: Callable[[Path], None] | None = None):
    """Build and fit one model (a transfer model: then, with `fine_tune_layers`, its backbone's top layers at a tenth
    of the learning rate); save model.keras (best epoch, float32, metadata inside), history.json/.csv and
    training.json. Returns (model, training record). With a `checkpoint_key`, the training state is saved after
    every epoch in out_dir/checkpoint (and resumed from there when this same training was killed before); the
    folder goes once the model is saved."""
    from . import precision as mixed
    from .models import build_model, count_params, save_model, spec_dict, unfreeze_top
    from .training import best_epoch, fit, monitor_mode

    names = prepared.scanned.class_names
    image_size = prepared.scanned.image_size
    recipe = config.recipe
    spec = spec_dict(model_name)
    with mixed.scoped(precision) as resolved:  # undone when training ends (evaluation runs in float32)

        def build():
            return build_model(model_name, image_size, len(names), weights, normalize=recipe.normalize)

        model = build()
        train, val = prepared.subset("train"), prepared.subset("val")
        if class_weight is None:
            class_weight = balanced_class_weights(train[1], len(names))
        print(f"Training {model_name}: {len(train[1])} train / {len(val[1])} validation images, "
              f"{count_params(model)['total']:,} parameters, {resolved}, class weights "
              + ", ".join(f"{names[c]} {w:.3f}" for c, w in class_weight.items()))
        start = time.perf_counter()
        saving = {} if not checkpoint_key else {"checkpoint_key": checkpoint_key, "on_checkpoint": on_checkpoint}
        checkpoints = out_dir / "checkpoint"
        history = fit(model, train, val, len(names), config, class_weight, on_epoch=on_epoch,
                      checkpoint=checkpoints / "train" if saving else None, **saving)
        best = best_epoch(history, recipe.monitor)
        if fine_tune_layers and spec["family"] == "transfer":
            frozen = model.get_weights()
            opened = unfreeze_top(model, fine_tune_layers)
            print(f"Fine-tuning the top {fine_tune_layers} layers of the backbone ({opened} with weights) at a "
                  f"tenth of the learning rate")
            tuned = fit(model, train, val, len(names), config, class_weight, lr_scale=0.1, stage="fine-tune",
                        on_epoch=on_epoch and (lambda row: on_epoch({**row, "epoch": row["epoch"] + len(history)})),
                        checkpoint=checkpoints / "fine-tune" if saving else None, **saving)
            tuned = [{**row, "epoch": row["epoch"] + len(history)} for row in tuned]
            candidate = best_epoch(tuned, recipe.monitor)
            if best_epoch([best, candidate], recipe.monitor) is candidate:
                best = candidate
            else:  # fine-tuning never beat the frozen stage: keep the frozen stage's best weights
                model.set_weights(frozen)
            history += tuned
        model = mixed.float32_copy(model, build)
    record = {"model": model_name, "spec": spec, "params": count_params(model), "recipe": asdict(recipe),
              "batch_size": config.batch_size, "seed": config.seed, "precision": resolved,
              "class_names": names, "image_size": image_size, "crop": prepared.scanned.crop,
              "class_weights": {names[c]: w for c, w in class_weight.items()},
              "weights": (weights or "none") if spec["family"] == "transfer" else None,
              "fine_tune_layers": fine_tune_layers if spec["family"] == "transfer" else 0,
              "epochs_run": len(history), "best_epoch": best["epoch"], "monitor": recipe.monitor,
              "best_monitor": best[recipe.monitor], "best_val_loss": best["val_loss"],
              "monitor_mode": monitor_mode(recipe.monitor), "train_seconds": time.perf_counter() - start}
    out_dir.mkdir(parents=True, exist_ok=True)
    save_model(model, out_dir / "model.keras", {
        "model_name": model_name, "class_names": names, "image_size": image_size, "crop": prepared.scanned.crop,
        "params": record["params"], "val_accuracy": best["val_accuracy"], "val_loss": best["val_loss"],
        "brain_tumor_version": __version__})
    (out_dir / "history.json").write_text(json.dumps(history, indent=2))
    pd.DataFrame(history).to_csv(out_dir / "history.csv", index=False)
    files.write_text(out_dir / "training.json", json.dumps(record, indent=2))
    shutil.rmtree(checkpoints, ignore_errors=True)  # the model is saved: nothing left to resume
    return model, record


def predict_splits(model, prepared: PreparedData) -> dict[str, np.ndarray]:
    """Class probabilities for every non-empty split."""
    from .evaluation import predict_probabilities

    return {split: predict_probabilities(model, prepared.subset(split)[0])
            for split in ("train", "val", "test") if np.any(prepared.splits == split)}


def evaluate_splits(model, prepared: PreparedData, probabilities: dict[str, np.ndarray] | None = None) -> dict:
    """Metrics and calibration on every non-empty split, and the train-vs-validation accuracy gap."""
    from .calibration import reliability
    from .evaluation import evaluate_predictions, overfitting_check

    probabilities = probabilities if probabilities is not None else predict_splits(model, prepared)
    results, calibration = {}, {}
    for split, probs in probabilities.items():
        labels = prepared.subset(split)[1]
        results[split] = evaluate_predictions(labels, probs, prepared.scanned.class_names)
        calibration[split] = reliability(probs, labels)
    results["calibration"] = calibration
    results["overfitting"] = overfitting_check(results["train"]["accuracy"], results["val"]["accuracy"])
    return results


def predictions_frame(prepared: PreparedData, probabilities: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per image: file, split, true and predicted class, confidence and every class probability."""
    names = prepared.scanned.class_names
    frames = []
    for split, probs in probabilities.items():
        mask = prepared.splits == split
        frame = pd.DataFrame({"file": np.array(prepared.scanned.files)[mask], "split": split,
                              "true": [names[i] for i in prepared.scanned.labels[mask]],
                              "predicted": [names[i] for i in probs.argmax(axis=1)],
                              "confidence": probs.max(axis=1).round(4)})
        frames.append(frame.join(pd.DataFrame(probs.round(4), columns=[f"p_{n}" for n in names])))
    return pd.concat(frames, ignore_index=True)


def train_one(prepared: PreparedData, model_name: str, config, out_dir: Path, weights: str | None = None,
              fine_tune_layers: int = 0, precision: str = "float32") -> dict:
    """Train, save and evaluate one model (`brain-tumor train`); writes metrics.json too."""
    model, record = train_and_save(prepared, model_name, config, out_dir, weights,
                                   fine_tune_layers=fine_tune_layers, precision=precision)
    results = {**record, **evaluate_splits(model, prepared)}
    (out_dir / "metrics.json").write_text(json.dumps(results, indent=2))
    return results


def load_labelled(data: str | Path, class_names: list[str], image_size: int, split: str | None = None,
                  progress: bool = True, crop: bool = False) -> tuple[np.ndarray, np.ndarray, list]:
    """Pixels and labels (in the model's class order) from a folder of class folders, or from a manifest.csv and
    one of its splits. Returns (pixels, labels, skipped)."""
    data = Path(data)
    if data.suffix == ".csv":
        manifest, _ = read_manifest(data)
        if split is not None:
            manifest = manifest[manifest["split"] == split]
        if manifest.empty:
            raise UserError(f"No rows with split '{split}' in {data}; splits there: "
                            f"{', '.join(sorted(pd.read_csv(data)['split'].unique()))}.")
        scanned = scan(Layout(data.parent), image_size, class_names=class_names,
                       files=list(zip(manifest["file"], manifest["class"])), progress=progress, crop=crop)
    else:
        layout = find_layout(data)
        folder = layout.test_dir or layout.train_dir  # ROOT/Training + ROOT/Testing: evaluate on Testing
        scanned = scan(Layout(folder), image_size, class_names=class_names, progress=progress, crop=crop)
    return scanned.pixels, scanned.labels, scanned.skipped


def evaluate_saved(model_path: str | Path, data: str | Path, split: str | None = None, progress: bool = True) -> dict:
    """Evaluate a saved model on a labelled folder (or a manifest split)."""
    from .evaluation import evaluate_predictions, predict_probabilities
    from .models import load_model

    model, metadata = load_model(model_path)
    pixels, labels, skipped = load_labelled(data, metadata["class_names"], metadata["image_size"], split, progress,
                                            metadata.get("crop", False))
    results = evaluate_predictions(labels, predict_probabilities(model, pixels), metadata["class_names"])
    results.update(model=metadata["model_name"], data=str(data), split=split, skipped_count=len(skipped),
                   skipped=[{"path": s.path, "reason": s.reason} for s in skipped])
    return results
