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


def gradcams(model, images: np.ndarray, class_indices=None) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (N×H×W in [0, 1], the images' size) and class probabilities (N×C) for a batch of raw images
    (N×H×W×3, 0..255), in one forward and one backward pass. `class_indices`: the class to explain per image; default
    each one's predicted class. Each image's score depends only on its own feature maps (inference mode), so the
    batch gives the same heatmaps as one image at a time. An ensemble is explained through its heaviest member
    (whose probabilities are then returned)."""
    model = explained_model(model)
    target = target_layer_index(model)
    x = tf.convert_to_tensor(np.asarray(images, np.float32))
    with tf.GradientTape() as tape:
        h = x
        for layer in model.layers[1:target + 1]:  # layers[0] is the input
            h = layer(h, training=False)
        features = h
        tape.watch(features)
        for layer in model.layers[target + 1:]:
            h = layer(h, training=False)
        probabilities = h
        chosen = (tf.argmax(probabilities, axis=-1, output_type=tf.int32) if class_indices is None
                  else tf.constant(np.asarray(class_indices, np.int32)))
        score = tf.reduce_sum(tf.gather(probabilities, chosen, axis=1, batch_dims=1))
    gradients = tape.gradient(score, features)
    weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
    cams = tf.nn.relu(tf.reduce_sum(features * weights, axis=-1)).numpy()
    size = (x.shape[2], x.shape[1])
    heatmaps = []
    for cam in cams:
        if cam.max() > 0:
            cam = cam / cam.max()
        heatmaps.append(np.asarray(Image.fromarray(cam.astype(np.float32)).resize(size, Image.Resampling.BILINEAR)))
    return np.clip(np.stack(heatmaps), 0, 1), probabilities.numpy()


def gradcam(model, pixels: np.ndarray, class_index: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Heatmap (H×W in [0, 1], the image's size) and class probabilities for one image of raw pixels (H×W×3,
    0..255); `class_index`: the class to explain, default the predicted one (see `gradcams`)."""
    heatmaps, probabilities = gradcams(model, pixels[None], None if class_index is None else [class_index])
    return heatmaps[0], probabilities[0]


def overlay(pixels: np.ndarray, heatmap: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """The heatmap in the 'jet' colour map blended over the image (uint8 H×W×3)."""
    colours = colormaps["jet"](heatmap)[..., :3] * 255
    return (alpha * colours + (1 - alpha) * pixels.astype(np.float32)).clip(0, 255).astype(np.uint8)
