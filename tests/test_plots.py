"""The report's figures: every function draws a readable, non-blank PNG from small realistic inputs."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

from brain_tumor import plots
from brain_tumor.synthetic import CLASS_NAMES, phantom

MODELS = ["cnn_a", "cnn_b", "cnn_c", "resnet50"]


def history(epochs: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for epoch in range(1, epochs + 1):
        accuracy = 1 - (0.5 + 0.1 * seed) / epoch
        rows.append({"epoch": epoch, "accuracy": accuracy, "val_accuracy": accuracy - rng.uniform(0, 0.1),
                     "loss": 1.2 / epoch, "val_loss": 1.3 / epoch + rng.uniform(0, 0.1),
                     "learning_rate": 1e-4 if epoch < 4 else 5e-5, "epoch_seconds": rng.uniform(2, 4)})
    return rows


def row(model: str, val_acc: float, test_acc: float | None, params: int, trainable: int) -> dict:
    return {"model": model, "val_acc": val_acc, "val_loss": 1 - val_acc, "val_macro_f1": val_acc - 0.02,
            "test_acc": test_acc, "test_macro_f1": None if test_acc is None else test_acc - 0.02,
            "params_total": params, "params_trainable": trainable, "train_seconds": params / 1e4}


ROWS = [row("cnn_a", 0.86, 0.84, 1_200_000, 1_200_000), row("cnn_b", 0.81, None, 450_000, 450_000),
        row("cnn_c", 0.88, 0.87, 2_100_000, 2_100_000), row("resnet50", 0.91, None, 24_000_000, 530_000)]


def images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [np.stack([phantom(i % 4, 64, rng)] * 3, axis=-1) if i % 2 else phantom(i % 4, 64, rng) for i in range(n)]


def figures() -> dict:
    """Each figure the report draws, by file name."""
    grid = images(16)
    bins = [{"lower": i / 10, "upper": (i + 1) / 10, "count": 0 if i < 3 else 10 * i,
             "confidence": None if i < 3 else i / 10 + 0.05, "accuracy": None if i < 3 else i / 10 - 0.05}
            for i in range(10)]
    return {
        "class_counts": lambda: plots.class_counts({"train": dict(zip(CLASS_NAMES, [826, 822, 395, 827])),
                                                    "val": dict(zip(CLASS_NAMES, [100, 115, 105, 74])),
                                                    "test": {}}),
        "samples": lambda: plots.image_grid(grid, [f"{CLASS_NAMES[i % 4]}\n#{i}" for i in range(16)],
                                            "Sample images"),
        "predictions": lambda: plots.image_grid(
            grid[:8], [f"true: {CLASS_NAMES[i % 4]}\npred: {CLASS_NAMES[(i + i // 6) % 4]} (0.93)" for i in range(8)],
            "Sample predictions", title_colours=["green"] * 6 + ["red"] * 2),
        "leakage_pairs": lambda: plots.image_grid(grid[:4], ["test 1", "train (distance 2)", "test 2", "val (0)"],
                                                  "Near-duplicate pairs", ncols=2),
        "training_curves": lambda: plots.training_curves(history(8, 0), "cnn_a"),
        "confusion": lambda: plots.confusion_matrices([[50, 3, 1, 0], [4, 40, 5, 2], [0, 2, 60, 1], [0, 0, 0, 0]],
                                                      CLASS_NAMES, "cnn_c"),
        "reliability": lambda: plots.reliability_diagram(bins, 0.043, "resnet50"),
        "comparison": lambda: plots.comparison_bars(ROWS, champion="resnet50"),
        "overlaid": lambda: plots.overlaid_curves({m: history(5 + i, i) for i, m in enumerate(MODELS)}),
        "custom_vs_transfer": lambda: plots.custom_vs_transfer(ROWS),
        "custom_only": lambda: plots.custom_vs_transfer(ROWS[:3]),
        "transfer_only": lambda: plots.custom_vs_transfer(ROWS[3:]),
        "distances": lambda: plots.distance_histogram([0, 1, 3, 6, 7, *range(15, 40), 22, 25, 28, 30], 6),
    }


@pytest.mark.parametrize("name", list(figures()))
def test_every_figure_saves_a_readable_non_blank_png(name, tmp_path):
    path = plots.save(figures()[name](), tmp_path / "report" / f"{name}.png")
    assert path.exists() and plt.get_fignums() == []
    image = Image.open(path)
    image.load()
    width, height = image.size
    assert image.format == "PNG" and 400 <= width <= 3000 and 300 <= height <= 3000
    pixels = np.asarray(image.convert("RGB")).astype(np.uint32)
    assert pixels.std() > 10
    assert len(np.unique(pixels[..., 0] << 16 | pixels[..., 1] << 8 | pixels[..., 2])) > 50


def test_model_colours_are_stable_and_distinct():
    colours = [plots.model_colour(m) for m in MODELS]
    assert len(set(colours)) == 4 and colours == [plots.MODEL_COLOURS[m] for m in MODELS]
    assert plots.model_colour("efficientnet") == plots.model_colour("efficientnet")
    assert plots.model_colour("efficientnet") not in colours


def test_empty_inputs_still_draw(tmp_path):
    for i, figure in enumerate([plots.class_counts({}), plots.image_grid([], [], "none"),
                                plots.comparison_bars([]), plots.custom_vs_transfer([]), plots.overlaid_curves({}),
                                plots.training_curves([], "cnn_a"), plots.distance_histogram([], 6)]):
        assert Image.open(plots.save(figure, tmp_path / f"{i}.png")).size[0] > 0
    assert plt.get_fignums() == []
