"""Every figure of a run's report, drawn once after fitting: matplotlib (Agg backend) and seaborn heatmaps.

Each function returns a `Figure`; `save` writes it as a PNG and closes it.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from .images import STYLE_FEATURES
from .model_specs import MODEL_SPECS

_TAB10 = [to_hex(c) for c in plt.get_cmap("tab10").colors]
SPLIT_COLOURS = {"train": "#66c2a5", "val": "#fc8d62", "test": "#8da0cb"}
TRANSFER_MODELS = tuple(name for name, spec in MODEL_SPECS.items() if spec.family == "transfer")
# steps/baselines.py names its rows baseline_<name> (brain_tumor.baselines.BASELINES); not imported from there, so
# that every step drawing figures does not depend on scikit-learn's code (a step's code is what it imports)
BASELINE_MODELS = ("baseline_knn", "baseline_logreg")
BASELINE_GREYS = ["#7f7f7f", "#b8b8b8", "#4a4a4a", "#d9d9d9"]
BASELINE_HATCH = "xx"
FAMILY_TITLES = {"custom_cnn": "Custom CNNs", "transfer": "Transfer\nlearning", "ensemble": "Ensemble",
                 "baseline": "Baselines"}


def _fixed_colours() -> dict[str, str]:
    """cnn_a/b/c and resnet50 keep the report's first four colours; every other known model, then the ensemble, takes
    the next free tab10 colour (then Dark2's); the baselines are greys, so that they read as references."""
    colours = {"cnn_a": _TAB10[0], "cnn_b": _TAB10[1], "cnn_c": _TAB10[2], "resnet50": _TAB10[3],
               "ensemble": _TAB10[6]}
    grey = {_TAB10[7], to_hex(plt.get_cmap("Dark2").colors[-1])}
    spare = [c for c in _TAB10 + [to_hex(c) for c in plt.get_cmap("Dark2").colors]
             if c not in colours.values() and c not in grey]
    for name in MODEL_SPECS:
        if name not in colours:
            colours[name] = spare.pop(0)
    colours.update(zip(BASELINE_MODELS, BASELINE_GREYS))
    return colours


MODEL_COLOURS = _fixed_colours()
_SPARE = [c for c in _TAB10 if c not in MODEL_COLOURS.values() and c != _TAB10[7]] or _TAB10


def model_colour(name: str) -> str:
    """A model's colour: fixed for every known model, the ensemble and the baselines; stable (by CRC32) among the
    unused tab10 colours otherwise (greys for an unknown baseline)."""
    if name in MODEL_COLOURS:
        return MODEL_COLOURS[name]
    pool = BASELINE_GREYS if is_baseline(name) else _SPARE
    return pool[zlib.crc32(name.encode()) % len(pool)]


def is_baseline(model: str) -> bool:
    return model in BASELINE_MODELS or model.startswith("baseline_")


def family_of(row: dict) -> str:
    """A comparison row's family: its column when present, else from the model's name."""
    if row.get("family"):
        return row["family"]
    model = row["model"]
    if is_baseline(model):
        return "baseline"
    return "ensemble" if model == "ensemble" else "transfer" if model in TRANSFER_MODELS else "custom_cnn"


def save(figure: Figure, path: str | Path) -> Path:
    """Write `figure` as a PNG (dpi 100), creating parent folders, and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _rotate(ax, labels: list[str]) -> None:
    """Tilt x tick labels when any is long, anchored so they end under their tick."""
    if max((len(label) for label in labels), default=0) > 8:
        plt.setp(ax.get_xticklabels(), rotation=25, ha="right", rotation_mode="anchor")


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def _human(n: float) -> str:
    """1234567 → '1.23M'; NaN → '–'."""
    if math.isnan(n):
        return "–"
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= size:
            return f"{n / size:.3g}{suffix}"
    return f"{n:.3g}"


def _number(value) -> float:
    return math.nan if value is None else float(value)


def _positive(value) -> float:
    """For log axes: NaN unless > 0."""
    value = _number(value)
    return value if value > 0 else math.nan


def class_counts(counts: dict[str, dict[str, int]]) -> Figure:
    """Grouped bars: classes on x, one bar per split, with counts on the bars."""
    splits = [s for s in ["train", "val", "test", *counts] if counts.get(s)]
    splits = list(dict.fromkeys(splits))
    classes = list(dict.fromkeys(name for s in splits for name in counts[s]))
    fig, ax = plt.subplots(figsize=(10, 5.5), layout="constrained")
    ax.set_title("Images per class and split")
    if not classes:
        _empty(ax, "no images")
        return fig
    x = np.arange(len(classes))
    width = 0.8 / len(splits)
    for i, split in enumerate(splits):
        values = [counts[split].get(name, 0) for name in classes]
        bars = ax.bar(x + (i - (len(splits) - 1) / 2) * width, values, width,
                      color=SPLIT_COLOURS.get(split, _TAB10[7 + i % 3]), edgecolor="black", linewidth=0.5,
                      label=f"{split} (n={sum(values):,})")
        ax.bar_label(bars, fontsize=8, padding=2)
    ax.set_xticks(x, classes)
    _rotate(ax, classes)
    ax.set_xlabel("Class")
    ax.set_ylabel("Images")
    ax.margins(y=0.1)
    ax.legend(title="Split")
    return fig


def image_grid(images: list[np.ndarray], titles: list[str], title: str, ncols: int = 4,
               title_colours: list[str] | None = None) -> Figure:
    """Images (uint8, HxWx3 or HxW) in a grid with small titles, e.g. green/red for right/wrong predictions."""
    ncols = max(1, min(ncols, len(images)))
    nrows = max(1, math.ceil(len(images) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.7 * ncols, 2.8 * nrows + 0.4), layout="constrained",
                             squeeze=False)
    fig.suptitle(title)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(images):
            continue
        image = np.asarray(images[i])
        ax.imshow(image.squeeze(), cmap="gray" if image.squeeze().ndim == 2 else None, vmin=0, vmax=255)
        colour = title_colours[i] if title_colours else "black"
        ax.set_title(titles[i] if i < len(titles) else "", fontsize=8, color=colour)
    if not images:
        _empty(axes[0, 0], "no images")
    return fig


def fine_tune_start(history: list[dict]) -> int | None:
    """The first epoch of the fine-tune stage (transfer models with fine-tuned layers), or None."""
    return next((row["epoch"] for row in history if row.get("stage") == "fine-tune"), None)


def training_curves(history: list[dict], model: str, best_epoch: int | None = None,
                    monitor: str | None = None) -> Figure:
    """Accuracy, loss and (when logged) macro-F1, train dashed and validation solid; learning rate (log) and epoch
    duration. `best_epoch`: the epoch whose weights were kept (by `monitor`); without it each panel marks its own
    validation optimum, since the history alone does not say what early stopping watched. A dashed purple line
    marks where fine-tuning starts."""
    scores = [("accuracy", "Accuracy", max), ("loss", "Loss", min)]
    if any("val_macro_f1" in row for row in history):
        scores.append(("macro_f1", "Macro-F1", max))
    width = len(scores)
    fig, axes = plt.subplot_mosaic([[s[0] for s in scores for _ in range(2)],
                                    ["learning_rate"] * width + ["epoch_seconds"] * width],
                                   figsize=(5.5 * width, 7.5), layout="constrained")
    fig.suptitle(f"{model} — training history")
    colour = model_colour(model)
    epochs = [row["epoch"] for row in history]
    tuned = fine_tune_start(history)

    def column(key: str) -> list[float]:
        return [_number(row.get(key)) for row in history]

    for metric, label, best_of in scores:
        ax = axes[metric]
        ax.plot(epochs, column(metric), "--o", color=colour, alpha=0.7, markersize=4, label="train")
        ax.plot(epochs, column(f"val_{metric}"), "-o", color=colour, markersize=4, label="validation")
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", linestyle=":",
                       label=f"kept epoch ({best_epoch}{f', by {monitor}' if monitor else ''})")
        else:
            rows = [row for row in history if not math.isnan(_number(row.get(f"val_{metric}")))]
            if rows:
                best = best_of(rows, key=lambda row: row[f"val_{metric}"])["epoch"]
                ax.axvline(best, color="grey", linestyle=":",
                           label=f"{'highest' if best_of is max else 'lowest'} validation {label.lower()} ({best})")
        ax.set_title(f"{label}: train vs validation")
        ax.set_ylabel(label)
    axes["learning_rate"].plot(epochs, column("learning_rate"), "-o", color=colour, markersize=4,
                               drawstyle="steps-mid")
    axes["learning_rate"].set_yscale("log")
    rates = sorted({r for r in column("learning_rate") if r > 0})
    if 0 < len(rates) <= 8:  # label the rates the run used, not a log axis's minor ticks
        axes["learning_rate"].minorticks_off()
        axes["learning_rate"].set_yticks(rates, [f"{r:.3g}" for r in rates])
    axes["learning_rate"].set_title("Learning rate per epoch")
    axes["learning_rate"].set_ylabel("Learning rate")
    bars = axes["epoch_seconds"].bar(epochs, column("epoch_seconds"), color=colour, alpha=0.8)
    for bar, row in zip(bars, history):
        if row.get("stage") == "fine-tune":
            bar.set_hatch("//")
    axes["epoch_seconds"].set_title("Epoch duration")
    axes["epoch_seconds"].set_ylabel("Seconds")
    for name, ax in axes.items():
        ax.set_xlabel("Epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if tuned is not None:
            ax.axvline(tuned - 0.5, color="purple", linestyle="--", label=f"fine-tuning starts (epoch {tuned})")
            ax.annotate("fine-tune →", (tuned - 0.5, 1), xycoords=("data", "axes fraction"), xytext=(3, -3),
                        textcoords="offset points", ha="left", va="top", color="purple", fontsize=9)
        if name in {metric for metric, _, _ in scores} and history:
            ax.legend(fontsize=8)
        if not history:
            _empty(ax, "no epochs")
    return fig


def confusion_matrices(confusion: list[list[int]], class_names: list[str], model: str, split: str = "test") -> Figure:
    """1×2 heatmaps: absolute counts and row-normalised (each true class sums to 1)."""
    counts = np.asarray(confusion, dtype=int)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    size = max(5.0, 1.1 * len(class_names) + 2.5)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size), layout="constrained")
    fig.suptitle(f"{model} — confusion matrix on {split} (n={counts.sum():,}, accuracy "
                 f"{np.trace(counts) / max(counts.sum(), 1):.3f})")
    sns.heatmap(counts, annot=True, fmt="d", cmap="Blues", square=True, ax=axes[0], xticklabels=class_names,
                yticklabels=class_names, cbar_kws={"label": "Images", "shrink": 0.8})
    sns.heatmap(normalised, annot=True, fmt=".2f", cmap="Blues", vmin=0, vmax=1, square=True, ax=axes[1],
                xticklabels=class_names, yticklabels=class_names, cbar_kws={"label": "Fraction of true class",
                                                                            "shrink": 0.8})
    axes[0].set_title("Counts")
    axes[1].set_title("Row-normalised (recall on the diagonal)")
    for ax in axes:
        ax.set_xlabel("Predicted")
        ax.set_ylabel("True")
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor")
        plt.setp(ax.get_yticklabels(), rotation=0)
    return fig


def reliability_diagram(bins: list[dict], ece: float, model: str) -> Figure:
    """Accuracy per confidence bin against the diagonal, the gap to each bin's mean confidence, and bin counts."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7.5), sharex=True, height_ratios=[3, 1],
                                      layout="constrained")
    fig.suptitle(f"{model} — reliability diagram (ECE = {ece:.3f})")
    full = [b for b in bins if b.get("count") and b.get("accuracy") is not None and b.get("confidence") is not None]
    lower = [b["lower"] for b in full]
    width = [b["upper"] - b["lower"] for b in full]
    accuracy = [b["accuracy"] for b in full]
    gap = [b["confidence"] - b["accuracy"] for b in full]
    top.bar(lower, accuracy, width, align="edge", color=model_colour(model), edgecolor="black", linewidth=0.6,
            label="accuracy")
    top.bar(lower, gap, width, bottom=accuracy, align="edge", color="lightgrey", alpha=0.6, edgecolor="dimgrey",
            hatch="//", label="gap to mean confidence")
    top.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("Accuracy")
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    bottom.bar([b["lower"] for b in bins], [b.get("count") or 0 for b in bins],
               [b["upper"] - b["lower"] for b in bins], align="edge", color="grey", edgecolor="black", linewidth=0.6)
    bottom.set_xlabel("Confidence (top-class probability)")
    bottom.set_ylabel("Images")
    bottom.grid(alpha=0.3)
    return fig


def _mark_missing(ax, x, values: list[float], text: str) -> None:
    """Say so at the foot of the axes where a model has no bar (a baseline's parameters: it has none)."""
    for xi, value in zip(x, values):
        if math.isnan(value):
            ax.annotate(text, (xi, 0), xycoords=("data", "axes fraction"), xytext=(0, 4), textcoords="offset points",
                        ha="center", va="bottom", fontsize=8, color="dimgrey")


def _bar_style(bars, rows: list[dict], champion: str | None) -> None:
    """Baselines light and cross-hatched, the champion hatched with a thick edge."""
    for bar, row in zip(bars, rows):
        if family_of(row) == "baseline":
            bar.set_hatch(BASELINE_HATCH)
            bar.set_alpha(0.75)
        if row["model"] == champion:
            bar.set_hatch("//")
            bar.set_linewidth(2)


def _style_legend(rows: list[dict], champion: str | None) -> list[Patch]:
    handles = []
    if champion in [row["model"] for row in rows]:
        handles.append(Patch(facecolor="white", edgecolor="black", linewidth=2, hatch="//",
                             label=f"champion ({champion}, chosen on validation)"))
    if any(family_of(row) == "baseline" for row in rows):
        handles.append(Patch(facecolor="lightgrey", edgecolor="black", hatch=BASELINE_HATCH,
                             label="baseline (no CNN; never a candidate)"))
    return handles


def comparison_bars(rows: list[dict], champion: str | None = None) -> Figure:
    """2×3 bars per model, baselines included: validation macro-F1 with its 95 % interval, accuracy, glioma recall
    and log loss, parameters (log) and training time; champion hatched, baselines grey and cross-hatched."""
    fig, axes = plt.subplots(2, 3, figsize=(16, 9), layout="constrained")
    fig.suptitle("Model comparison (validation)" + (f" — champion: {champion}" if champion else ""))
    models = [row["model"] for row in rows]
    colours = [model_colour(m) for m in models]
    panels = [("val_macro_f1", "Validation macro-F1 (95 % interval)", "Macro-F1", "{:.3f}"),
              ("val_acc", "Validation accuracy", "Accuracy", "{:.3f}"),
              ("val_glioma_recall", "Validation glioma recall", "Recall", "{:.2f}"),
              ("val_loss", "Validation log loss", "Loss", "{:.3f}"),
              ("params_total", "Parameters (total)", "Parameters (log scale)", None),
              ("train_seconds", "Training time", "Seconds", "{:.0f} s")]
    for ax, (key, title, ylabel, fmt) in zip(axes.flat, panels):
        ax.set_title(title)
        values = [(_positive if key == "params_total" else _number)(row.get(key)) for row in rows]
        if all(math.isnan(v) for v in values):
            _empty(ax, "no models" if not rows else "not recorded")
            continue
        x = np.arange(len(models))
        bars = ax.bar(x, values, color=colours, edgecolor="black", linewidth=0.6)
        _bar_style(bars, rows, champion)
        labels = [("–" if math.isnan(v) else _human(v) if fmt is None else fmt.format(v)) for v in values]
        if key == "val_macro_f1":
            low = np.array([_number(row.get("val_macro_f1_low")) for row in rows])
            high = np.array([_number(row.get("val_macro_f1_high")) for row in rows])
            values = np.array(values)
            ax.errorbar(x, values, yerr=[np.nan_to_num(values - low), np.nan_to_num(high - values)], fmt="none",
                        ecolor="black", elinewidth=1.2, capsize=5)
            for xi, top, label in zip(x, np.where(np.isnan(high), values, high), labels):  # above the whisker
                ax.annotate(label, (xi, top), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=9)
        else:
            ax.bar_label(bars, labels, fontsize=9, padding=2)
        ax.set_xticks(x, models)
        _rotate(ax, models)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
        if key == "params_total":
            ax.set_yscale("log")
            ax.set_ylim(np.nanmin(values) / 3, np.nanmax(values) * 4)
            _mark_missing(ax, x, values, "none")
        elif key in ("val_acc", "val_macro_f1", "val_glioma_recall"):
            ax.set_ylim(0, 1.12)
        else:
            ax.margins(y=0.15)
        for label in ax.get_xticklabels():
            if label.get_text() == champion:
                label.set_fontweight("bold")
    handles = _style_legend(rows, champion)
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    return fig


def overlaid_curves(histories: dict[str, list[dict]]) -> Figure:
    """All trained models on one figure: accuracy and loss per epoch, validation solid, train dashed; a model's
    fine-tune epochs start at a cross. Models without a history (the ensemble) are left out."""
    histories = {model: history for model, history in histories.items() if history}
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
    fig.suptitle("Training curves of all models")
    for ax, metric, label in ((axes[0], "accuracy", "Accuracy"), (axes[1], "loss", "Loss")):
        for model, history in histories.items():
            epochs = [row["epoch"] for row in history]
            colour = model_colour(model)
            ax.plot(epochs, [_number(r.get(f"val_{metric}")) for r in history], "-", color=colour, linewidth=2)
            ax.plot(epochs, [_number(r.get(metric)) for r in history], "--", color=colour, alpha=0.7)
            tuned = fine_tune_start(history)
            if tuned is not None:
                row = next(r for r in history if r["epoch"] == tuned)
                ax.plot([tuned], [_number(row.get(f"val_{metric}"))], "X", color=colour, markersize=10,
                        markeredgecolor="black")
        ax.set_title(label)
        ax.set_xlabel("Epoch")
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=model_colour(m), linewidth=2, label=m) for m in histories]
    handles += [Line2D([], [], color="black", linestyle="-", label="validation"),
                Line2D([], [], color="black", linestyle="--", label="train")]
    if any(fine_tune_start(h) is not None for h in histories.values()):
        handles.append(Line2D([], [], color="grey", marker="X", linestyle="", markeredgecolor="black",
                              markersize=9, label="first fine-tune epoch"))
    axes[1].legend(handles=handles)
    if not histories:
        for ax in axes:
            _empty(ax, "no models")
    return fig


def custom_vs_transfer(rows: list[dict]) -> Figure:
    """Custom CNNs vs transfer learning (then the ensemble and the baselines, for reference): validation/test scores
    per model, and trainable vs total parameters."""
    order = list(FAMILY_TITLES)
    rows = sorted(rows, key=lambda r: order.index(family_of(r)) if family_of(r) in order else len(order))
    models = [row["model"] for row in rows]
    families = [family_of(row) for row in rows]
    transfer = [m for m, f in zip(models, families) if f == "transfer"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5), layout="constrained")
    fig.suptitle("Custom CNNs vs transfer learning" + (f" ({', '.join(transfer)})" if transfer else ""))
    left.set_title("Scores per model")
    right.set_title("Trainable vs total parameters")
    if not rows:
        _empty(left, "no models")
        _empty(right, "no models")
        return fig
    x = np.arange(len(models))
    metrics = [("val_acc", "val accuracy", "", 1.0), ("val_macro_f1", "val macro-F1", "//", 0.75),
               ("test_acc", "test accuracy", "..", 0.5)]
    width = 0.8 / len(metrics)
    for i, (key, _, hatch, alpha) in enumerate(metrics):
        values = [_number(row.get(key)) for row in rows]
        bars = left.bar(x + (i - 1) * width, np.nan_to_num(values), width, color=[model_colour(m) for m in models],
                        alpha=alpha, hatch=hatch, edgecolor="black", linewidth=0.5)
        left.bar_label(bars, ["n/a" if math.isnan(v) else f"{v:.2f}" for v in values], fontsize=7, padding=2,
                       rotation=90)
    left.set_ylim(0, 1.2)
    left.set_yticks(np.linspace(0, 1, 6))
    left.set_ylabel("Score")
    left.legend(handles=[Patch(facecolor="grey", alpha=a, hatch=h, edgecolor="black", label=name)
                         for _, name, h, a in metrics], loc="upper left", ncols=3, fontsize=8)
    right_width = 0.38
    total = [_positive(r.get("params_total")) for r in rows]
    trainable = [_positive(r.get("params_trainable")) for r in rows]
    colours = [model_colour(m) for m in models]
    bars = right.bar(x - right_width / 2, total, right_width, color=colours, alpha=0.35, edgecolor="black",
                     linewidth=0.5)
    right.bar_label(bars, [_human(v) for v in total], fontsize=8, padding=2)
    bars = right.bar(x + right_width / 2, trainable, right_width, color=colours, edgecolor="black", linewidth=0.5)
    right.bar_label(bars, [_human(v) for v in trainable], fontsize=8, padding=2)
    right.set_yscale("log")
    _mark_missing(right, x, total, "no\nparameters")
    if not all(math.isnan(v) for v in total + trainable):
        right.set_ylim(np.nanmin(trainable + total) / 4, np.nanmax(total) * 6)
    right.set_ylabel("Parameters (log scale)")
    right.legend(handles=[Patch(facecolor="grey", alpha=0.35, edgecolor="black", label="total"),
                          Patch(facecolor="grey", edgecolor="black", label="trainable")], loc="upper left", ncols=2)
    pad = max(0, 3 - len(models)) / 2  # one or two models keep normal-width bars, centred
    groups = [(family, [i for i, f in enumerate(families) if f == family]) for family in dict.fromkeys(families)]
    for ax in (left, right):
        ax.set_xticks(x, models)
        _rotate(ax, models)
        ax.set_xlim(-0.6 - pad, len(models) - 0.4 + pad)
        ax.grid(axis="y", alpha=0.3)
        for family, members in groups:
            if members[0] > 0:
                ax.axvline(members[0] - 0.5, color="grey", linestyle=":")
            ax.annotate(FAMILY_TITLES.get(family, family), (np.mean(members), 0), xycoords=("data", "axes fraction"),
                        xytext=(0, -48 if max(map(len, models)) > 8 else -22), textcoords="offset points",
                        ha="center", va="top", fontweight="bold")
    return fig


def distance_histogram(distances: list[int], max_distance: int,
                       title: str = "pHash distance from each test image to its nearest train/val image") -> Figure:
    """Histogram of Hamming distances (0..64); images at or below `max_distance` are near-duplicates."""
    distances = np.asarray(distances, dtype=int)
    counts = np.bincount(distances, minlength=65)[:65] if distances.size else np.zeros(65, int)
    near = int((distances <= max_distance).sum())
    share = near / distances.size if distances.size else 0.0
    fig, ax = plt.subplots(figsize=(10, 5), layout="constrained")
    ax.set_title(f"{title}\n{near:,} of {distances.size:,} test images at distance ≤ {max_distance} ({share:.1%})")
    steps = np.arange(65)
    ax.bar(steps, counts, 1.0, color=np.where(steps <= max_distance, "tab:red", "tab:blue"), edgecolor="black",
           linewidth=0.3)
    ax.axvline(max_distance + 0.5, color="black", linestyle="--",
               label=f"near-duplicate threshold (≤ {max_distance} bits)")
    ax.set_xlim(-1, 65)
    ax.set_xlabel("Hamming distance to the nearest train/val image (bits of 64)")
    ax.set_ylabel("Test images")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(handles=[*ax.get_legend_handles_labels()[0], Patch(color="tab:red", label="near-duplicate"),
                       Patch(color="tab:blue", label="distinct")])
    ax.grid(axis="y", alpha=0.3)
    return fig


def style_distributions(frame, class_names: list[str], title: str, group: str | None = None) -> Figure:
    """Small multiples: a panel per style feature (images.STYLE_FEATURES), a box per class; with `group` (a column
    of `frame`, e.g. the training split vs an external set), boxes side by side within each class."""
    features = list(STYLE_FEATURES)
    frame = frame.reset_index(drop=True)  # seaborn needs unique row labels (a concat of two frames has repeats)
    ncols = 5
    nrows = math.ceil(len(features) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 3.4 * nrows + 0.6), layout="constrained",
                             squeeze=False)
    fig.suptitle(title)
    classes = [name for name in class_names if name in set(frame["class"])] if len(frame) else []
    for ax, feature in zip(axes.flat, features):
        ax.set_title(f"{feature}: {STYLE_FEATURES[feature]}", fontsize=8, wrap=True)
        if not classes:
            _empty(ax, "no images")
            continue
        sns.boxplot(data=frame, x="class", y=feature, order=classes, hue=group or "class",
                    hue_order=None if group else classes, legend=bool(group) and feature == features[0], ax=ax,
                    fliersize=1.5, linewidth=0.8, palette=None if group else _TAB10[:len(classes)])
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.grid(axis="y", alpha=0.3)
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor", fontsize=8)
        if ax.get_legend() is not None:
            ax.legend(fontsize=7, title=None)
    for ax in list(axes.flat)[len(features):]:
        ax.axis("off")
    return fig


def background_share(per_class: dict[str, dict], model: str, threshold: float) -> Figure:
    """Per true class, the mean share of Grad-CAM energy outside the head, with the flag threshold; flagged classes
    red."""
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    ax.set_title(f"{model} — Grad-CAM energy outside the head, per true class")
    if not per_class:
        _empty(ax, "no images")
        return fig
    names = list(per_class)
    values = [per_class[name]["mean"] for name in names]
    bars = ax.bar(names, values, color=["tab:red" if per_class[n]["flagged"] else model_colour(model) for n in names],
                  edgecolor="black", linewidth=0.6)
    ax.bar_label(bars, [f"{v:.2f} (n={per_class[n]['images']})" for v, n in zip(values, names)], fontsize=8,
                 padding=2)
    ax.axhline(threshold, color="black", linestyle="--",
               label=f"above {threshold:.0%}: decisions rest mostly on background or borders")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("Share of heatmap energy outside the head")
    _rotate(ax, names)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig
