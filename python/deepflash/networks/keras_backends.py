"""Which framework Keras runs on: TensorFlow, PyTorch or JAX (Keras 3), the ``kerasBackend`` Param.

Keras 3 picks its backend once per process, from ``KERAS_BACKEND`` when it is first imported. So a
process can train only on the backend it started with: the ``barrier`` backend's ranks are fresh
processes and take any backend; a ``local`` fit that asks for another backend than the driver's
trains in one child process (:mod:`deepflash.backends.local`); scoring takes the backend of the
executor's Python worker (:func:`prefer_backend`). Keras 2 (the classic profile) runs on TensorFlow
only. A model moves between backends as a ``.keras`` file, which every backend loads.

Worker-safe: nothing here imports the estimator.
"""
from __future__ import annotations

import logging
import os
import sys

from deepflash.requirements import JAX_BACKEND, TORCH_BACKEND, MissingDependencyError

log = logging.getLogger("deepflash")

KERAS_BACKENDS = ("tensorflow", "torch", "jax")
# What PyTorch and JAX need besides Keras 3 (TensorFlow is required by every fit).
FRAMEWORKS = {"torch": TORCH_BACKEND, "jax": JAX_BACKEND}


def running_backend() -> str:
    """The backend Keras runs on in this process (importing Keras if it is not yet)."""
    from deepflash.networks.keras_compat import keras_major

    if keras_major() == 2:
        return "tensorflow"
    import keras

    return str(keras.backend.backend())


def loaded_backend() -> str | None:
    """The backend of a Keras 3 already imported in this process, or None when Keras is not imported
    yet (so ``KERAS_BACKEND`` still chooses it)."""
    keras = sys.modules.get("keras")
    backend = getattr(keras, "backend", None) if keras is not None else None
    if backend is None or not hasattr(backend, "backend"):
        return None
    return str(backend.backend())


def foreign(value: str | None) -> bool:
    """True when ``value`` (a ``kerasBackend``) names another framework than this process's, so
    that training on it needs a child process."""
    return bool(value) and value != running_backend()


def resolve(value: str | None) -> str:
    """The backend a ``kerasBackend`` value names: itself, or the driver's when unset."""
    return value if value else running_backend()


def check(value: str | None, backend: str) -> str:
    """Raises before any Spark job when ``kerasBackend`` cannot train here; returns the backend.

    Args:
        value: the ``kerasBackend`` Param (None: the driver's).
        backend: the ``backend`` Param (horovod, barrier, local).
    """
    from deepflash.networks.keras_compat import keras_major, keras_version

    chosen = resolve(value)
    if chosen not in KERAS_BACKENDS:
        raise ValueError(f"`kerasBackend` == {chosen!r}, must be one of: {', '.join(KERAS_BACKENDS)}")
    if chosen == "tensorflow":
        return chosen
    if keras_major() == 2:
        raise ValueError(f"`kerasBackend` == {chosen!r} needs Keras 3 (the modern profile), but this Python runs "
                         f"Keras {keras_version()} (tf.keras), which trains on TensorFlow only: use "
                         "kerasBackend='tensorflow', or install Keras >= 3")
    if backend == "horovod":
        raise ValueError(f"`kerasBackend` == {chosen!r} cannot train with backend='horovod', whose "
                         "DistributedOptimizer wraps TensorFlow optimizers only: use backend='barrier'")
    requirement = FRAMEWORKS[chosen]
    if not requirement.installed():
        raise MissingDependencyError(requirement.message())
    return chosen


def child_env(chosen: str) -> dict[str, str]:
    """The variables that make a fresh Python process run Keras on ``chosen``."""
    return {"KERAS_BACKEND": chosen}


def prefer_backend(chosen: str | None) -> str:
    """Makes this process's Keras run on ``chosen`` when Keras is not imported yet; returns the
    backend it runs on. A Python worker that already runs another backend (Spark reuses its workers)
    keeps it, with one log line: the ``.keras`` model scores the same on every backend, within float
    tolerance. ``spark.executorEnv.KERAS_BACKEND`` fixes the executors' backend for good."""
    if chosen:
        loaded = loaded_backend()
        if loaded is None:
            os.environ["KERAS_BACKEND"] = chosen
        elif loaded != chosen and not _warned.get(chosen):
            _warned[chosen] = True
            log.warning("kerasBackend == %r, but this Python worker already runs Keras on %r: it scores with %r "
                        "(set spark.executorEnv.KERAS_BACKEND to choose the executors' backend)",
                        chosen, loaded, loaded)
    return loaded_backend() or os.environ.get("KERAS_BACKEND", "tensorflow")


_warned: dict[str, bool] = {}
