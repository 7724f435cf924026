"""Step: the non-deep baselines (k-NN and logistic regression on downsampled grey pixels), evaluated like the models,
so that every comparison says plainly whether the CNNs beat them and by how much. They never become champion."""

from __future__ import annotations

import json
import time
from pathlib import Path

from brain_tumor.baselines import BASELINES, fit_and_predict
from brain_tumor.evaluation import evaluate_predictions
from brain_tumor.selection import comparison_row

from .registry import step_data
from .tracking import report_single_values


def baselines(manifest: str, dataset_hash: str, run_dir: str, image_size: int, dataset_id: str, val_fraction: float,
              test_fraction: float, seed: int) -> dict:
    prepared = step_data(manifest, image_size, dataset_hash, dataset_id, val_fraction, test_fraction, seed, run_dir)
    names = prepared.scanned.class_names
    train_pixels, train_labels = prepared.subset("train")
    splits = [s for s in ("train", "val", "test") if (prepared.splits == s).any()]
    out = Path(run_dir) / "metrics"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, description in BASELINES.items():
        start = time.perf_counter()
        probabilities = fit_and_predict(name, train_pixels, train_labels,
                                        {s: prepared.subset(s)[0] for s in splits}, seed)
        metrics = {s: evaluate_predictions(prepared.subset(s)[1], probabilities[s], names) for s in splits}
        (out / f"baseline_{name}.json").write_text(json.dumps({**metrics, "dataset_hash": dataset_hash}, indent=2))
        training = {"model": f"baseline_{name}", "params": {"total": 0, "trainable": 0},
                    "spec": {"name": name, "family": "baseline", "description": description},
                    "train_seconds": time.perf_counter() - start}
        rows.append(comparison_row(training, metrics))
        report_single_values(training["model"], {"val accuracy": metrics["val"]["accuracy"],
                                                 "val macro F1": metrics["val"]["macro_f1"]})
        print(f"baseline {name}: validation accuracy {metrics['val']['accuracy']:.3f}, "
              f"macro F1 {metrics['val']['macro_f1']:.3f}")
    return {"rows": rows, "dataset_hash": dataset_hash}
