"""deepflash's own Keras layers for images: the augmentation block and Cutout (DeVries & Taylor, 2017).

Both are registered serializable classes. :mod:`deepflash.io.keras_files` imports this module before
it loads any model, so a saved model holding them loads in safe mode (a registered class is not
code from the file).
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


@tf.keras.utils.register_keras_serializable(package="deepflash")
class Augmentation(tf.keras.layers.Layer):
    """The train-time augmentation block: one Keras layer per step, identity unless ``training=True``.

    Its config is the checked step list itself (see :mod:`deepflash.networks.augmentation`), so a
    saved model rebuilds the same layers. Keras's random preprocessing layers augment when called
    without a training flag; this block reads a missing flag as inference, so ``model(x)`` does not
    augment either. ``fit`` passes ``training=True``; ``predict`` and ``evaluate`` pass False.

    Args:
        steps: checked steps, e.g. ``[{"type": "shift", "factor": 0.1}]``.
        seed: seeds the layers, ``seed + i`` for step ``i``.
    """

    def __init__(self, steps: list[dict], seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.steps = [dict(step) for step in steps]
        self.seed = seed
        self.augmenters = [_augmenter(step, None if seed is None else seed + i) for i, step in enumerate(self.steps)]

    def call(self, inputs, training=None):
        # Each layer gets the flag explicitly: left to Keras's call context, a missing flag would
        # stay missing and the layers would fall back to augmenting.
        training = False if training is None else training
        x = inputs
        for layer in self.augmenters:
            x = layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "steps": self.steps, "seed": self.seed}


def _augmenter(step: dict, seed: int | None):
    """The Keras layer for one checked step. Pixels moved in from outside the image are 0."""
    L = tf.keras.layers
    kind = step["type"]
    if kind == "rotate":
        return L.RandomRotation(step["factor"], fill_mode="constant", seed=seed)
    if kind == "zoom":
        return L.RandomZoom(step["factor"], fill_mode="constant", seed=seed)
    if kind == "shift":
        return L.RandomTranslation(step["factor"], step["factor"], fill_mode="constant", seed=seed)
    if kind == "flip":
        return L.RandomFlip(step["mode"], seed=seed)
    if kind == "cutout":
        return Cutout(step["size"], seed=seed)
    raise ValueError(f"unknown augmentation type {kind!r}")  # check_augmentation admits only the types above
