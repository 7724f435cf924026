"""The figures and tables each pipeline step leaves in RUN/report/, made once, after the step's real work.

Each function takes what its step already holds in memory and returns {title: PNG path}, so the step can also log
the same images to ClearML. `report.py` assembles them into report.html.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from . import plots
from .images import STYLE_FEATURES
from .leakage import audit
from .shortcuts import measured_background, style_audit, style_frame, style_shift

SAMPLES_PER_CLASS = 4  # 4 classes × 4: the seed's 4×4 grid
PREDICTIONS_SHOWN = 8  # correct and wrong each
# The shortcut audit's files in RUN/report/shortcuts/ (register_dataset, evaluate) and a model's evaluation folder
STYLE_CSV, STYLE_MEDIANS, STYLE_BASELINE = "style.csv", "style_medians.csv", "style_baseline.json"
STYLE_FIGURE, EXTERNAL_STYLE, BACKGROUND_FIGURE = "style_distributions.png", "external_style.json", "background.png"
# The figures drawn by plots.image_grid (photographs, embedded in report.html as JPEG); every other figure is a plot
SAMPLES, TWINS, CLOSEST, PREDICTIONS = "samples.png", "leakage_twins.png", "leakage_closest.png", "predictions.png"
PHOTO_GRIDS = (SAMPLES, TWINS, CLOSEST, PREDICTIONS)


def report_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "report"


def ensemble_selection(run_dir: str | Path) -> Path:
    """Where the ensemble step records its outcome, whether it built an ensemble or not (ensemble.choose)."""
    return report_dir(run_dir) / "ensemble" / "selection.json"


def manifest_frame(prepared) -> pd.DataFrame:
    """The manifest's columns the audit needs, from data already in memory (no file: agents may not have one)."""
    scanned = prepared.scanned
    return pd.DataFrame({"file": scanned.files, "class": [scanned.class_names[i] for i in scanned.labels],
                         "label": scanned.labels, "split": prepared.splits, "phash": scanned.phashes})


def exploration(prepared, counts: dict, out: Path, seed: int = 0) -> dict[str, Path]:
    """Counts per class and split (CSV and bar chart) and a grid of labelled training images."""
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(counts).rename_axis("class").to_csv(out / "class_counts.csv")
    scanned = prepared.scanned
    rng = np.random.default_rng(seed)
    picked = []
    for label, _ in enumerate(scanned.class_names):
        pool = np.flatnonzero((scanned.labels == label) & (prepared.splits == "train"))
        picked += list(rng.choice(pool, min(SAMPLES_PER_CLASS, len(pool)), replace=False))
    grid = plots.image_grid([scanned.pixels[i] for i in picked], [scanned.class_names[scanned.labels[i]]
                                                                  for i in picked],
                            "Training images and their labels", ncols=SAMPLES_PER_CLASS)
    return {"Images per class and split": plots.save(plots.class_counts(counts), out / "class_counts.png"),
            "Sample training images": plots.save(grid, out / SAMPLES)}


def style_table(prepared) -> pd.DataFrame:
    """Every image's file, class, split and acquisition style (the decoded data must hold it)."""
    scanned = prepared.scanned
    frame = style_frame(scanned.style, scanned.labels, scanned.class_names)
    frame.insert(0, "file", scanned.files)
    frame.insert(2, "split", prepared.splits)
    return frame


def shortcuts(prepared, out: Path, seed: int = 0) -> tuple[dict | None, dict[str, Path]]:
    """The style audit of the training split: every image's style (style.csv), the per-class medians (CSV), the
    style baseline with its verdict (JSON) and the per-class distributions. (None, {}) when the data holds no
    style."""
    if prepared.scanned.style is None:
        return None, {}
    out.mkdir(parents=True, exist_ok=True)
    frame = style_table(prepared)
    frame.to_csv(out / STYLE_CSV, index=False)
    train = frame[frame["split"] == "train"]
    result = style_audit(train, prepared.scanned.class_names, seed)
    result["medians"].to_csv(out / STYLE_MEDIANS)
    (out / STYLE_BASELINE).write_text(json.dumps(result["baseline"], indent=2))
    figure = plots.style_distributions(train, prepared.scanned.class_names,
                                       f"Acquisition style per class, training split ({len(train):,} images)")
    return result, {"Acquisition style per class": plots.save(figure, out / STYLE_FIGURE)}


def training_style(prepared, run_dir: str | Path) -> pd.DataFrame | None:
    """The training split's style: from the decoded data when it holds it, else from the style.csv register_dataset
    wrote (decoding from the pixel cache keeps no style); None when neither has it (an older run)."""
    if prepared.scanned.style is not None:
        frame = style_table(prepared)
    elif (path := report_dir(run_dir) / "shortcuts" / STYLE_CSV).is_file():
        frame = pd.read_csv(path)
    else:
        return None
    return frame[frame["split"] == "train"]


def external_style(training: pd.DataFrame, externals, class_names: list[str], out: Path) -> tuple[dict,
                                                                                                 dict[str, Path]]:
    """Each external set's style beside the training split's, per class: its shift (external_style.json) and a
    figure of both distributions."""
    out.mkdir(parents=True, exist_ok=True)
    results, shown = {}, {}
    for external in externals:
        frame = style_frame(external.style, external.labels, class_names)
        results[external.name] = style_shift(training, frame, class_names)
        both = pd.concat([training[["class", *STYLE_FEATURES]].assign(source="training split"),
                          frame.assign(source=f"external {external.name}")], ignore_index=True)
        figure = plots.style_distributions(both, [n for n in class_names if n in set(frame["class"])],
                                           f"Acquisition style: external set {external.name} vs the training split",
                                           group="source")
        shown[f"Acquisition style, external set {external.name}"] = plots.save(
            figure, out / external_figure_name(external.name, "style"))
    (out / EXTERNAL_STYLE).write_text(json.dumps(results, indent=2))
    return results, shown


def leakage(prepared, out: Path, seed: int = 0) -> tuple[dict, dict[str, Path]]:
    """The leakage audit (leakage.json, twin pairs CSV) with its histogram and thumbnails of the pairs."""
    out.mkdir(parents=True, exist_ok=True)
    frame = manifest_frame(prepared)
    result = audit(frame, seed=seed)
    (out / "leakage.json").write_text(json.dumps(result, indent=2))
    pd.DataFrame(result["pairs"]).to_csv(out / "leakage_pairs.csv", index=False)
    figures = {"Nearest-neighbour distance of test images": plots.save(
        plots.distance_histogram(result["nearest_distances"], result["max_distance"]), out / "leakage_distances.png")}
    index = {name: i for i, name in enumerate(frame["file"])}
    for key, title, name in (("pairs", "Test images with a near-duplicate in training", TWINS),
                             ("closest_pairs", "Closest test/training pairs", CLOSEST)):
        pairs = result[key][:PREDICTIONS_SHOWN]
        if pairs:
            images, titles = [], []
            for pair in pairs:
                images += [prepared.scanned.pixels[index[pair["test_file"]]],
                           prepared.scanned.pixels[index[pair["match_file"]]]]
                titles += [f"test: {pair['test_class']}\n{Path(pair['test_file']).name}",
                           (f"{pair['match_split']}: {pair['match_class']}, {pair['distance']} bits\n"
                            f"{Path(pair['match_file']).name}")]
            figures[title] = plots.save(plots.image_grid(images, titles, title, ncols=4), out / name)
    return result, figures


def training(history: list[dict], model_name: str, summary: str, out: Path, best_epoch: int | None = None,
             monitor: str | None = None) -> dict[str, Path]:
    """Curves (accuracy, loss, macro-F1, learning rate, epoch time; where fine-tuning starts) and the Keras model
    summary as text. `best_epoch`/`monitor`: the epoch early stopping kept, marked on the curves when given."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.txt").write_text(summary)
    return {f"{model_name} training curves": plots.save(plots.training_curves(history, model_name, best_epoch,
                                                                              monitor), out / "curves.png")}


def evaluation(model, model_name: str, metrics: dict, prepared, probabilities: dict[str, np.ndarray], out: Path,
               seed: int = 0) -> dict[str, Path]:
    """On the held-out split (test, else validation): confusion matrices, classification report, a grid of correct
    and wrong predictions with their confidence and Grad-CAM, and the reliability diagram; and the confusion
    matrices of every external set in `metrics["external"]`."""
    from .gradcam import gradcams, overlay

    out.mkdir(parents=True, exist_ok=True)
    split = heldout_split(metrics)
    names = prepared.scanned.class_names
    pd.DataFrame(metrics[split]["per_class"]).T.to_csv(out / "classification_report.csv")
    pixels, labels = prepared.subset(split)
    predicted = probabilities[split].argmax(axis=1)
    rng = np.random.default_rng(seed)
    shown = []
    for correct in (True, False):
        pool = np.flatnonzero((predicted == labels) == correct)
        shown += list(rng.choice(pool, min(PREDICTIONS_SHOWN, len(pool)), replace=False))
    images, titles, colours = [], [], []
    heatmaps = gradcams(model, np.stack([pixels[i] for i in shown]), predicted[shown])[0] if shown else []
    for i, heatmap in zip(shown, heatmaps):  # each image beside its Grad-CAM for the predicted class
        colour = "green" if predicted[i] == labels[i] else "red"
        images += [pixels[i], overlay(pixels[i], heatmap)]
        titles += [f"true {names[labels[i]]}\npred {names[predicted[i]]} {probabilities[split][i].max():.0%}",
                   "Grad-CAM"]
        colours += [colour, colour]
    grid = plots.image_grid(images, titles, f"{model_name}: sample {split} predictions with Grad-CAM "
                                            f"(green right, red wrong)", ncols=8, title_colours=colours)
    calibration = metrics["calibration"][split]
    background = measured_background(metrics)
    return {
        **({f"{model_name} Grad-CAM background share": plots.save(plots.background_share(
            background["per_class"], model_name, background["threshold"]), out / BACKGROUND_FIGURE)}
           if background else {}),
        f"{model_name} confusion matrices": plots.save(
            plots.confusion_matrices(metrics[split]["confusion_matrix"], names, model_name, split),
            out / "confusion.png"),
        f"{model_name} sample predictions": plots.save(grid, out / PREDICTIONS),
        f"{model_name} reliability": plots.save(
            plots.reliability_diagram(calibration["bins"], calibration["ece"], model_name), out / "reliability.png"),
        **external_confusions(model_name, metrics, names, out),
    }


def external_figure_name(set_name: str, kind: str = "confusion") -> str:
    """The file of an external set's figure: its confusion matrices in a model's evaluation folder, its style in the
    shortcut audit's (a set named parent/name when two folders share a name: any character unsafe in a file name
    becomes _)."""
    return f"external_{re.sub(r'[^A-Za-z0-9_.-]+', '_', set_name)}_{kind}.png"


def external_confusions(model_name: str, metrics: dict, class_names: list[str], out: Path) -> dict[str, Path]:
    """Confusion matrices (counts and row-normalised) of each external set the model was evaluated on."""
    return {f"{model_name} confusion matrices, external set {set_name}": plots.save(
        plots.confusion_matrices(external["confusion_matrix"], class_names, model_name, f"external set {set_name}"),
        out / external_figure_name(set_name)) for set_name, external in metrics.get("external", {}).items()}


def comparison(rows: list[dict], histories: dict[str, list[dict]], champion: str, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    return {
        "Model comparison": plots.save(plots.comparison_bars(rows, champion), out / "comparison.png"),
        "Training curves, all models": plots.save(plots.overlaid_curves(histories), out / "curves_all.png"),
        "Custom CNNs vs transfer learning": plots.save(plots.custom_vs_transfer(rows), out / "custom_vs_transfer.png"),
    }


def heldout_split(metrics: dict) -> str:
    """The split a model's report shows: the test split when there is one, else validation."""
    return "test" if "test" in metrics else "val"
