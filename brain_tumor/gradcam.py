"""Grad-CAM: where in the image the model looked for a class (Selvaraju et al., 2017).

The class score's gradient with respect to the last convolutional feature maps, averaged per channel, weights those
maps; their positive sum, upsampled to the image, is the heatmap. The feature maps are the last Conv2D of a custom
CNN (its last conv block) and the output of ResNet50's last stage (conv5).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from matplotlib import colormaps
from PIL import Image

OVERLAY_ALPHA = 0.45


def target_layer_index(model) -> int:
    """Index in `model.layers` of the feature maps Grad-CAM uses: the last Conv2D, or a nested convolutional base
    (ResNet50, whose output is its last conv stage)."""
    for index in range(len(model.layers) - 1, -1, -1):
        layer = model.layers[index]
        if isinstance(layer, keras.layers.Conv2D) or (isinstance(layer, keras.Model) and len(layer.output.shape) == 4):
            return index
    raise ValueError(f"Model {model.name} has no convolutional layer for Grad-CAM.")


def explained_model(model):
    """The model whose feature maps Grad-CAM reads: the model itself, or for an ensemble (nested models that output
    probabilities, no feature maps of its own) its heaviest member, which `ensemble.build_ensemble` puts first."""
    has_maps = any(isinstance(layer, keras.layers.Conv2D) or (isinstance(layer, keras.Model)
                                                               and len(layer.output.shape) == 4)
                   for layer in model.layers)
    members = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return members[0] if not has_maps and members else model


def gradcam(model, pixels: np.ndarray, class_index: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Heatmap (H×W in [0, 1], the image's size) for one image of raw pixels (H×W×3, 0..255) and the class
    probabilities. `class_index`: the class to explain; default the predicted one. An ensemble is explained through
    its heaviest member (whose probabilities are then returned)."""
    model = explained_model(model)
    target = target_layer_index(model)
    x = tf.convert_to_tensor(pixels[None].astype(np.float32))
    with tf.GradientTape() as tape:
        h = x
        for layer in model.layers[1:target + 1]:  # layers[0] is the input
            h = layer(h, training=False)
        features = h
        tape.watch(features)
        for layer in model.layers[target + 1:]:
            h = layer(h, training=False)
        probabilities = h[0]
        chosen = int(tf.argmax(probabilities)) if class_index is None else class_index
        score = probabilities[chosen]
    gradients = tape.gradient(score, features)[0]
    weights = tf.reduce_mean(gradients, axis=(0, 1))
    cam = tf.nn.relu(tf.reduce_sum(features[0] * weights, axis=-1)).numpy()
    if cam.max() > 0:
        cam = cam / cam.max()
    size = (pixels.shape[1], pixels.shape[0])
    heatmap = np.asarray(Image.fromarray(cam.astype(np.float32)).resize(size, Image.Resampling.BILINEAR))
    return np.clip(heatmap, 0, 1), probabilities.numpy()


def overlay(pixels: np.ndarray, heatmap: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """The heatmap in the 'jet' colour map blended over the image (uint8 H×W×3)."""
    colours = colormaps["jet"](heatmap)[..., :3] * 255
    return (alpha * colours + (1 - alpha) * pixels.astype(np.float32)).clip(0, 255).astype(np.uint8)
