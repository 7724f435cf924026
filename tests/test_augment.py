"""The seed's augmentations as Keras layers: shapes, value ranges, training-only, usable in tf.data and in a model."""

import keras
import numpy as np
import tensorflow as tf

from brain_tumor.augment import RandomBrightnessScale, build_augmentation
from brain_tumor.inputs import make_dataset


def batch(n=8, size=32):
    return np.random.default_rng(0).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def test_shapes_and_range_are_kept_and_images_change():
    images = batch()
    out = np.asarray(build_augmentation(seed=1)(images, training=True))
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255
    assert not np.allclose(out, images)


def test_inference_leaves_images_alone():
    images = batch()
    assert np.array_equal(np.asarray(build_augmentation(seed=1)(images, training=False)), images)


def test_brightness_multiplies_within_range():
    images = np.full((64, 4, 4, 3), 100.0, np.float32)
    out = np.asarray(RandomBrightnessScale(0.8, 1.2, seed=3)(images, training=True))
    factors = out[:, 0, 0, 0] / 100.0
    assert factors.min() >= 0.8 - 1e-6 and factors.max() <= 1.2 + 1e-6
    assert factors.std() > 0.05  # one factor per image, not one per batch
    assert np.allclose(out, out[:, :1, :1, :1])  # uniform within an image: a scale, not noise


def test_the_seeds_transforms_in_order():
    # width and height shift are one RandomTranslation; rescale 1/255 is the first layer of each model
    names = [type(layer).__name__ for layer in build_augmentation().layers]
    assert names == ["RandomRotation", "RandomTranslation", "RandomShear", "RandomZoom", "RandomFlip",
                     "RandomBrightnessScale"]


def test_augmentation_runs_in_tf_data():
    pixels = batch(10).astype(np.uint8)
    dataset = make_dataset(pixels, np.arange(10) % 4, 4, batch_size=4, shuffle=True, seed=0,
                           augmentation=build_augmentation(seed=0))
    shapes = [(x.shape, y.shape) for x, y in dataset]
    assert shapes == [((4, 32, 32, 3), (4, 4))] * 2 + [((2, 32, 32, 3), (2, 4))]
    x, _ = next(iter(dataset))
    assert x.dtype == tf.float32 and float(tf.reduce_max(x)) <= 255


def test_augmentation_runs_inside_a_model():
    model = keras.Sequential([keras.Input((32, 32, 3)), build_augmentation(seed=0), keras.layers.Flatten()])
    assert model(batch(2), training=True).shape == (2, 32 * 32 * 3)


def test_input_pipeline_keeps_every_image_once_per_epoch():
    pixels = np.arange(7, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    dataset = make_dataset(pixels, np.arange(7) % 2, 2, batch_size=3, shuffle=True, seed=5)
    for _ in range(2):
        seen = np.concatenate([x.numpy()[:, 0, 0, 0] for x, _ in dataset])
        assert sorted(seen.tolist()) == list(range(7))
