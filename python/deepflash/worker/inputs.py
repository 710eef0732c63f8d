"""A training process's data: its shard of the training rows (in memory or streamed) and of the
validation rows, as the datasets ``fit`` takes.

Every rank takes the same number of steps per epoch (or the allreduce of the slower one would
wait forever); the training batches are a deterministic function of ``(seed, rank)`` and their
position, so :meth:`TrainingData.train_dataset` can start the stream at any epoch and a resumed
run reads the batches the uninterrupted one would have read.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepflash.backends.base import Communicator
from deepflash.data.pipeline import stream_dataset, to_dataset
from deepflash.data.readers import Reader, Shard, get_reader
from deepflash.worker.settings import TrainSettings, choose_read_mode

# The validation batch: at least this many rows, however small batchSize is.
MIN_VALIDATION_BATCH = 1024


@dataclass(frozen=True)
class TrainingData:
    """One process's shares of the training and validation rows; made by :meth:`load`.

    Attributes:
        read_mode: ``memory`` (``train_shard`` holds the rows) or ``stream`` (``train_shard`` is None).
        steps: training steps per epoch, the same on every rank.
        validation: what ``fit`` validates on (``comm.dataset`` of this process's validation
            batches), or None without validation rows; ``validation_rows`` and
            ``validation_steps`` go with it.
        read_seconds: the time the shards took to load.
    """

    settings: TrainSettings
    comm: Communicator
    reader: Reader
    read_mode: str
    train_shard: Shard | None
    steps: int
    validation: Any
    validation_rows: int
    validation_steps: int | None
    read_seconds: float

    @classmethod
    def load(cls, settings: TrainSettings, comm: Communicator) -> TrainingData:
        """Reads this process's shards (``comm.rank`` of ``comm.size``) as ``settings`` say."""
        reader = get_reader(settings.reader)
        read_mode = choose_read_mode(settings, comm.size)
        started = time.time()
        train_shard = reader.load(settings.train_url, comm.rank, comm.size) if read_mode == "memory" else None
        train_shard = _shard_weights(train_shard, settings.weighted, settings.train_url)
        # Every rank validates on its own 1/N of the validation rows; the metrics are then combined.
        val_shard = reader.load(settings.val_url, comm.rank, comm.size) if settings.val_rows > 0 else None
        val_shard = _shard_weights(val_shard, settings.weighted, settings.val_url)
        read_seconds = time.time() - started
        validation, val_rows, val_steps = None, 0, None
        if val_shard is not None:
            val_batch = max(settings.batch_size, MIN_VALIDATION_BATCH)
            # In content order where the reader's order varies, so that the metrics do not depend on it.
            validation = comm.dataset(lambda: to_dataset(
                val_shard, batch_size=val_batch, target_encoding=settings.target_encoding,
                num_classes=settings.num_classes, shuffle=False, seed=None, repeat=False,
                canonical_order=not reader.ordered))
            val_rows = len(val_shard.labels)
            val_steps = comm.validation_steps(val_rows, val_batch)
        steps = max(1, math.ceil(settings.train_rows / (settings.batch_size * comm.size)))
        return cls(settings=settings, comm=comm, reader=reader, read_mode=read_mode, train_shard=train_shard,
                   steps=steps, validation=validation, validation_rows=val_rows, validation_steps=val_steps,
                   read_seconds=read_seconds)

    @property
    def train_rows_read(self) -> int:
        """The training rows this process holds; -1 when streamed (not counted)."""
        return int(len(self.train_shard.labels)) if self.train_shard is not None else -1

    def train_dataset(self, start_epoch: int):
        """What ``fit`` trains on from epoch ``start_epoch`` (0-based): the endless batch stream,
        started at batch ``start_epoch * steps``."""
        settings, comm = self.settings, self.comm
        seed = None if settings.seed is None else (settings.seed, comm.rank)
        start_batch = start_epoch * self.steps
        if self.read_mode == "memory":
            return comm.dataset(lambda: to_dataset(
                self.train_shard, batch_size=settings.batch_size, target_encoding=settings.target_encoding,
                num_classes=settings.num_classes, shuffle=True, seed=seed, repeat=True,
                start_batch=start_batch, canonical_order=not self.reader.ordered))
        return comm.dataset(lambda: stream_dataset(
            self.reader, settings.train_url, shard=comm.rank, num_shards=comm.size, batch_size=settings.batch_size,
            buffer_rows=settings.shuffle_buffer_rows, target_encoding=settings.target_encoding,
            num_classes=settings.num_classes, seed=seed, start_batch=start_batch))


def _shard_weights(shard: Shard | None, weighted: bool, url: str) -> Shard | None:
    """The shard as training uses it: a weighted shard that holds no rows gets an empty weight
    array, so that every rank's batches have the same structure. Raises when the data and the
    plan disagree about weights."""
    if shard is None or (shard.weights is not None) == weighted:
        return shard
    if weighted and not len(shard.labels):
        return Shard(shard.features, shard.labels, np.zeros((0,), np.float32))
    raise ValueError(f"the materialized data at {url} {'has no' if weighted else 'has a'} weight column, "
                     f"but the fit was planned {'with' if weighted else 'without'} `weightCol`; "
                     "the store holds damaged data, remove it and fit again")
