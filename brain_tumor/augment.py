"""Augmentation as Keras preprocessing layers, for training batches only: the seed's eight, or a light set.

The seed used Keras 2's ImageDataGenerator(rescale=1/255, rotation_range=20, width_shift_range=0.2,
height_shift_range=0.2, shear_range=0.15, zoom_range=0.2, horizontal_flip=True, brightness_range=[0.8, 1.2]).
Rescaling is not augmentation here: each model rescales its own input (see models.py), so the same layer serves
training and prediction. The other seven are below, on pixels in [0, 255], with ImageDataGenerator's "nearest" fill.

The block is an ordinary Keras model, so it runs either in tf.data (on the CPU, overlapping the training step) or as
the first layer of the training model (on the GPU, the right place when a GPU trains): see `training.py`.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops

# ImageDataGenerator's shear_range is an angle in degrees (0.15°); Keras' RandomShear takes tan(angle).
SEED_SHEAR_DEGREES = 0.15


@keras.saving.register_keras_serializable(package="brain_tumor")
class RandomBrightnessScale(layers.Layer):
    """Multiply each image by a factor drawn from [lower, upper], as ImageDataGenerator's brightness_range did
    (Keras' RandomBrightness adds an offset instead). Values stay in [0, 255]."""

    def __init__(self, lower: float = 0.8, upper: float = 1.2, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.lower, self.upper, self.seed = lower, upper, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return images
        factor = keras.random.uniform((ops.shape(images)[0], 1, 1, 1), self.lower, self.upper,
                                      seed=self.seed_generator)
        return ops.clip(images * factor, 0.0, 255.0)

    def get_config(self):
        return {**super().get_config(), "lower": self.lower, "upper": self.upper, "seed": self.seed}


def build_augmentation(strength: str = "seed", seed: int | None = None) -> keras.Sequential:
    """"seed": rotation ±20°, shifts ±20 %, shear 0.15°, zoom ±20 %, horizontal flip, brightness ×[0.8, 1.2] (the
    notebook's); "light": horizontal flip, rotation ±10°, zoom ±10 %, brightness ×[0.9, 1.1]."""
    fill = {"fill_mode": "nearest"}

    def layer_seed(offset: int) -> int | None:  # one stream per layer, so the draws are not correlated
        return None if seed is None else seed + offset

    if strength == "light":
        return keras.Sequential([
            layers.RandomFlip("horizontal", seed=layer_seed(4)),
            layers.RandomRotation(10 / 360, seed=layer_seed(0), **fill),
            layers.RandomZoom(0.1, 0.1, seed=layer_seed(3), **fill),
            RandomBrightnessScale(0.9, 1.1, seed=layer_seed(5)),
        ], name="augmentation")
    return keras.Sequential([
        layers.RandomRotation(20 / 360, seed=layer_seed(0), **fill),
        layers.RandomTranslation(0.2, 0.2, seed=layer_seed(1), **fill),
        layers.RandomShear(x_factor=math.tan(math.radians(SEED_SHEAR_DEGREES)), seed=layer_seed(2), **fill),
        layers.RandomZoom(0.2, 0.2, seed=layer_seed(3), **fill),
        layers.RandomFlip("horizontal", seed=layer_seed(4)),
        RandomBrightnessScale(0.8, 1.2, seed=layer_seed(5)),
    ], name="augmentation")
