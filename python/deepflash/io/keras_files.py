"""Keras models to and from bytes in Keras's own ``.keras`` format, loaded in safe mode.

Safe mode refuses to deserialize Python lambdas, so loading a model never runs arbitrary code.
Worker-safe: imported by the training processes and by the model's transform.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile

from deepflash.networks.keras_compat import keras_major, keras_version, save_keras


def saved_keras_version(data: bytes) -> str | None:
    """The Keras version a ``.keras`` file was saved with (its ``metadata.json``), or None."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return str(json.loads(z.read("metadata.json"))["keras_version"])
    except (zipfile.BadZipFile, KeyError, ValueError):
        return None


def check_loadable(data: bytes) -> None:
    """Raises when the model was saved by another major Keras version than this process runs.

    Keras 2 and Keras 3 record a model's classes under different modules
    (``keras.src.engine.functional`` against ``keras.src.models.functional``), and neither loads
    the other's ``.keras`` files (checked both ways between the classic and the modern profile).
    """
    saved = saved_keras_version(data)
    major = (saved or "").split(".")[0]
    if not major.isdigit() or int(major) == keras_major():
        return
    profile = {2: "the classic profile (TF 2.15)", 3: "the modern profile (TF >= 2.16)"}
    raise ValueError(
        f"this model was saved with Keras {saved}; this process runs Keras {keras_version()}, and Keras "
        f"{keras_major()} cannot load a Keras {major} model. Load it under "
        f"{profile.get(int(major), 'that Keras version')}, or fit it again under this one")


def model_to_bytes(model) -> bytes:
    with tempfile.TemporaryDirectory(prefix="deepflash-") as d:
        path = os.path.join(d, "model.keras")
        save_keras(model, path)
        with open(path, "rb") as f:
            return f.read()


def model_from_bytes(data: bytes, compile: bool = False):
    import tensorflow as tf

    import deepflash.networks.image_layers  # noqa: F401  registers deepflash's own layers before loading

    check_loadable(data)
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
