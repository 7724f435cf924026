"""Decoding one image file: any size and mode in, RGB uint8 at the model's size out, plus its perceptual hash."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, UnidentifiedImageError

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


def decode_image(path: str | Path, image_size: int) -> DecodedImage:
    """Open, fully decode and resize one file. Raises one of DECODE_ERRORS for anything that is not a whole image."""
    data = Path(path).read_bytes()
    if not data:
        raise ValueError("empty file (0 bytes)")
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # forces the full decode: truncated files fail here, not later in training
        mode, original_size = image.mode, image.size
        rgb = to_rgb(image)
    phash = str(imagehash.phash(rgb))
    resized = rgb.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return DecodedImage(
        pixels=np.asarray(resized, dtype=np.uint8),
        phash=phash,
        sha256=hashlib.sha256(data).hexdigest(),
        original_size=original_size,
        mode=mode,
    )

