"""The report's figures: every function draws a readable, non-blank PNG from small realistic inputs."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.container import ErrorbarContainer
from PIL import Image

from brain_tumor import plots
from brain_tumor.model_specs import MODEL_SPECS
from brain_tumor.synthetic import CLASS_NAMES, phantom

MODELS = ["cnn_a", "cnn_b", "cnn_c", "resnet50"]
FIRST_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]  # tab10's first four: the report's colours since v0.1


def history(epochs: int, seed: int, fine_tune: int = 0) -> list[dict]:
    """As training writes it; the last `fine_tune` epochs are the fine-tune stage (at a tenth of the rate)."""
    rng = np.random.default_rng(seed)
    rows = []
    for epoch in range(1, epochs + 1):
        accuracy = 1 - (0.5 + 0.1 * seed) / epoch
        tuned = epoch > epochs - fine_tune
        rows.append({"epoch": epoch, "accuracy": accuracy, "val_accuracy": accuracy - rng.uniform(0, 0.1),
                     "loss": 1.2 / epoch, "val_loss": 1.3 / epoch + rng.uniform(0, 0.1), "macro_f1": accuracy - 0.05,
                     "val_macro_f1": accuracy - rng.uniform(0.05, 0.15),
                     "learning_rate": (1e-4 if epoch < 4 else 5e-5) / (10 if tuned else 1),
                     "epoch_seconds": rng.uniform(2, 4), "stage": "fine-tune" if tuned else "train"})
    return rows


def row(model: str, val_acc: float, test_acc: float | None, params: int, trainable: int,
        family: str = "custom_cnn") -> dict:
    return {"model": model, "family": family, "val_acc": val_acc, "val_loss": 1 - val_acc,
            "val_macro_f1": val_acc - 0.02, "val_macro_f1_low": val_acc - 0.08, "val_macro_f1_high": val_acc + 0.03,
            "val_glioma_recall": val_acc - 0.1, "test_acc": test_acc,
            "test_macro_f1": None if test_acc is None else test_acc - 0.02, "params_total": params,
            "params_trainable": trainable, "train_seconds": params / 1e4}


ROWS = [row("cnn_a", 0.86, 0.84, 1_200_000, 1_200_000), row("cnn_b", 0.81, None, 450_000, 450_000),
        row("cnn_c", 0.88, 0.87, 2_100_000, 2_100_000), row("resnet50", 0.91, None, 24_000_000, 530_000, "transfer")]
ALL_ROWS = ROWS + [row("ensemble", 0.92, 0.9, 3_000_000, 2_500_000, "ensemble"),
                   row("baseline_knn", 0.55, 0.5, 0, 0, "baseline"),
                   row("baseline_logreg", 0.62, 0.6, 0, 0, "baseline")]


@pytest.fixture(autouse=True)
def close_figures():
    """A failed test's open figures must not fail the next test's check that saving closed them."""
    yield
    plt.close("all")


def images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [np.stack([phantom(i % 4, 64, rng)] * 3, axis=-1) if i % 2 else phantom(i % 4, 64, rng) for i in range(n)]


def style(n: int, seed: int = 0):
    """Style features as scan measures them: no_tumor files smaller and brighter, as in the real Training folder."""
    import pandas as pd

    from brain_tumor.images import STYLE_FEATURES

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    small = labels == 2
    side = np.where(small, rng.integers(200, 300, n), 512)
    frame = pd.DataFrame({"class": [CLASS_NAMES[i] for i in labels], "width": side, "height": side + rng.integers(
        0, 30, n) * small, "bands": np.where(rng.random(n) < 0.05, 1, 3), "mean": rng.normal(40, 6, n) + 15 * small,
        "std": rng.normal(45, 5, n), "foreground": rng.uniform(0.35, 0.65, n)})
    frame["aspect"] = frame["width"] / frame["height"]
    for name, centre in (("fg_p10", 45), ("fg_p50", 75), ("fg_p90", 125)):
        frame[name] = rng.normal(centre, 8, n) + 15 * small
    return frame[["class", *STYLE_FEATURES]]


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
        "training_curves_fine_tune": lambda: plots.training_curves(history(9, 1, fine_tune=4), "resnet50", 7,
                                                                   "val_macro_f1"),
        "training_curves_old_history": lambda: plots.training_curves(
            [{k: v for k, v in r.items() if "macro_f1" not in k and k != "stage"} for r in history(5, 0)], "cnn_b"),
        "confusion": lambda: plots.confusion_matrices([[50, 3, 1, 0], [4, 40, 5, 2], [0, 2, 60, 1], [0, 0, 0, 0]],
                                                      CLASS_NAMES, "cnn_c"),
        "reliability": lambda: plots.reliability_diagram(bins, 0.043, "resnet50"),
        "comparison": lambda: plots.comparison_bars(ROWS, champion="resnet50"),
        "comparison_with_baselines": lambda: plots.comparison_bars(ALL_ROWS, champion="ensemble"),
        "overlaid": lambda: plots.overlaid_curves({m: history(5 + i, i) for i, m in enumerate(MODELS)}),
        "overlaid_fine_tune": lambda: plots.overlaid_curves({"cnn_a": history(5, 0), "resnet50": history(8, 1, 3),
                                                             "ensemble": []}),
        "custom_vs_transfer": lambda: plots.custom_vs_transfer(ROWS),
        "custom_vs_transfer_all": lambda: plots.custom_vs_transfer(ALL_ROWS),
        "custom_only": lambda: plots.custom_vs_transfer(ROWS[:3]),
        "transfer_only": lambda: plots.custom_vs_transfer(ROWS[3:]),
        "distances": lambda: plots.distance_histogram([0, 1, 3, 6, 7, *range(15, 40), 22, 25, 28, 30], 6),
        "style_distributions": lambda: plots.style_distributions(style(200), CLASS_NAMES, "Style per class"),
        "style_external": lambda: plots.style_distributions(
            __import__("pandas").concat([style(200).assign(source="training split"),
                                         style(30, 1).query("`class` != 'meningioma_tumor'").assign(
                                             source="external hospital_b", width=256.0)]),
            [n for n in CLASS_NAMES if n != "meningioma_tumor"], "External style", group="source"),
        "background_share": lambda: plots.background_share(
            {name: {"images": 40, "mean": share, "flagged": share > 0.5}
             for name, share in zip(CLASS_NAMES, [0.31, 0.62, 0.18, 0.44])}, "cnn_a", 0.5),
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
    assert colours == FIRST_COLOURS  # unchanged, so old and new reports read alike
    named = [*MODEL_SPECS, "ensemble", "baseline_knn", "baseline_logreg"]
    fixed = [plots.model_colour(m) for m in named]
    assert len(set(fixed)) == len(named) and fixed == [plots.MODEL_COLOURS[m] for m in named]
    assert plots.model_colour("efficientnet") == plots.model_colour("efficientnet")
    assert plots.model_colour("efficientnet") not in fixed
    greys = [plots.model_colour(m) for m in ("baseline_knn", "baseline_logreg", "baseline_svm")]
    assert all(len(set(to_rgb(c))) == 1 for c in greys)  # baselines are greys, set apart from every model
    assert not any(len(set(to_rgb(c))) == 1 for c in fixed[:-2])


def fine_tune_lines(figure) -> list[float]:
    """x of every purple dashed vertical line, over all axes."""
    return [line.get_xdata()[0] for ax in figure.axes for line in ax.lines
            if line.get_color() == "purple" and line.get_linestyle() == "--"]


def test_training_curves_mark_where_fine_tuning_starts():
    figure = plots.training_curves(history(9, 1, fine_tune=4), "resnet50")
    assert fine_tune_lines(figure) == [5.5] * 5  # between epochs 5 and 6, on every panel
    assert any("fine-tuning starts (epoch 6)" in text.get_text() for ax in figure.axes if ax.get_legend()
               for text in ax.get_legend().get_texts())
    assert fine_tune_lines(plots.training_curves(history(9, 1), "cnn_a")) == []


def test_training_curves_mark_the_kept_epoch_when_told():
    figure = plots.training_curves(history(6, 0), "cnn_a", best_epoch=4, monitor="val_macro_f1")
    labels = {text.get_text() for ax in figure.axes if ax.get_legend() for text in ax.get_legend().get_texts()}
    assert "kept epoch (4, by val_macro_f1)" in labels


def test_comparison_bars_show_intervals_and_set_the_baselines_apart():
    figure = plots.comparison_bars(ALL_ROWS, champion="ensemble")
    f1 = figure.axes[0]
    assert f1.get_title() == "Validation macro-F1 (95 % interval)"
    whiskers = [c for c in f1.containers if isinstance(c, ErrorbarContainer)]
    assert len(whiskers) == 1
    segments = whiskers[0].lines[2][0].get_segments()
    ends = [(round(s[0][1], 6), round(s[1][1], 6)) for s in segments]
    assert ends == [(round(r["val_macro_f1_low"], 6), round(r["val_macro_f1_high"], 6)) for r in ALL_ROWS]
    bars = [p for p in f1.patches if p.get_height() > 0]
    hatches = {label.get_text(): bar.get_hatch() for label, bar in zip(f1.get_xticklabels(), bars)}
    assert hatches == {"cnn_a": None, "cnn_b": None, "cnn_c": None, "resnet50": None, "ensemble": "//",
                       "baseline_knn": plots.BASELINE_HATCH, "baseline_logreg": plots.BASELINE_HATCH}
    legend = {text.get_text() for text in figure.legends[0].get_texts()}
    assert "baseline (no CNN; never a candidate)" in legend


def test_overlaid_curves_leave_out_models_without_a_history():
    figure = plots.overlaid_curves({"cnn_a": history(5, 0), "resnet50": history(8, 1, 3), "ensemble": []})
    labels = [text.get_text() for text in figure.axes[1].get_legend().get_texts()]
    assert labels == ["cnn_a", "resnet50", "validation", "train", "first fine-tune epoch"]


def test_custom_vs_transfer_groups_by_family():
    figure = plots.custom_vs_transfer(list(reversed(ALL_ROWS)))
    left = figure.axes[0]
    assert [t.get_text() for t in left.get_xticklabels()] == ["cnn_c", "cnn_b", "cnn_a", "resnet50", "ensemble",
                                                              "baseline_logreg", "baseline_knn"]  # order kept within
    groups = [t.get_text() for t in left.texts if t.get_fontweight() == "bold"]  # not the bars' labels
    assert groups == ["Custom CNNs", "Transfer\nlearning", "Ensemble", "Baselines"]


def test_external_confusions_are_drawn_per_set(tmp_path):
    from brain_tumor.figures import external_confusions, external_figure_name

    confusion = [[5, 1, 0, 0], [0, 0, 0, 0], [1, 0, 4, 1], [0, 0, 2, 6]]
    metrics = {"external": {"hospital_b": {"confusion_matrix": confusion},
                            "public/Testing": {"confusion_matrix": confusion}}}
    shown = external_confusions("ensemble", metrics, CLASS_NAMES, tmp_path)
    assert sorted(p.name for p in shown.values()) == ["external_hospital_b_confusion.png",
                                                      "external_public_Testing_confusion.png"]
    assert external_figure_name("public/Testing") == "external_public_Testing_confusion.png"
    assert all(Image.open(p).size[0] > 400 for p in shown.values())
    assert external_confusions("cnn_a", {"external": {}}, CLASS_NAMES, tmp_path) == {}
    assert plt.get_fignums() == []


def test_empty_inputs_still_draw(tmp_path):
    for i, figure in enumerate([plots.class_counts({}), plots.image_grid([], [], "none"),
                                plots.comparison_bars([]), plots.custom_vs_transfer([]), plots.overlaid_curves({}),
                                plots.training_curves([], "cnn_a"), plots.distance_histogram([], 6),
                                plots.style_distributions(style(0), CLASS_NAMES, "none"),
                                plots.background_share({}, "cnn_a", 0.5)]):
        assert Image.open(plots.save(figure, tmp_path / f"{i}.png")).size[0] > 0
    assert plt.get_fignums() == []
