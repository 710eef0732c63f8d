"""Keras models to and from bytes in Keras's own ``.keras`` format, loaded in safe mode.

Safe mode refuses to deserialize Python lambdas, so loading a model never runs arbitrary code.
Worker-safe: imported by remote code and by the model's transform.
"""
from __future__ import annotations

import hashlib
import os
import tempfile

from deepflash.keras_compat import save_keras


def model_to_bytes(model) -> bytes:
    with tempfile.TemporaryDirectory(prefix="deepflash-") as d:
        path = os.path.join(d, "model.keras")
        save_keras(model, path)
        with open(path, "rb") as f:
            return f.read()


def model_from_bytes(data: bytes, compile: bool = False):
    import tensorflow as tf

    import deepflash.networks.image_layers  # noqa: F401  registers deepflash's own layers before loading

    with tempfile.TemporaryDirectory(prefix="deepflash-") as d:
        path = os.path.join(d, "model.keras")
        with open(path, "wb") as f:
            f.write(data)
        return tf.keras.models.load_model(path, compile=compile, safe_mode=True)


def model_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


_LOADED: dict[str, object] = {}


def cached_model(data: bytes, digest: str):
    """The model for ``data``, deserialized once per Python process (Spark reuses its workers)."""
    model = _LOADED.get(digest)
    if model is None:
        _LOADED.clear()
        model = _LOADED[digest] = model_from_bytes(data)
    return model
