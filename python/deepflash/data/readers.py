"""Readers turn a shard of materialized Parquet into a ``tf.data.Dataset`` on a worker.

A reader is one small class behind ``Reader.load``; new readers register under a name with
``@register`` (an Arrow-native reader for the modern stack slots in the same way). Worker code
imports this module; it never imports the estimator.
"""
from __future__ import annotations

import abc
import contextlib
import io
import logging
import warnings
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("deepflash")

READERS: dict[str, type["Reader"]] = {}


def register(name: str):
    def wrap(cls):
        READERS[name] = cls
        cls.name = name
        return cls

    return wrap


def get_reader(name: str, **options) -> "Reader":
    if name not in READERS:
        raise ValueError(f"`reader` == {name!r}, must be one of: {', '.join(sorted(READERS))}")
    return READERS[name](**options)


@dataclass
class Shard:
    """One process's slice of a dataset, as in-memory arrays."""

    features: np.ndarray   # (rows, input_dim) float32
    labels: np.ndarray     # (rows,) float32


class Reader(abc.ABC):
    name = "abstract"

    @abc.abstractmethod
    def load(self, url: str, shard: int = 0, num_shards: int = 1) -> Shard:
        """Reads shard ``shard`` of ``num_shards`` of the Parquet dataset at ``url``."""


@register("petastorm")
class PetastormReader(Reader):
    """Petastorm's ``make_batch_reader``, sharded by row group, read once into memory.

    Reading array columns through Petastorm is slow compared with a training step, so each shard is
    read once and then served from memory by ``tf.data`` for every epoch. ``workers`` sets
    Petastorm's reader pool size.
    """

    def __init__(self, workers: int = 2):
        self.workers = workers

    def load(self, url: str, shard: int = 0, num_shards: int = 1) -> Shard:
        from petastorm import make_batch_reader

        feats, labels = [], []
        # petastorm logs that our plain Parquet has no Unischema (expected) and prints on close.
        logging.getLogger("petastorm").setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            # petastorm 0.13 uses pyarrow's legacy dataset API, which warns on every call.
            warnings.simplefilter("ignore", FutureWarning)
            with make_batch_reader(url, num_epochs=1, cur_shard=shard if num_shards > 1 else None,
                                   shard_count=num_shards if num_shards > 1 else None,
                                   workers_count=self.workers, shuffle_row_groups=False) as reader:
                for batch in reader:
                    if len(batch.label):
                        feats.append(np.asarray(batch.features, dtype=np.float32))
                        labels.append(np.asarray(batch.label, dtype=np.float32))
        if not feats:
            return Shard(np.zeros((0, 0), np.float32), np.zeros((0,), np.float32))
        return Shard(np.concatenate(feats), np.concatenate(labels))


def to_dataset(shard: Shard, *, batch_size: int, target_encoding: str, num_classes: int,
               shuffle: bool, seed: int | None, repeat: bool):
    """A batched ``tf.data.Dataset`` of (features, target) from an in-memory shard."""
    import tensorflow as tf

    y = encode_targets(shard.labels, target_encoding, num_classes)
    ds = tf.data.Dataset.from_tensor_slices((shard.features, y))
    if shuffle:
        ds = ds.shuffle(min(len(shard.labels), 100_000), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def encode_targets(labels: np.ndarray, target_encoding: str, num_classes: int) -> np.ndarray:
    """``sparse``: class ids; ``onehot``: one column per class; ``raw``: float column."""
    if target_encoding == "onehot":
        out = np.zeros((len(labels), num_classes), dtype=np.float32)
        out[np.arange(len(labels)), labels.astype(np.int64)] = 1.0
        return out
    if target_encoding == "sparse":
        return labels.astype(np.int32)
    return labels.reshape(-1, 1).astype(np.float32)
