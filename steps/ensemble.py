"""Step: a soft-vote ensemble of the trained models, members and weights (and mirror-image test-time augmentation)
chosen on validation, saved as one model and evaluated like every model, so that it can become champion."""

from __future__ import annotations

import json
import time
from pathlib import Path

from brain_tumor import __version__, files
from brain_tumor.evaluation import predict_probabilities
from brain_tumor.figures import ensemble_selection
from brain_tumor.models import count_params, load_model, save_model

from . import registry
from .evaluate import EvaluationData, assess
from .tracking import current_task, report_text


def _record(run_dir: str, outcome: dict) -> None:
    """The step's outcome in the run folder (report/ensemble/selection.json), whatever it is, for the report."""
    path = ensemble_selection(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_text(path, json.dumps(outcome, indent=2))
    print(outcome["sentence"])
    report_text(outcome["sentence"])  # on the step's ClearML page too


def ensemble(manifest: str, dataset_hash: str, run_dir: str, dataset_id: str, val_fraction: float,
             test_fraction: float, seed: int, rows: list[dict], model_refs: dict, enabled: bool, external_dir: str,
             **trained_models: dict) -> dict:
    """The evaluated rows and model references, plus the ensemble's when it has two or more members. Records its
    outcome, an ensemble or not, in the run folder."""
    from brain_tumor.ensemble import build_ensemble, choose

    trained = {t["model"]: t for t in trained_models.values() if t}
    unchanged = {"rows": rows, "model_refs": model_refs, "dataset_hash": dataset_hash}
    if not enabled or len(trained) < 2:
        _record(run_dir, {"decision": "off" if not enabled else "too_few",
                          "sentence": "No ensemble: " + ("turned off (ensemble=false)" if not enabled
                                                         else "fewer than two trained models"),
                          "candidates": [{"model": name} for name in trained]})
        return unchanged
    start = time.perf_counter()
    first = next(iter(trained.values()))["training"]
    data = EvaluationData(manifest, dataset_hash, dataset_id, val_fraction, test_fraction, seed, run_dir, external_dir)
    prepared, _, _ = data.get(first["image_size"], first.get("crop", False))
    pixels, labels = prepared.subset("val")
    members = {name: load_model(registry.resolve_model(t["model_ref"]))[0] for name, t in trained.items()}
    plain = {name: predict_probabilities(m, pixels) for name, m in members.items()}
    mirrored = {name: (plain[name] + predict_probabilities(m, pixels, mirror=True)) / 2 for name, m in members.items()}
    outcome = choose(plain, mirrored, labels)
    weights, tta = outcome["chosen"]["members"], outcome["chosen"]["tta"]
    if outcome["decision"] != "built":
        _record(run_dir, {**outcome, "sentence": f"No ensemble: on validation no mix beats {next(iter(weights))} "
                                                 "alone"})
        return unchanged
    description = " + ".join(f"{w:.2f}·{name}" for name, w in weights.items()) + (" (with mirror images)" if tta
                                                                                  else "")
    _record(run_dir, {**outcome, "sentence": f"Ensemble chosen on validation: {description}"})
    model = build_ensemble(members, weights, tta, first["image_size"])
    record = {"model": "ensemble", "spec": {"name": "ensemble", "family": "ensemble", "description": description},
              "members": weights, "tta": tta, "params": count_params(model), "image_size": first["image_size"],
              "crop": first.get("crop", False), "class_names": prepared.scanned.class_names,
              "train_seconds": time.perf_counter() - start, "dataset_hash": dataset_hash}
    out = Path(run_dir) / "models" / "ensemble"
    out.mkdir(parents=True, exist_ok=True)
    path = save_model(model, out / "model.keras", {
        "model_name": "ensemble", "class_names": record["class_names"], "image_size": record["image_size"],
        "crop": record["crop"], "params": record["params"], "members": weights, "tta": tta,
        "brain_tumor_version": __version__})
    (out / "training.json").write_text(json.dumps(record, indent=2))
    task = current_task()
    reference = registry.publish_model(task, str(path), record) if task is not None else str(path)
    row = assess(model, "ensemble", record, data, run_dir)
    return {"rows": [*rows, row], "model_refs": {**model_refs, "ensemble": reference}, "dataset_hash": dataset_hash}
