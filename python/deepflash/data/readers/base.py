"""The reader interface: ``Reader`` (a shard of materialized Parquet as numpy arrays), ``Shard`` (what
it yields), ``READERS`` (the registry, by name) and ``get_reader``.

Worker code imports it: it imports neither Spark nor the estimator.
"""
from __future__ import annotations

import abc
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from deepflash.data.readers.cache import SHARDS, capacity_bytes
from deepflash.data.readers.pieces import Piece, list_pieces, shard_pieces
from deepflash.io import fs
from deepflash.registry import Registry

log = logging.getLogger("deepflash")

# The materialized weight column (deepflash.data.schema.WEIGHT; this module must not import Spark).
WEIGHT = "weight"

READERS: Registry[Reader] = Registry("reader")
register = READERS.register


def get_reader(name: str, **options) -> Reader:
    """A new reader of the class registered as ``name``, made with ``options``."""
    return READERS.create(name, **options)


@dataclass
class Shard:
    """One process's slice of a dataset (or one row group of it), as in-memory arrays."""

    features: np.ndarray   # (rows, input_dim) float32
    labels: np.ndarray     # (rows,) float32
    weights: np.ndarray | None = None   # (rows,) float32 when the data has a weight column, else None


def _file_stamps(url: str, pieces: list[Piece]) -> tuple:
    """(path, size, modification time) of each file the pieces are in: a file written again
    after a shard was cached does not match it."""
    filesystem, _ = fs.resolve(url)
    paths = sorted({p.path for p in pieces})
    return tuple((i.path, i.size, i.mtime_ns) for i in filesystem.get_file_info(paths))


class ShortReadError(RuntimeError):
    """A reader returned other than the rows the Parquet metadata of its shard lists, twice."""


def _concat(parts: list[Shard]) -> Shard:
    weighted = parts[0].weights is not None
    return Shard(np.concatenate([p.features for p in parts]), np.concatenate([p.labels for p in parts]),
                 np.concatenate([p.weights for p in parts]) if weighted else None)


class Reader(abc.ABC):
    """Reads shard ``shard`` of ``num_shards`` of a materialized Parquet dataset.

    ``iter_batches`` streams it (one row group at a time); ``load`` reads it whole into memory.
    ``seed`` in ``iter_batches`` shuffles the order of the shard's row groups. Data materialized
    with a weight column comes back with ``weights``, in the same row order as the labels.
    """

    name = "abstract"
    # True when a shard's rows always come back in the same order (then nothing needs sorting
    # to make a seeded run repeatable).
    ordered = False

    @abc.abstractmethod
    def iter_batches(self, url: str, shard: int = 0, num_shards: int = 1,
                     seed: int | None = None) -> Iterator[Shard]:
        """Yields the shard's rows in pieces: features (rows, dim), labels (rows,) and, for
        weighted data, weights (rows,), all float32."""

    def load(self, url: str, shard: int = 0, num_shards: int = 1) -> Shard:
        """The whole shard in memory (``(0, 0)`` features when it holds no rows).

        Its rows are counted against the row counts in the Parquet metadata of the shard's files
        (Petastorm has been seen to end a read early without an error): a read that returns other
        than that many is retried once, and :class:`ShortReadError`, naming the files and both
        counts, is raised when the retry is wrong too.
        """
        pieces = shard_pieces(list_pieces(url), shard, num_shards)
        expected = sum(p.rows for p in pieces)
        limit = capacity_bytes()
        if not limit:  # the cache is off: no file stamps to take
            return self._load_verified(url, shard, num_shards, expected)
        key = (type(self).__name__, url, shard, num_shards, tuple(pieces), _file_stamps(url, pieces))
        cached = SHARDS.get(key)
        if cached is not None:
            return cached
        loaded = self._load_verified(url, shard, num_shards, expected)
        SHARDS.put(key, loaded, limit)
        return loaded

    def _load_verified(self, url: str, shard: int, num_shards: int, expected: int) -> Shard:
        loaded = self._load_once(url, shard, num_shards)
        if len(loaded.labels) == expected:
            return loaded
        log.warning("the %s reader read %d rows of shard %d/%d of %s, its Parquet metadata lists %d; reading it "
                    "again", self.name, len(loaded.labels), shard, num_shards, url, expected)
        loaded = self._load_once(url, shard, num_shards)
        if len(loaded.labels) != expected:
            raise self.short_read(url, shard, num_shards, len(loaded.labels), "twice")
        return loaded

    @staticmethod
    def expected_rows(url: str, shard: int = 0, num_shards: int = 1) -> int:
        """The rows of the shard, as the Parquet metadata of its files counts them."""
        return sum(p.rows for p in shard_pieces(list_pieces(url), shard, num_shards))

    def short_read(self, url: str, shard: int, num_shards: int, rows: int, how: str) -> ShortReadError:
        """The error for a read of ``rows`` rows that the shard's Parquet metadata does not list
        (``how``: "twice", or which streaming pass)."""
        pieces = shard_pieces(list_pieces(url), shard, num_shards)
        files = sorted({p.path for p in pieces})
        return ShortReadError(
            f"the {self.name!r} reader read {rows} rows of shard {shard} of {num_shards} of {url}, {how}, but the "
            f"Parquet metadata of its files lists {sum(p.rows for p in pieces)}: {', '.join(files)}; the data is "
            "damaged or the reader lost rows: try `reader='arrow'`, or materialize the data again")

    def _load_once(self, url: str, shard: int, num_shards: int) -> Shard:
        parts = [part for part in self.iter_batches(url, shard, num_shards) if len(part.labels)]
        if not parts:
            return Shard(np.zeros((0, 0), np.float32), np.zeros((0,), np.float32))
        return _concat(parts)
