"""A Gradio app around one trained model: upload an MRI slice, see it as the model saw it (decoded, cropped if the
model was trained so, resized to its input size) beside the Grad-CAM overlay, and the four class probabilities.

Safe by default: it listens on localhost only, makes no public share link unless asked, sends no analytics, refuses
files over the size limit and non-images with a message (never a path or a stack trace).
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from .data import Skipped
from .predict import MAX_IMAGE_BYTES, decode_for_model
from .synthetic import CLASS_NAMES, phantom

DISPLAY_SIZE = 384  # the Grad-CAM overlay is shown at this size, whatever the model's input size
NOTICE = "**Research prototype — not for clinical use.** Predictions are not a diagnosis."
NOT_AN_IMAGE = ("This file is not an image the app can read. Upload a brain MRI slice as JPEG, PNG, BMP or TIFF "
                f"(at most {MAX_IMAGE_BYTES // 2**20} MB).")


def model_card_text(metadata: dict, path: Path) -> str:
    """Name, version and validation metrics, from the model file itself."""
    version = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    lines = [f"**Model:** {metadata['model_name']} (file version `{version}`, "
             f"brain-tumor-clearml {metadata.get('brain_tumor_version', '?')})",
             f"**Classes:** {', '.join(metadata['class_names'])}; input {metadata['image_size']}×"
             f"{metadata['image_size']} RGB"]
    if metadata.get("val_accuracy") is not None:
        lines.append(f"**Validation:** accuracy {metadata['val_accuracy']:.3f}, loss {metadata['val_loss']:.3f} "
                     f"(best epoch)")
    return "  \n".join(lines)


def write_examples(folder: Path, class_names: list[str], size: int = 128) -> list[str]:
    """One synthetic slice per demo class (the demo's generator), for the Examples row."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    for index, name in enumerate(CLASS_NAMES if set(class_names) == set(CLASS_NAMES) else []):
        path = folder / f"example_{name}.png"
        Image.fromarray(phantom(index, size, rng), "L").convert("RGB").save(path)
        paths.append(str(path))
    return paths


def classify(model, metadata: dict, file_path: str | None):
    """The handler: (probabilities by class, the slice as the model saw it, at its input size, and the Grad-CAM
    overlay). Bad input raises gr.Error with a plain message."""
    import gradio as gr

    from .gradcam import gradcam, overlay

    if not file_path:  # the upload was cleared
        return None, None, None
    result = decode_for_model(Path(file_path), metadata["image_size"], metadata.get("crop", False))
    if isinstance(result, Skipped):
        raise gr.Error(NOT_AN_IMAGE)
    heatmap, probabilities = gradcam(model, result)
    # Shown at DISPLAY_SIZE: the file decoded again at that size, the heatmap upsampled to it.
    display = decode_for_model(Path(file_path), DISPLAY_SIZE, metadata.get("crop", False))
    large = np.asarray(Image.fromarray(heatmap.astype(np.float32)).resize((DISPLAY_SIZE,) * 2,
                                                                          Image.Resampling.BILINEAR))
    return ({name: float(p) for name, p in zip(metadata["class_names"], probabilities)}, result,
            overlay(display, np.clip(large, 0, 1)))


def enlarged(pixels: np.ndarray) -> np.ndarray:
    """The model's input with each pixel repeated (no smoothing, nothing added) to at least DISPLAY_SIZE, so that the
    slice the model judged is shown as large as its Grad-CAM."""
    factor = max(1, math.ceil(DISPLAY_SIZE / pixels.shape[0]))
    return pixels.repeat(factor, axis=0).repeat(factor, axis=1)


def build_app(model, metadata: dict, model_path: Path, examples_dir: Path):
    import gradio as gr

    with gr.Blocks(title="Brain tumour MRI classifier", analytics_enabled=False) as app:
        gr.Markdown("# Brain tumour MRI classifier")
        gr.Markdown(NOTICE, elem_id="notice")
        gr.Markdown(model_card_text(metadata, model_path), elem_id="model-info")
        with gr.Row():
            upload = gr.File(label="MRI slice (JPEG, PNG, …)", file_types=["image"], type="filepath",
                             elem_id="upload")
            label = gr.Label(num_top_classes=len(metadata["class_names"]), label="Class probabilities",
                             elem_id="probabilities")
        with gr.Row():
            size = metadata["image_size"]
            seen = gr.Image(label=f"The slice as the model saw it ({size}×{size} pixels, enlarged)",
                            elem_id="model-input", interactive=False, height=DISPLAY_SIZE)
            heatmap = gr.Image(label="Grad-CAM: where the model looked (predicted class)", elem_id="gradcam",
                               interactive=False, height=DISPLAY_SIZE)

        def show(path):
            probabilities, pixels, overlay = classify(model, metadata, path)
            return probabilities, None if pixels is None else enlarged(pixels), overlay

        upload.change(show, inputs=upload, outputs=[label, seen, heatmap])
        examples = write_examples(examples_dir, metadata["class_names"])
        if examples:
            gr.Examples(examples=examples, inputs=upload, label="Examples (synthetic phantoms from the demo data)")
    return app


def launch(model, metadata: dict, model_path: Path, host: str = "127.0.0.1", port: int = 7860, share: bool = False,
           block: bool = True, examples_dir: Path | None = None):
    """Serve the app; returns it (with block=False the server runs in the background until app.close())."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import tempfile

    examples_dir = examples_dir or Path(tempfile.mkdtemp(prefix="brain-tumor-examples-"))
    app = build_app(model, metadata, model_path, examples_dir)
    app.queue(default_concurrency_limit=1)
    app.launch(server_name=host, server_port=port, share=share, show_error=False, max_file_size=MAX_IMAGE_BYTES,
               allowed_paths=[str(examples_dir)], prevent_thread_lock=not block, ssr_mode=False, quiet=not block)
    return app
