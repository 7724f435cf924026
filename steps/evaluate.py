"""Step: validation and test metrics (and train, for the overfitting gap) with 95 % intervals, calibration, the
twin/novel split of the test metrics, the Grad-CAM background share, and every external folder (with its acquisition
style beside the training split's), for every trained model, with their figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from brain_tumor import figures
from brain_tumor.errors import UserError
from brain_tumor.evaluation import predict_probabilities
from brain_tumor.experiment import evaluate_splits, predict_splits, predictions_frame
from brain_tumor.leakage import audit, twin_metrics
from brain_tumor.selection import comparison_row
from brain_tumor.shortcuts import gradcam_background

from . import registry
from .registry import step_data
from .tracking import report_images, report_single_values, upload_artifact


class EvaluationData:
    """The split images (and external sets) each model is evaluated on, decoded once per (image size, crop)."""

    def __init__(self, manifest, dataset_hash, dataset_id, val_fraction, test_fraction, seed, run_dir, external_dir):
        self.args = (manifest, dataset_hash, dataset_id, val_fraction, test_fraction, seed, run_dir)
        self.dataset_hash, self.seed = dataset_hash, seed
        self.external_dir = registry.local_folders(external_dir)
        self.cache: dict[tuple[int, bool], tuple] = {}

    def get(self, image_size: int, crop: bool):
        """(prepared data, test twins, external sets) for models trained at this size and crop."""
        from brain_tumor.external import load_external

        key = (image_size, crop)
        if key not in self.cache:
            manifest, digest, dataset_id, val_fraction, test_fraction, seed, run_dir = self.args
            prepared = step_data(manifest, image_size, digest, dataset_id, val_fraction, test_fraction, seed,
                                 run_dir, crop=crop)
            twins = np.asarray(audit(figures.manifest_frame(prepared), seed=seed)["is_twin"], bool)
            externals = load_external(self.external_dir, prepared.scanned.class_names, image_size, crop,
                                      prepared.scanned.phashes, prepared.scanned.files) if self.external_dir else []
            self.cache[key] = (prepared, twins, externals)
        return self.cache[key]


def assess(model, name: str, training: dict, data: EvaluationData, run_dir: str) -> dict:
    """Evaluate one model as every model is (the trained ones and the ensemble): metrics JSON, predictions CSV,
    figures; returns its comparison row."""
    from brain_tumor.external import external_metrics

    prepared, twins, externals = data.get(training["image_size"], training.get("crop", False))
    names = prepared.scanned.class_names
    probabilities = predict_splits(model, prepared)
    metrics = {**evaluate_splits(model, prepared, probabilities), "dataset_hash": data.dataset_hash}
    if "test" in probabilities:  # test metrics apart for test images with a near-duplicate in train/val
        metrics["leakage"] = twin_metrics(prepared.subset("test")[1], probabilities["test"], twins, names)
    metrics["external"] = {ext.name: external_metrics(ext, predict_probabilities(model, ext.pixels), names)
                           for ext in externals}
    split = figures.heldout_split(metrics)
    background = gradcam_background(model, *prepared.subset(split), names, seed=data.seed)
    metrics["shortcuts"] = {"background": {"split": split, **background}}
    out = Path(run_dir) / "metrics"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(metrics, indent=2))
    predictions_frame(prepared, probabilities).to_csv(out / f"{name}_predictions.csv", index=False)
    report_images(figures.evaluation(model, name, metrics, prepared, probabilities,
                                     figures.report_dir(run_dir) / "evaluation" / name, data.seed))
    row = comparison_row(training, metrics)
    report_single_values(name, {"val accuracy": row["val_acc"], "val macro F1": row["val_macro_f1"],
                                "test accuracy": row["test_acc"], "test macro F1": row["test_macro_f1"],
                                "val ECE": metrics["calibration"]["val"]["ece"]})
    report_single_values(f"{name} Grad-CAM background share",
                         {c: v["mean"] for c, v in background["per_class"].items()})
    print(f"{name}: validation accuracy {row['val_acc']:.3f}, macro F1 {row['val_macro_f1']:.3f} "
          f"[{row['val_macro_f1_low']:.3f}, {row['val_macro_f1_high']:.3f}], "
          f"ECE {metrics['calibration']['val']['ece']:.3f}"
          + (f"; Grad-CAM mostly outside the head for {', '.join(background['flagged'])}"
             if background["flagged"] else ""))
    return row


def external_style(data: EvaluationData, run_dir: str) -> None:
    """Each external set's acquisition style beside the training split's, per class (report/shortcuts/), so that a
    shift is seen before the external numbers are trusted."""
    prepared, _, externals = next(iter(data.cache.values()))  # style comes from the original files: any size will do
    if not externals:
        return
    training = figures.training_style(prepared, run_dir)
    if training is None:
        print("No external style comparison: the training split's style was not recorded (register the data again)")
        return
    out = figures.report_dir(run_dir) / "shortcuts"
    shifts, shown = figures.external_style(training, externals, prepared.scanned.class_names, out)
    for name, shift in shifts.items():
        print(f"External set {name}: {shift['sentence']}")
    report_images(shown)
    upload_artifact("external style", out / figures.EXTERNAL_STYLE)


def evaluate(manifest: str, dataset_hash: str, run_dir: str, dataset_id: str, val_fraction: float,
             test_fraction: float, seed: int, external_dir: str, **trained_models: dict) -> dict:
    """`trained_<model>` arguments: each training step's `trained` result (model reference and training record), or
    None for a model the run's list leaves out."""
    from brain_tumor.models import load_model

    trained_models = {k: v for k, v in trained_models.items() if v}  # None: a model left out of this run
    if not trained_models:
        raise UserError("No trained model reached evaluation: the run's model list selected none.")
    data = EvaluationData(manifest, dataset_hash, dataset_id, val_fraction, test_fraction, seed, run_dir,
                          external_dir)
    rows, model_refs = [], {}
    for trained in trained_models.values():
        model, _ = load_model(registry.resolve_model(trained["model_ref"]))
        rows.append(assess(model, trained["model"], trained["training"], data, run_dir))
        model_refs[trained["model"]] = trained["model_ref"]
    external_style(data, run_dir)
    upload_artifact("comparison rows", rows)
    return {"rows": rows, "model_refs": model_refs, "dataset_hash": dataset_hash}
