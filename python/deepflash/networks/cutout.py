"""Cutout (DeVries & Taylor, 2017) as a registered, serializable Keras layer.

Imported by :mod:`deepflash.keras_io` before any model is loaded, so that a saved model holding
it loads in safe mode (a registered class is not code from the file).
"""
from __future__ import annotations

import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="deepflash")
class Cutout(tf.keras.layers.Layer):
    """Zeroes one random ``size`` x ``size`` patch of every image in training; identity otherwise.

    The patch lies wholly inside the image (its top-left corner is uniform over the positions
    where it fits), in every channel. Inputs are ``(batch, height, width, channels)``.

    Args:
        size: side of the square patch, at most the image's smaller side.
        seed: seeds the patch positions.

    Example:
        >>> Cutout(8)(images, training=True)
    """

    def __init__(self, size: int, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.size = int(size)
        self.seed = seed

    def call(self, inputs, training=None):
        if not training:
            return inputs
        shape = tf.shape(inputs)
        batch, height, width = shape[0], shape[1], shape[2]
        top = tf.random.uniform((batch, 1, 1), 0, height - self.size + 1, dtype=tf.int32, seed=self.seed)
        left = tf.random.uniform((batch, 1, 1), 0, width - self.size + 1, dtype=tf.int32,
                                 seed=None if self.seed is None else self.seed + 1)
        rows = tf.range(height)[None, :, None]
        cols = tf.range(width)[None, None, :]
        patch = (rows >= top) & (rows < top + self.size) & (cols >= left) & (cols < left + self.size)
        return inputs * tf.cast(~patch, inputs.dtype)[..., None]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "size": self.size, "seed": self.seed}
