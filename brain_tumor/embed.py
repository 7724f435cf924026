"""Figures as report.html embeds them; the run folder keeps the PNGs the steps drew. Photo grids (MRI slices, their
Grad-CAM) become JPEG, plots PNG of at most 256 colours, and none is wider than twice the width it is shown at.

Measured on a run of the five models and the ensemble on the real Training folder (128-pixel slices): its 9 photo
grids 10.1 MB as PNG, 2.0 MB as JPEG; its 28 plots 2.2 MB as drawn, 0.8 MB quantized; report.html 16.5 MB before,
3.8 MB after."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image

CONTENT_WIDTH = 1150  # CSS pixels: the page's width (templates/report.css, body max-width)
MAX_DENSITY = 2  # image pixels per CSS pixel, at most: a HiDPI screen's
JPEG_QUALITY = 80  # photo grids: no visible change at the size they are shown
PLOT_COLOURS = 256  # plots hold a few hundred colours, mostly anti-aliasing; 256 changes no visible pixel


def shown_width(pixels: int) -> int:
    """The CSS width a figure `pixels` wide is shown at: its own width, at most the page's."""
    return min(pixels, CONTENT_WIDTH)


def embedded(path: Path, photo: bool) -> dict:
    """{"src": the figure as a data: URI, "alt": its file name, "width": the CSS width it is shown at}; `photo`: a
    grid of images (JPEG), else a plot (PNG)."""
    with Image.open(path) as opened:
        rgba = opened.convert("RGBA")
    image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    width = shown_width(image.width)
    if image.width > MAX_DENSITY * width:
        scale = MAX_DENSITY * width / image.width
        image = image.resize((MAX_DENSITY * width, round(image.height * scale)), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if photo:
        image.save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    else:
        image.quantize(PLOT_COLOURS, dither=Image.Dither.NONE).save(buffer, "PNG", optimize=True)
    return {"src": f"data:image/{'jpeg' if photo else 'png'};base64," + base64.b64encode(buffer.getvalue()).decode(),
            "alt": path.name, "width": width}
