"""The few places where Keras 2 (``tf.keras`` on TF <= 2.15, the classic profile) and Keras 3
(TF >= 2.16, the modern profile) differ, behind one small seam. Everything else in deepflash uses
APIs that exist in both.

Worker-safe: imported by remote code and by the model's transform.
"""
from __future__ import annotations

import functools
from typing import Any


@functools.lru_cache(maxsize=1)
def keras_major() -> int:
    """2 or 3: the major version of the Keras behind ``tf.keras``."""
    import tensorflow as tf

    version = getattr(tf.keras, "__version__", None)
    if version is None:  # TF <= 2.15: tf.keras is the keras 2 package, which has the version
        import keras

        version = keras.__version__
    return int(str(version).split(".")[0])


def optimizer_module() -> Any:
    """Where the optimizer classes live: Keras 2's legacy optimizers (Horovod 0.28's
    ``DistributedOptimizer`` wraps them, and their state restores for resuming), or Keras 3's."""
    import tensorflow as tf

    return tf.keras.optimizers.legacy if keras_major() == 2 else tf.keras.optimizers


def is_legacy_optimizer(optimizer: Any) -> bool:
    """A Keras 2 legacy optimizer, which creates its variables in its first ``apply_gradients``."""
    if keras_major() != 2:
        return False
    import tensorflow as tf

    return isinstance(optimizer, tf.keras.optimizers.legacy.Optimizer)


def output_shape(layer_or_model: Any) -> tuple:
    """The output shape with the batch axis (a list of shapes for a layer with several outputs)."""
    if keras_major() == 2:
        return layer_or_model.output_shape
    # Keras 3: a Sequential model built from an Input has ``outputs`` but raises on ``output``.
    outputs = getattr(layer_or_model, "outputs", None)
    if outputs is None:
        outputs = layer_or_model.output
    if isinstance(outputs, (list, tuple)):
        shapes = [tuple(o.shape) for o in outputs]
        return shapes[0] if len(shapes) == 1 else shapes
    return tuple(outputs.shape)


def save_keras(model: Any, path: str) -> None:
    """Saves in Keras's own ``.keras`` format (``path`` ends in ``.keras``)."""
    if keras_major() == 2:
        model.save(path, save_format="keras")
    else:
        model.save(path)


def to_float(value: Any) -> float:
    """A scalar variable or tensor as a Python float."""
    import numpy as np

    return float(np.asarray(value.numpy() if hasattr(value, "numpy") else value))
