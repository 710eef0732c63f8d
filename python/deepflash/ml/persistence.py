"""Writers and readers for stages that carry a Keras model.

A stage directory holds Spark's DefaultParams metadata (all Params, as JSON) and, when the stage
has a Keras model, ``keras/model.keras`` in Keras's own format. Loading uses Keras's safe mode, so
no Python code stored in a model file runs at load time.
"""
from __future__ import annotations

from pyspark.ml.util import DefaultParamsReader, DefaultParamsWriter, MLReader, MLWriter

from deepflash.io import fs
from deepflash.io.keras_files import model_from_bytes

MODEL_FILE = ("keras", "model.keras")


class KerasStageWriter(MLWriter):
    """Saves Params metadata, then the stage's Keras model bytes (if any) next to it."""

    def __init__(self, instance):
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        DefaultParamsWriter.saveMetadata(self.instance, path, self.sc)
        data = self.instance._keras_bytes()
        if data is not None:
            # Qualified as Spark qualified the metadata path above, so both land in one directory.
            fs.write_bytes(fs.join(fs.qualify(path, self.sc._jsc.hadoopConfiguration()), *MODEL_FILE), data)


def load_params_instance(cls, path: str, sc):
    """A new ``cls()`` with the Params and uid saved at ``path`` by DefaultParamsWriter."""
    metadata = DefaultParamsReader.loadMetadata(path, sc)
    instance = cls()
    DefaultParamsReader.getAndSetParams(instance, metadata)
    instance._resetUid(metadata["uid"])
    return instance


class KerasStageReader(MLReader):
    """Loads a stage written by :class:`KerasStageWriter`."""

    def __init__(self, cls):
        super().__init__()
        self.cls = cls

    def load(self, path: str):
        instance = load_params_instance(self.cls, path, self.sc)
        model_path = fs.join(fs.qualify(path, self.sc._jsc.hadoopConfiguration()), *MODEL_FILE)
        if fs.exists(model_path):
            data = fs.read_bytes(model_path)
            # Deserialized now, in safe mode, so a bad or unsafe file fails at load, not at transform.
            instance._set_keras_bytes(data, model_from_bytes(data))
        return instance


class StateStageWriter(MLWriter):
    """Saves Params metadata, then the stage's non-JSON state, ``instance._state_bytes()``, at
    ``<path>/<file...>`` (skipped when it is None), atomically through :func:`deepflash.io.fs.write_bytes`."""

    def __init__(self, instance, file: tuple[str, ...]):
        super().__init__()
        self.instance = instance
        self.file = file

    def saveImpl(self, path: str) -> None:
        DefaultParamsWriter.saveMetadata(self.instance, path, self.sc)
        data = self.instance._state_bytes()
        if data is not None:
            fs.write_bytes(fs.join(fs.qualify(path, self.sc._jsc.hadoopConfiguration()), *self.file), data)


class StateStageReader(MLReader):
    """Loads a stage written by :class:`StateStageWriter`: Params, then ``_set_state_bytes`` (which
    should decode the bytes, so a bad file fails at load rather than at transform)."""

    def __init__(self, cls, file: tuple[str, ...]):
        super().__init__()
        self.cls = cls
        self.file = file

    def load(self, path: str):
        instance = load_params_instance(self.cls, path, self.sc)
        state_path = fs.join(fs.qualify(path, self.sc._jsc.hadoopConfiguration()), *self.file)
        if fs.exists(state_path):
            instance._set_state_bytes(fs.read_bytes(state_path))
        return instance
