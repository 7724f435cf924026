"""tf.data input pipelines over images decoded once (uint8 in memory): shuffle indices, gather a batch, augment."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def make_dataset(pixels: np.ndarray, labels: np.ndarray, num_classes: int, batch_size: int, shuffle: bool = False,
                 seed: int = 0, augmentation=None) -> tf.data.Dataset:
    """Batches of (float32 pixels in [0, 255], one-hot labels).

    The decoded uint8 array is the cache (decoding happened once, in data.scan); shuffling moves indices, not images,
    so an epoch costs a gather. `augmentation`, when given, runs here on the CPU in parallel with training.
    """
    images = tf.constant(pixels)
    targets = tf.one_hot(tf.constant(labels, tf.int32), num_classes)
    indices = tf.data.Dataset.range(len(pixels))
    if shuffle:
        indices = indices.shuffle(len(pixels), seed=seed, reshuffle_each_iteration=True)
    batches = indices.batch(batch_size).map(
        lambda idx: (tf.cast(tf.gather(images, idx), tf.float32), tf.gather(targets, idx)),
        num_parallel_calls=tf.data.AUTOTUNE)
    if augmentation is not None:
        batches = batches.map(lambda x, y: (augmentation(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE)
