"""The few places where Keras 2 (``tf.keras`` on TF <= 2.15, the classic profile) and Keras 3
(TF >= 2.16, the modern profile) differ, behind one small seam. Everything else in deepflash uses
APIs that exist in both.

Worker-safe: imported by the training processes and by the model's transform.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Any


@functools.lru_cache(maxsize=1)
def keras_version() -> str:
    """The version of the Keras behind ``tf.keras``, e.g. ``2.15.0`` or ``3.15.1``."""
    import tensorflow as tf

    version = getattr(tf.keras, "__version__", None)
    if version is None:  # TF <= 2.15: tf.keras is the keras 2 package, which has the version
        import keras

        version = keras.__version__
    return str(version)


def keras_major() -> int:
    """2 or 3: the major version of the Keras behind ``tf.keras``."""
    return int(keras_version().split(".")[0])


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


def prepare_distributed_fit(model: Any) -> None:
    """Lets Keras 3 start ``fit`` on a model created under ``MultiWorkerMirroredStrategy``.

    At the start of ``fit`` Keras 3 "symbolically builds" a model that recorded a strategy, reducing
    the first batch ``(x, y)`` across replicas with ``strategy.reduce("MEAN", ...)``, which the
    multi-worker strategy cannot do for a tuple ("Attempt to convert a value (PerReplica ...) to a
    Tensor"; checked on Keras 3.15.1 with TensorFlow 2.21, the family of keras-team/keras#20585).
    Forgetting the recorded strategy defers the build to the first traced step, as without a
    strategy; the steps still run under the enclosing ``scope()``'s strategy, which
    ``distribute_strategy`` falls back to, so the gradients are still all-reduced. Keras 2 needs
    nothing.
    """
    if keras_major() >= 3:
        model._distribute_strategy = None


@contextlib.contextmanager
def multi_worker_steps():
    """The context ``fit``/``evaluate`` run in under ``MultiWorkerMirroredStrategy``.

    Keras 3 reduces every step's metric values across workers with
    ``strategy.reduce("MEAN", value, axis=0)``, which fails on the scalar metrics ("Invalid
    reduction dimension 0 for input with 0 dimensions"; Keras 3.15.1, TensorFlow 2.21). Inside this
    context Keras takes its single-worker path instead, which returns this process's own values
    (one replica per process); the caller then averages them across processes
    (:class:`~deepflash.worker.sync.AverageMetrics`, :class:`~deepflash.worker.sync.ShardedValidation`),
    as it does for Horovod. It patches one private Keras function for the duration and only in the
    training process of a ``barrier`` rank; Keras 2 reports combined metrics and is left alone
    (see :func:`distributed_metrics_are_global`).
    """
    if keras_major() < 3:
        yield
        return
    from keras.src.backend.tensorflow import trainer

    original = trainer._collective_all_reduce_multi_worker
    trainer._collective_all_reduce_multi_worker = lambda strategy: False
    try:
        yield
    finally:
        trainer._collective_all_reduce_multi_worker = original


def distributed_metrics_are_global() -> bool:
    """Whether a model trained under ``MultiWorkerMirroredStrategy`` reports metrics already combined
    over all processes (Keras 2: its metric states are all-reduced on read), rather than each
    process's own (Keras 3 inside :func:`multi_worker_steps`)."""
    return keras_major() < 3
