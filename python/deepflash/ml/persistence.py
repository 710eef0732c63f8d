"""Saving and loading stages that hold state beyond their Params: one writer and one reader for all.

A stage directory holds Spark's DefaultParams metadata (all Params, as JSON) and, when the stage
has any, its state as one file at ``<path>/<file...>``: ``keras/model.keras`` (Keras's own format)
for KerasEstimator and KerasModel, ``ran/network.npz`` for RANModel. A stage takes part by being a
:class:`BinaryState`: it gives its state as bytes and takes them back, decoding them at once so a
bad file fails at load rather than at transform.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from pyspark.ml.util import DefaultParamsReader, DefaultParamsWriter, MLReader, MLWriter

from deepflash.io import fs

# Where KerasEstimator and KerasModel keep their Keras model, under the stage directory.
MODEL_FILE = ("keras", "model.keras")


@runtime_checkable
class BinaryState(Protocol):
    """A stage whose state beyond its Params is one blob of bytes."""

    def stateBytes(self) -> bytes | None:
        """The state to save, or None when there is none (nothing is written)."""

    def setStateBytes(self, data: bytes) -> None:
        """Takes back what :meth:`stateBytes` gave; raises if ``data`` cannot be decoded."""


# The metadata key that records the state file a stage was saved with.
STATE_KEY = "deepflashStateFile"


def load_params_instance(cls, path: str, spark, metadata: dict | None = None):
    """A new ``cls()`` with the Params and uid saved at ``path`` by DefaultParamsWriter.

    ``spark`` is the SparkSession (classic or Connect) that reads the metadata through the DataFrame
    API; ``metadata``, when already read, is used as it is.
    """
    if metadata is None:
        metadata = DefaultParamsReader.loadMetadata(path, spark)
    instance = cls()
    DefaultParamsReader.getAndSetParams(instance, metadata)
    instance._resetUid(metadata["uid"])
    return instance


class StageWriter(MLWriter):
    """Saves a :class:`BinaryState` stage: its state bytes (if any) at ``<path>/<file...>``,
    atomically through :func:`deepflash.io.fs.write_bytes`, then the Params metadata, which records
    that the state file belongs to the stage."""

    def __init__(self, instance: BinaryState, file: tuple[str, ...]):
        super().__init__()
        self.instance = instance
        self.file = file

    def saveImpl(self, path: str) -> None:
        # The session, not its SparkContext: the metadata goes through the DataFrame API, which
        # works on classic and Connect sessions alike.
        spark = self.sparkSession
        # One qualified path for Spark's metadata writer and ours, so both land in one directory
        # (a relative path: under this process's working directory, not the JVM's).
        path = fs.qualify(path, spark)
        data = self.instance.stateBytes()
        if data is not None:
            fs.write_bytes(fs.join(path, *self.file), data)
        extra = {STATE_KEY: "/".join(self.file)} if data is not None else None
        DefaultParamsWriter.saveMetadata(self.instance, path, spark, extraMetadata=extra)


class StageReader(MLReader):
    """Loads a stage written by :class:`StageWriter`: its Params, then ``setStateBytes`` with the
    state file's bytes when there is one. A state file that the metadata records but that is gone
    fails the load, naming it."""

    def __init__(self, cls: type, file: tuple[str, ...]):
        super().__init__()
        self.cls = cls
        self.file = file

    def load(self, path: str):
        spark = self.sparkSession
        path = fs.qualify(path, spark)
        metadata = DefaultParamsReader.loadMetadata(path, spark)
        instance = load_params_instance(self.cls, path, spark, metadata)
        state_path = fs.join(path, *self.file)
        if fs.exists(state_path):
            instance.setStateBytes(fs.read_bytes(state_path))
        elif metadata.get(STATE_KEY):
            raise FileNotFoundError(f"{self.cls.__name__} at {path} was saved with {metadata[STATE_KEY]}, which is "
                                    f"missing ({state_path}): the stage directory is incomplete; save the stage again")
        return instance
