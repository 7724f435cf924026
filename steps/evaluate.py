"""Step: validation and test metrics (and train, for the overfitting gap) for every trained model."""

from __future__ import annotations

import json
from pathlib import Path

from brain_tumor.errors import UserError
from brain_tumor.experiment import evaluate_splits
from brain_tumor.selection import comparison_row

from .registry import resolve_model, step_data
from .tracking import report_scalars, upload_artifact


def evaluate(manifest: str, dataset_hash: str, run_dir: str, dataset_id: str = "", val_fraction: float = 0.15,
             test_fraction: float = 0.15, seed: int = 42, **trained_models: dict) -> dict:
    """`trained_<model>` arguments: each training step's `trained` result (model reference and training record), or
    None for a model the run's list leaves out."""
    from brain_tumor.models import load_model

    out = Path(run_dir) / "metrics"
    out.mkdir(parents=True, exist_ok=True)
    prepared_by_size: dict[int, object] = {}
    rows, model_refs = [], {}
    trained_models = {k: v for k, v in trained_models.items() if v}  # None: a model left out of this run
    if not trained_models:
        raise UserError("No trained model reached evaluation: the run's model list selected none.")
    for trained in trained_models.values():
        training = trained["training"]
        size = training["image_size"]
        if size not in prepared_by_size:
            prepared_by_size[size] = step_data(manifest, size, dataset_hash, dataset_id, val_fraction,
                                               test_fraction, seed, run_dir)
        model, _ = load_model(resolve_model(trained["model_ref"]))
        metrics = {**evaluate_splits(model, prepared_by_size[size]), "dataset_hash": dataset_hash}
        (out / f"{trained['model']}.json").write_text(json.dumps(metrics, indent=2))
        row = comparison_row(training, metrics)
        rows.append(row)
        model_refs[trained["model"]] = trained["model_ref"]
        report_scalars(f"{trained['model']}", {"val accuracy": row["val_acc"], "val macro F1": row["val_macro_f1"],
                                              "test accuracy": row["test_acc"], "test macro F1": row["test_macro_f1"]})
        print(f"{trained['model']}: validation accuracy {row['val_acc']:.3f}, macro F1 {row['val_macro_f1']:.3f}")
    upload_artifact("comparison rows", rows)
    return {"rows": rows, "model_refs": model_refs, "dataset_hash": dataset_hash}
