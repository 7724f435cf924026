"""Decoding one image file: any size and mode in, RGB uint8 at the model's size out, plus its perceptual hash."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

# What a file can fail with while being opened and fully decoded; each becomes a counted skip, never a crash.
DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


@dataclass(frozen=True)
class DecodedImage:
    pixels: np.ndarray  # (size, size, 3) uint8
    phash: str  # 64-bit perceptual hash, 16 hex digits
    sha256: str  # of the file's bytes
    original_size: tuple[int, int]  # (width, height)
    mode: str  # the file's PIL mode, e.g. "RGB", "L", "I;16"


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB. Transparency is flattened onto black (MRI background); 16-bit and float images are
    windowed to their own min..max, the usual display of a medical image whose range is not 0..65535."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float32)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
        return Image.fromarray(scaled.round().astype(np.uint8), "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def head_box(rgb: Image.Image, margin: float = 0.03) -> tuple[int, int, int, int]:
    """The square (left, top, right, bottom) around the head: the bounding box of the largest connected region
    brighter than a tenth of the image's maximum (so a caption or a stray bright pixel does not count), widened by
    `margin` and made square about its centre. The whole image when nothing is found."""
    grey = np.asarray(rgb.convert("L"), dtype=np.float32)
    width, height = rgb.size
    regions, count = ndimage.label(grey > 0.1 * grey.max()) if grey.max() > 0 else (None, 0)
    if not count:
        return 0, 0, width, height
    largest = 1 + int(np.argmax(ndimage.sum_labels(np.ones_like(grey), regions, range(1, count + 1))))
    rows, cols = ndimage.find_objects((regions == largest).astype(np.int32))[0]
    side = max(rows.stop - rows.start, cols.stop - cols.start) * (1 + 2 * margin)
    cy, cx = (rows.start + rows.stop) / 2, (cols.start + cols.stop) / 2
    return round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2)


def decode_image(path: str | Path, image_size: int, crop: bool = False) -> DecodedImage:
    """Open, fully decode and resize one file; with `crop`, to the head's bounding box first (outside the image is
    black). Raises one of DECODE_ERRORS for anything that is not a whole image."""
    data = Path(path).read_bytes()
    if not data:
        raise ValueError("empty file (0 bytes)")
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # forces the full decode: truncated files fail here, not later in training
        mode, original_size = image.mode, image.size
        rgb = to_rgb(image)
    phash = str(imagehash.phash(rgb))  # of the whole image, whatever the crop: the split does not depend on it
    if crop:
        rgb = rgb.crop(head_box(rgb))
    resized = rgb.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return DecodedImage(
        pixels=np.asarray(resized, dtype=np.uint8),
        phash=phash,
        sha256=hashlib.sha256(data).hexdigest(),
        original_size=original_size,
        mode=mode,
    )

