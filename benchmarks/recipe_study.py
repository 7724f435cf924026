"""Recipe study on a real labelled folder: grouped-validation macro-F1 and glioma recall per model and recipe choice.

The images are decoded once per (size, crop) and split as the pipeline splits them (grouped, so near-copies never
straddle train and validation); each run trains one model with one recipe and one seed and is appended to a CSV as
soon as it ends, so a long study can be read (and resumed: finished rows are skipped) while it runs. Nothing here
looks at a test split: the carved test share is held out and unused.

    python benchmarks/recipe_study.py --data ../shared/datasets/brain-tumor-mri/Training --out runs/study.csv \
        --models cnn_b --variants seed,base,crop,normalize --seeds 0,1

A tune study's result against today's default, two seeds each, paired on the same validation images
(`default` is the pipeline's default recipe; `best` is the --best file over it):

    python benchmarks/recipe_study.py --data ../shared/datasets/brain-tumor-mri/Training --out runs/best.csv \
        --models cnn_b --variants default,best --best runs/tune-cnn_b/best.yaml --seeds 0,1 --compare best,default
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from dataclasses import asdict, fields, replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from brain_tumor.class_balance import balanced_class_weights  # noqa: E402
from brain_tumor.data import find_layout  # noqa: E402
from brain_tumor.evaluation import evaluate_predictions, predict_probabilities  # noqa: E402
from brain_tumor.experiment import prepare_data  # noqa: E402
from brain_tumor.model_specs import get_spec  # noqa: E402
from brain_tumor.recipe import SEED, Recipe  # noqa: E402

# The tuned candidate every variant changes one thing of (the defaults end up in pipelines/config.py).
BASE = Recipe(optimizer="adamw", lr=1e-3, weight_decay=1e-4, schedule="cosine", warmup_epochs=1, augment="light",
              label_smoothing=0.1, epochs=20, patience=6, monitor="val_macro_f1", batch_size=0, crop=False,
              normalize=False)
VARIANTS = {
    "seed": SEED,
    "base": BASE,
    "crop": replace(BASE, crop=True),
    "normalize": replace(BASE, normalize=True),
    "crop+normalize": replace(BASE, crop=True, normalize=True),
    "no-augment": replace(BASE, augment="none"),
    "seed-augment": replace(BASE, augment="seed"),
    "adam-constant": replace(BASE, optimizer="adam", weight_decay=0.0, schedule="constant", warmup_epochs=0),
    "no-smoothing": replace(BASE, label_smoothing=0.0),
    "lr3e-4": replace(BASE, lr=3e-4),
    "monitor-loss": replace(BASE, monitor="val_loss"),
    "plateau": replace(BASE, schedule="plateau", warmup_epochs=0),
    # second round, around the best of the first (no augmentation)
    "no-augment+crop": replace(BASE, augment="none", crop=True),
    "no-augment+no-smoothing": replace(BASE, augment="none", label_smoothing=0.0),
    "no-augment+adam-constant": replace(BASE, augment="none", optimizer="adam", weight_decay=0.0,
                                        schedule="constant", warmup_epochs=0),
    "no-augment+lr3e-4": replace(BASE, augment="none", lr=3e-4),
}


def default_recipe() -> Recipe:
    """Today's default recipe, as `brain-tumor run` trains it (pipelines/config.py)."""
    from pipelines.config import PipelineConfig

    config = PipelineConfig()
    return Recipe(**{f.name: getattr(config, f.name) for f in fields(Recipe)})


def recipe_from_file(path: str) -> Recipe:
    """A configuration file's recipe values (e.g. a study's best.yaml) over today's default."""
    import yaml

    values = yaml.safe_load(Path(path).read_text()) or {}
    return replace(default_recipe(), **{f.name: values[f.name] for f in fields(Recipe) if f.name in values})


FIELDS = ["variant", "model", "seed", "image_size", "val_macro_f1", "val_accuracy", "glioma_recall", "epochs_run",
          "best_epoch", "seconds", "recipe"]


def run(prepared, model_name: str, recipe: Recipe, seed: int, precision: str, predictions: Path) -> dict:
    """Train one model; its validation probabilities are saved to `predictions` (.npy) for paired comparisons."""
    from brain_tumor import precision as arithmetic
    from brain_tumor.models import build_model
    from brain_tumor.training import TrainConfig, best_epoch, fit

    names = prepared.scanned.class_names
    (x, y), (vx, vy) = prepared.subset("train"), prepared.subset("val")
    spec = get_spec(model_name)
    config = TrainConfig(recipe, recipe.batch_size or spec.batch_size, seed, "tfdata")
    start = time.perf_counter()
    with arithmetic.scoped(precision):
        model = build_model(model_name, prepared.scanned.image_size, len(names), None, normalize=recipe.normalize)
        history = fit(model, (x, y), (vx, vy), len(names), config, balanced_class_weights(y, len(names)), verbose=0)
    probabilities = predict_probabilities(model, vx)
    predictions.parent.mkdir(parents=True, exist_ok=True)
    np.save(predictions, probabilities)
    metrics = evaluate_predictions(vy, probabilities, names)
    glioma = next(n for n in names if n.startswith("glioma"))
    return {"val_macro_f1": round(metrics["macro_f1"], 4), "val_accuracy": round(metrics["accuracy"], 4),
            "glioma_recall": round(metrics["per_class"][glioma]["recall"], 4), "epochs_run": len(history),
            "best_epoch": best_epoch(history, recipe.monitor)["epoch"],
            "seconds": round(time.perf_counter() - start, 1)}


def spread(values: np.ndarray) -> str:
    return f" ± {values.std(ddof=1):.3f}" if len(values) > 1 else ""


def summary(rows: list[dict]) -> str:
    """Mean ± sd over seeds per (variant, model)."""
    lines = ["| variant | model | runs | val macro-F1 | glioma recall | epochs | s/run |", "|---" * 7 + "|"]
    keys = list(dict.fromkeys((r["variant"], r["model"]) for r in rows))
    for variant, model in keys:
        group = [r for r in rows if r["variant"] == variant and r["model"] == model]
        f1 = np.array([float(r["val_macro_f1"]) for r in group])
        glioma = np.array([float(r["glioma_recall"]) for r in group])
        lines.append(f"| {variant} | {model} | {len(group)} | {f1.mean():.3f}{spread(f1)} | "
                     f"{glioma.mean():.3f}{spread(glioma)} "
                     f"| {np.mean([int(r['epochs_run']) for r in group]):.1f} "
                     f"| {np.mean([float(r['seconds']) for r in group]):.0f} |")
    return "\n".join(lines)


def compare(rows: list[dict], first: str, second: str, data, folder: Path) -> str:
    """Per model and seed run by both: macro-F1(first) - macro-F1(second) on the same validation images, with a 95 %
    paired-bootstrap interval, then the mean difference against the seed-to-seed spread of each. `data`: the prepared
    split both were validated on (the same images, whatever the crop)."""
    from brain_tumor.intervals import paired_difference

    lines = [f"{first} - {second}, validation macro-F1 (paired bootstrap, 1000 resamples):"]
    for model in dict.fromkeys(r["model"] for r in rows):
        seeds = sorted({r["seed"] for r in rows if r["model"] == model and r["variant"] == first}
                       & {r["seed"] for r in rows if r["model"] == model and r["variant"] == second})
        differences = []
        for seed in seeds:
            names, (_, vy) = data.scanned.class_names, data.subset("val")
            a, b = (np.load(folder / f"{v}_{model}_{seed}.npy").argmax(1) for v in (first, second))
            d = paired_difference(vy, a, b, names)
            differences.append(d["difference"])
            lines.append(f"  {model} seed {seed}: {d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]")
        if differences:
            f1 = {v: np.array([float(r["val_macro_f1"]) for r in rows if r["model"] == model and r["variant"] == v])
                  for v in (first, second)}
            lines.append(f"  {model}: mean difference {np.mean(differences):+.3f}; seed-to-seed sd {first} "
                         f"{f1[first].std(ddof=1) if len(f1[first]) > 1 else float('nan'):.3f}, {second} "
                         f"{f1[second].std(ddof=1) if len(f1[second]) > 1 else float('nan'):.3f}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True, help="CSV of the runs (appended; finished runs are skipped)")
    parser.add_argument("--models", default="cnn_b")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--split-seed", type=int, default=42, help="the pipeline's default seed: its split")
    parser.add_argument("--best", help="a configuration file (a study's best.yaml): the `best` variant")
    parser.add_argument("--precision", default="auto", help="training arithmetic, as the pipeline's option")
    parser.add_argument("--compare", help="A,B: paired differences of variant A against B per model and seed")
    args = parser.parse_args()
    variants = {**VARIANTS, "default": default_recipe(), **({"best": recipe_from_file(args.best)} if args.best else {})}

    out = Path(args.out)
    done = list(csv.DictReader(out.open())) if out.is_file() else []
    finished = {(r["variant"], r["model"], r["seed"], r["image_size"]) for r in done}
    layout = find_layout(args.data)
    prepared = {}
    # The decoded pixels are memory-mapped from a cache in this folder: it must outlive every training.
    cache = tempfile.TemporaryDirectory()
    for variant in args.variants.split(","):
        recipe = variants[variant]
        if recipe.crop not in prepared:
            prepared[recipe.crop] = prepare_data(layout, args.image_size, 0.15, 0.15, args.split_seed,
                                                 Path(cache.name), progress=False, crop=recipe.crop)
        for model in args.models.split(","):
            for seed in map(int, args.seeds.split(",")):
                if (variant, model, str(seed), str(args.image_size)) in finished:
                    continue
                predictions = out.with_suffix("") / f"{variant}_{model}_{seed}.npy"
                row = {"variant": variant, "model": model, "seed": seed, "image_size": args.image_size,
                       **run(prepared[recipe.crop], model, recipe, seed, args.precision, predictions),
                       "recipe": asdict(recipe)}
                print(row, flush=True)
                new = not out.is_file()
                with out.open("a", newline="") as handle:
                    writer = csv.DictWriter(handle, FIELDS)
                    if new:
                        writer.writeheader()
                    writer.writerow(row)
                done.append({k: str(v) for k, v in row.items()})
    print(summary(done))
    if args.compare:
        first, second = args.compare.split(",")
        print(compare(done, first, second, prepared[variants[first].crop], out.with_suffix("")))
    cache.cleanup()


if __name__ == "__main__":
    main()
