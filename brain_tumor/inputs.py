"""tf.data input pipelines over images decoded once: shuffle indices, gather a batch (from memory, or read from the
run's pixel file on disk, so memory stays flat as the dataset grows), augment."""

from __future__ import annotations

import contextlib
import ctypes
import os

import numpy as np
import tensorflow as tf

from .pixels import as_rows

PREFETCH = 2
PARALLEL = max(2, os.cpu_count() or 1)


def fixed_mmap_threshold() -> None:
    """glibc raises its mmap threshold each time a large block is freed, so the batches a training allocates and
    frees (6 MB each at 128 px) end up on a heap that only grows: +130 MB over 3,200 images, measured. A fixed
    threshold (which also turns that adjustment off) keeps them mapped and returned: memory stays flat."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD


fixed_mmap_threshold()


def make_dataset(pixels, labels: np.ndarray, num_classes: int, batch_size: int, shuffle: bool = False,
                 seed: int = 0, augmentation=None) -> tf.data.Dataset:
    """Batches of (float32 pixels in [0, 255], one-hot labels) from an array, or from Rows of an array or a pixel file.

    Decoding happened once (data.scan); shuffling moves indices, not images, so an epoch costs a gather: from memory,
    or batch by batch from disk. `augmentation`, when given, runs here on the CPU in parallel with training.
    """
    rows = as_rows(pixels)
    targets = tf.one_hot(tf.constant(labels, tf.int32), num_classes)
    indices = tf.data.Dataset.range(len(rows))
    if shuffle:
        indices = indices.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    if isinstance(rows.source, np.ndarray):
        images = tf.constant(rows[:])

        def gather(idx):
            return tf.gather(images, idx)
    else:
        def gather(idx):
            batch = tf.numpy_function(lambda i: rows[np.asarray(i)], [idx], tf.uint8, stateful=False)
            return tf.ensure_shape(batch, (None, *rows.shape[1:]))
    batches = indices.batch(batch_size).map(lambda idx: (tf.cast(gather(idx), tf.float32), tf.gather(targets, idx)),
                                            num_parallel_calls=PARALLEL)
    if augmentation is not None:
        batches = batches.map(lambda x, y: (augmentation(x, training=True), y), num_parallel_calls=PARALLEL)
    # A fixed look-ahead: tf.data's autotuning grows its buffers the longer an epoch runs (up to half the RAM), so
    # memory would grow with the dataset; two batches ahead keep the training step fed.
    return batches.prefetch(PREFETCH)
