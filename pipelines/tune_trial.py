"""One trial of `brain-tumor tune` in its own process: `python -m pipelines.tune_trial TRIAL_DIR`.

Reads TRIAL_DIR/trial.json (the study's storage, the trial's id, the training step's resolved arguments), trains
through the executor exactly as the pipeline's `train_<model>` step does, reporting each epoch's validation metric
to the Optuna trial (which may prune it), then predicts the validation split with the kept model and writes
`val_predictions.csv` and `result.json` (the objective, from those predictions). A process per trial: TensorFlow's
memory and global settings never leak from one trial into the next.

Exit status: 0 done, 4 pruned, 2 a problem the user can fix (the message is printed), 1 anything else.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

PRUNED = 4
# The objective's value from the validation predictions (evaluation.evaluate_predictions' keys).
SCORES = {"val_macro_f1": "macro_f1", "val_accuracy": "accuracy", "val_loss": "log_loss"}


def make_pruner(spec: dict):
    """The study's pruner from its description in trial.json (the same in the study and in every trial)."""
    import optuna

    kind = spec.get("kind", "median")
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec.get("n_startup_trials", 5),
                                           n_warmup_steps=spec.get("n_warmup_steps", 2))
    if kind == "threshold":
        return optuna.pruners.ThresholdPruner(lower=spec.get("lower"), upper=spec.get("upper"))
    if kind == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {kind!r}")


def validation_predictions(manifest: str, record: dict, model_ref: str):
    """The kept model's probabilities on the validation split, with its files and labels. The tuning manifest holds
    no test rows: the test split cannot be read here."""
    from brain_tumor.evaluation import predict_probabilities
    from brain_tumor.experiment import load_prepared
    from brain_tumor.predict import load_checked

    prepared = load_prepared(manifest, record["image_size"], progress=False, crop=record["crop"])
    if (prepared.splits == "test").any():
        raise RuntimeError(f"{manifest} holds test rows: a study never reads the test split")
    model, _ = load_checked(model_ref)
    images, labels = prepared.subset("val")
    files = [f for f, s in zip(prepared.scanned.files, prepared.splits) if s == "val"]
    return files, labels, predict_probabilities(model, images), prepared.scanned.class_names


def main(trial_dir: str) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import optuna
    import pandas as pd

    from brain_tumor import files
    from brain_tumor.errors import UserError
    from brain_tumor.evaluation import evaluate_predictions
    from pipelines.executor import execute
    from steps import train_model

    folder = Path(trial_dir)
    call = json.loads((folder / "trial.json").read_text())
    study = optuna.load_study(study_name=call["study"], storage=call["storage"], pruner=make_pruner(call["pruner"]))
    trial = optuna.trial.Trial(study, call["trial_id"])
    metric = call["objective"]
    seen = []

    def report(row: dict) -> None:  # after each epoch of the training step
        value = row.get(metric)
        if value is None or row.get("stage", "train") != "train":
            return
        seen.append(row["epoch"])
        trial.report(float(value), row["epoch"])
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {row['epoch']} ({metric} {value:.4f})")

    train_model.EPOCH_LISTENERS.append(report)
    start = time.perf_counter()
    try:
        result = execute(call["name"], call["kwargs"])
        trained = result["trained"]
        names, labels, probabilities, classes = validation_predictions(call["kwargs"]["manifest"],
                                                                       trained["training"], trained["model_ref"])
    except optuna.TrialPruned as pruned:
        print(f"Trial {call['number']}: {pruned}", flush=True)
        files.write_text(folder / "pruned.json", json.dumps({"epochs": len(seen), "why": str(pruned),
                                                             "seconds": time.perf_counter() - start}))
        return PRUNED
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except Exception:
        traceback.print_exc()
        return 1
    metrics = evaluate_predictions(labels, probabilities, classes)
    frame = pd.DataFrame({"file": names, "true": [classes[i] for i in labels],
                          "predicted": [classes[i] for i in probabilities.argmax(axis=1)]})
    frame = frame.join(pd.DataFrame(probabilities.round(5), columns=[f"p_{c}" for c in classes]))
    frame.to_csv(folder / "val_predictions.csv", index=False)
    record = trained["training"]
    files.write_text(folder / "result.json", json.dumps({
        "value": metrics[SCORES[metric]], "objective": metric,
        "val": {k: metrics[k] for k in ("accuracy", "macro_f1", "log_loss", "samples")},
        "epochs": record["epochs_run"], "best_epoch": record["best_epoch"], "train_seconds": record["train_seconds"],
        "seconds": time.perf_counter() - start, "val_images": len(labels)}, indent=2))
    print(f"Trial {call['number']}: {metric} {metrics[SCORES[metric]]:.4f} on {len(labels)} validation images",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
