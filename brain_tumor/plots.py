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

from .model_specs import MODEL_SPECS

_TAB10 = [to_hex(c) for c in plt.get_cmap("tab10").colors]
MODEL_COLOURS = {"cnn_a": _TAB10[0], "cnn_b": _TAB10[1], "cnn_c": _TAB10[2], "resnet50": _TAB10[3]}
SPLIT_COLOURS = {"train": "#66c2a5", "val": "#fc8d62", "test": "#8da0cb"}
TRANSFER_MODELS = tuple(name for name, spec in MODEL_SPECS.items() if spec.family == "transfer")


def model_colour(name: str) -> str:
    """A model's colour: fixed for the four known models, stable (by CRC32) among the other tab10 colours otherwise."""
    if name in MODEL_COLOURS:
        return MODEL_COLOURS[name]
    spare = _TAB10[len(MODEL_COLOURS):]
    return spare[zlib.crc32(name.encode()) % len(spare)]


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
    """1234567 → '1.23M'."""
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


def training_curves(history: list[dict], model: str) -> Figure:
    """2×2: accuracy and loss (train dashed, validation solid), learning rate (log) and epoch duration."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), layout="constrained")
    fig.suptitle(f"{model} — training history")
    colour = model_colour(model)
    epochs = [row["epoch"] for row in history]

    def column(key: str) -> list[float]:
        return [_number(row.get(key)) for row in history]

    best = min(history, key=lambda row: row.get("val_loss", math.inf))["epoch"] if history else None
    for ax, metric, label in ((axes[0, 0], "accuracy", "Accuracy"), (axes[0, 1], "loss", "Loss")):
        ax.plot(epochs, column(metric), "--o", color=colour, alpha=0.7, markersize=4, label="train")
        ax.plot(epochs, column(f"val_{metric}"), "-o", color=colour, markersize=4, label="validation")
        if best is not None:
            ax.axvline(best, color="grey", linestyle=":", label=f"best epoch ({best})")
        ax.set_title(f"{label}: train vs validation")
        ax.set_ylabel(label)
        ax.legend()
    axes[1, 0].plot(epochs, column("learning_rate"), "-o", color=colour, markersize=4, drawstyle="steps-mid")
    axes[1, 0].set_yscale("log")
    rates = sorted({r for r in column("learning_rate") if r > 0})
    if 0 < len(rates) <= 8:  # label the rates the run used, not a log axis's minor ticks
        axes[1, 0].minorticks_off()
        axes[1, 0].set_yticks(rates, [f"{r:.3g}" for r in rates])
    axes[1, 0].set_title("Learning rate per epoch")
    axes[1, 0].set_ylabel("Learning rate")
    axes[1, 1].bar(epochs, column("epoch_seconds"), color=colour, alpha=0.8)
    axes[1, 1].set_title("Epoch duration")
    axes[1, 1].set_ylabel("Seconds")
    for ax in axes.flat:
        ax.set_xlabel("Epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
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


def comparison_bars(rows: list[dict], champion: str | None = None) -> Figure:
    """2×2 bars per model: validation accuracy and loss, parameters (log) and training time; champion hatched."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), layout="constrained")
    fig.suptitle("Model comparison (validation)" + (f" — champion: {champion}" if champion else ""))
    models = [row["model"] for row in rows]
    colours = [model_colour(m) for m in models]
    panels = [("val_acc", "Validation accuracy", "Accuracy", "{:.3f}"),
              ("val_loss", "Validation loss", "Loss", "{:.3f}"),
              ("params_total", "Parameters (total)", "Parameters (log scale)", None),
              ("train_seconds", "Training time", "Seconds", "{:.0f} s")]
    for ax, (key, title, ylabel, fmt) in zip(axes.flat, panels):
        ax.set_title(title)
        if not rows:
            _empty(ax, "no models")
            continue
        values = [(_positive if key == "params_total" else _number)(row.get(key)) for row in rows]
        bars = ax.bar(models, values, color=colours, edgecolor="black", linewidth=0.6)
        for bar, model in zip(bars, models):
            if model == champion:
                bar.set_hatch("//")
                bar.set_linewidth(2)
        ax.bar_label(bars, [("–" if math.isnan(v) else _human(v) if fmt is None else fmt.format(v)) for v in values],
                     fontsize=9, padding=2)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
        if key == "params_total":
            ax.set_yscale("log")
            ax.set_ylim(np.nanmin(values) / 3, np.nanmax(values) * 4)
        elif key == "val_acc":
            ax.set_ylim(0, 1.1)
        else:
            ax.margins(y=0.15)
        for label in ax.get_xticklabels():
            if label.get_text() == champion:
                label.set_fontweight("bold")
    if champion in models:
        fig.legend(handles=[Patch(facecolor="white", edgecolor="black", linewidth=2, hatch="//",
                                  label=f"champion ({champion}, chosen on validation)")], loc="outside lower center")
    return fig


def overlaid_curves(histories: dict[str, list[dict]]) -> Figure:
    """All models on one figure: accuracy and loss per epoch, validation solid, train dashed."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
    fig.suptitle("Training curves of all models")
    for ax, metric, label in ((axes[0], "accuracy", "Accuracy"), (axes[1], "loss", "Loss")):
        for model, history in histories.items():
            epochs = [row["epoch"] for row in history]
            colour = model_colour(model)
            ax.plot(epochs, [_number(r.get(f"val_{metric}")) for r in history], "-", color=colour, linewidth=2)
            ax.plot(epochs, [_number(r.get(metric)) for r in history], "--", color=colour, alpha=0.7)
        ax.set_title(label)
        ax.set_xlabel("Epoch")
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=model_colour(m), linewidth=2, label=m) for m in histories]
    handles += [Line2D([], [], color="black", linestyle="-", label="validation"),
                Line2D([], [], color="black", linestyle="--", label="train")]
    axes[1].legend(handles=handles)
    if not histories:
        for ax in axes:
            _empty(ax, "no models")
    return fig


def custom_vs_transfer(rows: list[dict]) -> Figure:
    """Custom CNNs vs transfer learning: validation/test scores per model, and trainable vs total parameters."""
    rows = [r for r in rows if r["model"] not in TRANSFER_MODELS] + [r for r in rows if r["model"] in TRANSFER_MODELS]
    models = [row["model"] for row in rows]
    n_custom = sum(m not in TRANSFER_MODELS for m in models)
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5), layout="constrained")
    fig.suptitle("Custom CNNs vs transfer learning (ResNet50)")
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
    right.set_ylim(np.nanmin(trainable + total) / 4, np.nanmax(total) * 6)
    right.set_ylabel("Parameters (log scale)")
    right.legend(handles=[Patch(facecolor="grey", alpha=0.35, edgecolor="black", label="total"),
                          Patch(facecolor="grey", edgecolor="black", label="trainable")], loc="upper left", ncols=2)
    pad = max(0, 3 - len(models)) / 2  # one or two models keep normal-width bars, centred
    for ax in (left, right):
        ax.set_xticks(x, models)
        ax.set_xlim(-0.6 - pad, len(models) - 0.4 + pad)
        ax.grid(axis="y", alpha=0.3)
        if 0 < n_custom < len(models):
            ax.axvline(n_custom - 0.5, color="grey", linestyle=":")
        for i, label in enumerate(("Custom CNNs", "Transfer learning")):
            group = x[:n_custom] if i == 0 else x[n_custom:]
            if len(group):
                ax.annotate(label, (group.mean(), 0), xycoords=("data", "axes fraction"), xytext=(0, -22),
                            textcoords="offset points", ha="center", va="top", fontweight="bold")
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
