"""Step: validation and test metrics (and train, for the overfitting gap), calibration and the twin/novel split of
the test metrics for every trained model, with their figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from brain_tumor import figures
from brain_tumor.errors import UserError
from brain_tumor.experiment import evaluate_splits, predict_splits, predictions_frame
from brain_tumor.leakage import audit, twin_metrics
from brain_tumor.selection import comparison_row

from . import registry
from .registry import step_data
from .tracking import report_images, report_scalars, upload_artifact


def evaluate(manifest: str, dataset_hash: str, run_dir: str, dataset_id: str, val_fraction: float,
             test_fraction: float, seed: int, **trained_models: dict) -> dict:
    """`trained_<model>` arguments: each training step's `trained` result (model reference and training record), or
    None for a model the run's list leaves out."""
    from brain_tumor.models import load_model

    out = Path(run_dir) / "metrics"
    out.mkdir(parents=True, exist_ok=True)
    prepared_by_size: dict[int, object] = {}
    twins_by_size: dict[int, list[bool]] = {}
    rows, model_refs = [], {}
    trained_models = {k: v for k, v in trained_models.items() if v}  # None: a model left out of this run
    if not trained_models:
        raise UserError("No trained model reached evaluation: the run's model list selected none.")
    for trained in trained_models.values():
        training, name = trained["training"], trained["model"]
        size = training["image_size"]
        if size not in prepared_by_size:
            prepared_by_size[size] = step_data(manifest, size, dataset_hash, dataset_id, val_fraction,
                                               test_fraction, seed, run_dir)
            twins_by_size[size] = audit(figures.manifest_frame(prepared_by_size[size]), seed=seed)["is_twin"]
        prepared = prepared_by_size[size]
        model, _ = load_model(registry.resolve_model(trained["model_ref"]))
        probabilities = predict_splits(model, prepared)
        metrics = {**evaluate_splits(model, prepared, probabilities), "dataset_hash": dataset_hash}
        if "test" in probabilities:  # test metrics apart for test images with a near-duplicate in train/val
            metrics["leakage"] = twin_metrics(prepared.subset("test")[1], probabilities["test"],
                                              np.asarray(twins_by_size[size], bool),
                                              prepared.scanned.class_names)
        (out / f"{name}.json").write_text(json.dumps(metrics, indent=2))
        predictions_frame(prepared, probabilities).to_csv(out / f"{name}_predictions.csv", index=False)
        report_images(figures.evaluation(model, name, metrics, prepared, probabilities,
                                         figures.report_dir(run_dir) / "evaluation" / name, seed))
        row = comparison_row(training, metrics)
        rows.append(row)
        model_refs[name] = trained["model_ref"]
        report_scalars(name, {"val accuracy": row["val_acc"], "val macro F1": row["val_macro_f1"],
                              "test accuracy": row["test_acc"], "test macro F1": row["test_macro_f1"],
                              "val ECE": metrics["calibration"]["val"]["ece"]})
        print(f"{name}: validation accuracy {row['val_acc']:.3f}, macro F1 {row['val_macro_f1']:.3f}, "
              f"ECE {metrics['calibration']['val']['ece']:.3f}")
    upload_artifact("comparison rows", rows)
    return {"rows": rows, "model_refs": model_refs, "dataset_hash": dataset_hash}
