"""Using a trained model on new images: class probabilities per file, optionally with a Grad-CAM overlay.

Images go through `images.decode_image`, the one function training used (any mode → RGB, resized to the model's
size); the rest of the preprocessing (1/255, or ResNet50's `preprocess_input`) is inside the saved model. The class
names and image size come from the model file's metadata, never from the user.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .data import Skipped, decode_or_skip
from .errors import UserError
from .models import load_model

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # a slice is well under 1 MB; bigger files are refused before decoding


def local_model_path(reference: str | Path) -> Path | None:
    """A .keras file, or a run folder's champion; None when the reference is not on this disk (e.g. a ClearML id)."""
    path = Path(reference)
    if path.is_dir():
        champion = path / "champion.keras"
        if not champion.is_file():
            raise UserError(f"{path} is a folder without champion.keras: give a run folder written by 'brain-tumor "
                            f"run' or 'demo', or a model.keras file.")
        return champion
    return path if path.is_file() else None


def load_checked(path: str | Path):
    """Load a model of ours (safe mode) and check that its output matches the class list it carries."""
    model, metadata = load_model(path)
    for key in ("class_names", "image_size", "model_name"):
        if key not in metadata:
            raise UserError(f"{path} lacks '{key}' in its metadata: not a model saved by this project.")
    outputs = model.output_shape[-1]
    if outputs != len(metadata["class_names"]):
        raise UserError(f"{path} predicts {outputs} classes but its metadata lists {len(metadata['class_names'])} "
                        f"({', '.join(metadata['class_names'])}): the file is inconsistent; re-train or re-export it.")
    if tuple(model.input_shape[1:3]) != (metadata["image_size"],) * 2:
        raise UserError(f"{path} takes {model.input_shape[1:3]} images but its metadata says "
                        f"{metadata['image_size']}: the file is inconsistent.")
    return model, metadata


def list_images(target: str | Path) -> list[Path]:
    """One file, or every file under a folder (sorted; non-images are reported per file when decoded)."""
    target = Path(target)
    if target.is_file():
        return [target]
    if target.is_dir():
        files = sorted(p for p in target.rglob("*") if p.is_file())
        if not files:
            raise UserError(f"No files in {target}.")
        return files
    raise UserError(f"Not found: {target}. Give an image file or a folder of images.")


def decode_for_model(path: Path, image_size: int, crop: bool = False):
    """Pixels for one file as training decoded it (`crop`: to the head first), or a Skipped with the reason (too
    big, hidden, not a readable image)."""
    if path.stat().st_size > MAX_IMAGE_BYTES:
        return Skipped(str(path), f"larger than {MAX_IMAGE_BYTES // 2**20} MB")
    decoded = decode_or_skip(path, image_size, crop)
    return decoded if isinstance(decoded, Skipped) else decoded.pixels


def predict_files(model, metadata: dict, paths: list[Path], gradcam_dir: Path | None = None,
                  class_name: str | None = None, batch_size: int = 32) -> tuple[pd.DataFrame, list[Skipped]]:
    """A row per readable image (file, predicted, confidence, p_<class>…) and the skipped files with reasons.
    With `gradcam_dir`, also writes <name>_gradcam.png per image (for `class_name`, default the predicted class)."""
    names = metadata["class_names"]
    if class_name is not None and class_name not in names:
        raise UserError(f"Unknown class '{class_name}'; this model's classes: {', '.join(names)}.")
    kept, pixels, skipped = [], [], []
    for path in paths:
        result = decode_for_model(path, metadata["image_size"], metadata.get("crop", False))
        if isinstance(result, Skipped):
            skipped.append(result)
        else:
            kept.append(path)
            pixels.append(result)
    columns = ["file", "predicted", "confidence", *(f"p_{n}" for n in names)]
    if not kept:
        return pd.DataFrame(columns=columns), skipped
    batch = np.stack(pixels)
    probabilities = np.concatenate([np.asarray(model.predict_on_batch(batch[i:i + batch_size].astype(np.float32)))
                                    for i in range(0, len(batch), batch_size)])
    rows = pd.DataFrame({"file": [str(p) for p in kept], "predicted": [names[i] for i in probabilities.argmax(1)],
                         "confidence": probabilities.max(1).round(4)})
    rows = rows.join(pd.DataFrame(probabilities.round(4), columns=columns[3:]))
    if gradcam_dir is not None:
        from .gradcam import gradcam, overlay

        gradcam_dir.mkdir(parents=True, exist_ok=True)
        explained = None if class_name is None else names.index(class_name)
        for path, image in zip(kept, batch):
            heatmap, _ = gradcam(model, image, explained)
            Image.fromarray(overlay(image, heatmap)).save(gradcam_dir / f"{path.stem}_gradcam.png")
    return rows, skipped
