"""Figures as report.html embeds them: photo grids as JPEG, plots as PNG, none wider than twice what it is shown at."""

import base64
import io

import numpy as np
from PIL import Image

from brain_tumor import plots
from brain_tumor.embed import CONTENT_WIDTH, MAX_DENSITY, embedded
from brain_tumor.synthetic import CLASS_NAMES, phantom


def decoded(figure: dict) -> tuple[str, Image.Image]:
    kind, data = figure["src"].removeprefix("data:").split(";base64,")
    return kind, Image.open(io.BytesIO(base64.b64decode(data)))


def test_a_photo_grid_is_a_jpeg_no_wider_than_twice_the_page(tmp_path):
    rng = np.random.default_rng(0)
    slices = [phantom(i % 4, 128, rng) for i in range(24)]
    path = plots.save(plots.image_grid(slices, CLASS_NAMES * 6, "A wide grid", ncols=12), tmp_path / "grid.png")
    drawn = Image.open(path)
    assert drawn.width > MAX_DENSITY * CONTENT_WIDTH  # 12 columns: 3240 pixels
    figure = embedded(path, photo=True)
    kind, image = decoded(figure)
    assert kind == "image/jpeg" and figure["width"] == CONTENT_WIDTH and figure["alt"] == "grid.png"
    assert image.width == MAX_DENSITY * CONTENT_WIDTH
    assert abs(image.height / image.width - drawn.height / drawn.width) < 0.01  # scaled, not cropped or stretched


def test_a_plot_is_a_png_of_its_own_width_that_looks_the_same(tmp_path):
    counts = {"train": dict.fromkeys(CLASS_NAMES, 30), "val": dict.fromkeys(CLASS_NAMES, 8)}
    path = plots.save(plots.class_counts(counts), tmp_path / "counts.png")
    figure = embedded(path, photo=False)
    kind, image = decoded(figure)
    drawn = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
    assert kind == "image/png" and image.width == figure["width"] == drawn.shape[1] <= CONTENT_WIDTH
    difference = np.abs(np.asarray(image.convert("RGB"), dtype=np.int16) - drawn)
    assert difference.mean() < 0.5 and (difference.max(axis=2) > 48).mean() < 0.001  # a few anti-aliased pixels


def test_a_transparent_figure_is_shown_on_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (200, 100), (0, 0, 0, 0)).save(path)
    _, image = decoded(embedded(path, photo=True))
    assert np.asarray(image.convert("RGB")).min() > 240
