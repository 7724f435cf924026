"""Decoding one image file: any size and mode in, RGB uint8 at the model's size out, plus its perceptual hash and its
acquisition style (size, bands, intensity statistics of the original file: what a shortcut audit looks at)."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

# The acquisition style of a file (the order of the features), each with what it is: measured on the original image,
# decoded to RGB at full resolution; grey levels 0..255; the head is head_mask.
STYLE_FEATURES = {
    "width": "width (pixels)",
    "height": "height (pixels)",
    "aspect": "aspect ratio (width / height)",
    "bands": "bands of the file's mode (1 grey, 3 RGB, 4 RGBA)",
    "mean": "mean grey level",
    "std": "standard deviation of the grey levels",
    "foreground": "share of the pixels in the head",
    "fg_p10": "10th percentile grey level in the head",
    "fg_p50": "median grey level in the head",
    "fg_p90": "90th percentile grey level in the head",
}

# What a file can fail with while being opened and fully decoded; each becomes a counted skip, never a crash.
DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


@dataclass(frozen=True)
class DecodedImage:
    pixels: np.ndarray  # (size, size, 3) uint8
    phash: str  # 64-bit perceptual hash, 16 hex digits
    sha256: str  # of the file's bytes
    mode: str  # the file's PIL mode, e.g. "RGB", "L", "I;16"
    style: dict[str, float]  # STYLE_FEATURES of the original file (its size among them), before any crop or resize


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


def grey(image: Image.Image | np.ndarray) -> np.ndarray:
    """Grey levels (float32, 0..255) of an RGB image or an H×W×3 uint8 array, as PIL's "L" conversion weighs them."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.asarray(image, np.uint8))
    return np.asarray(image.convert("L"), dtype=np.float32)


def head_mask(grey_levels: np.ndarray) -> np.ndarray:
    """The head (H×W bool): the largest connected region brighter than a tenth of the image's maximum, so that a
    caption or a stray bright pixel does not count. All False for a black image."""
    top = float(grey_levels.max()) if grey_levels.size else 0.0
    if top <= 0:
        return np.zeros(grey_levels.shape, bool)
    regions, _ = ndimage.label(grey_levels > 0.1 * top)
    sizes = np.bincount(regions.ravel())
    sizes[0] = 0  # the background is not a region
    return regions == int(np.argmax(sizes))


def head_box(rgb: Image.Image, margin: float = 0.03, mask: np.ndarray | None = None) -> tuple[int, int, int, int]:
    """The square (left, top, right, bottom) around the head (`head_mask`, computed unless given), widened by
    `margin` and made square about its centre. The whole image when nothing is found."""
    mask = head_mask(grey(rgb)) if mask is None else mask
    width, height = rgb.size
    if not mask.any():
        return 0, 0, width, height
    rows, cols = ndimage.find_objects(mask.astype(np.int32))[0]
    side = max(rows.stop - rows.start, cols.stop - cols.start) * (1 + 2 * margin)
    cy, cx = (rows.start + rows.stop) / 2, (cols.start + cols.stop) / 2
    return round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2)


def style_of(grey_levels: np.ndarray, mask: np.ndarray, bands: int) -> dict[str, float]:
    """STYLE_FEATURES of an original image from its grey levels, its head mask and its mode's band count."""
    height, width = grey_levels.shape
    head = grey_levels[mask]
    low, middle, high = np.percentile(head, [10, 50, 90]) if head.size else (0.0, 0.0, 0.0)
    values = (width, height, width / height, bands, grey_levels.mean(), grey_levels.std(), mask.mean(), low, middle,
              high)
    return dict(zip(STYLE_FEATURES, map(float, values)))


def decode_image(path: str | Path, image_size: int, crop: bool = False) -> DecodedImage:
    """Open, fully decode and resize one file; with `crop`, to the head's bounding box first (outside the image is
    black). Raises one of DECODE_ERRORS for anything that is not a whole image."""
    data = Path(path).read_bytes()
    if not data:
        raise ValueError("empty file (0 bytes)")
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # forces the full decode: truncated files fail here, not later in training
        mode, bands = image.mode, len(image.getbands())
        rgb = to_rgb(image)
    phash = str(imagehash.phash(rgb))  # of the whole image, whatever the crop: the split does not depend on it
    levels = grey(rgb)
    mask = head_mask(levels)
    if crop:
        rgb = rgb.crop(head_box(rgb, mask=mask))
    resized = rgb.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return DecodedImage(
        pixels=np.asarray(resized, dtype=np.uint8),
        phash=phash,
        sha256=hashlib.sha256(data).hexdigest(),
        mode=mode,
        style=style_of(levels, mask, bands),
    )

