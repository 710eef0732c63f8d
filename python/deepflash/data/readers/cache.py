"""Shards read before, kept in memory for the next fit of the same materialized data.

Materialized data is written once under its content's fingerprint and never rewritten in place
(:mod:`deepflash.data.materialize`), so a shard read again finds the same rows. A second fit on the
driver (``backend="local"``) or a search trial in the same process takes them from here instead
of decoding the Parquet again. An entry is found only while the files of its shard are the ones it
was read from: the same row groups, sizes and modification times.

``DEEPFLASH_SHARD_CACHE_MB`` bounds it (least recently used first out; a shard larger than the bound
is not kept). Its default is 1024 in a driver and 0 (off) inside a Spark task, where a Python
worker's memory counts against the executor's overhead.

Worker code imports it: it imports neither Spark nor the estimator.
"""
from __future__ import annotations

import os
import sys
import threading
from collections import OrderedDict

CACHE_MB_ENV = "DEEPFLASH_SHARD_CACHE_MB"
DRIVER_DEFAULT_MB = 1024


def _in_spark_task() -> bool:
    taskcontext = sys.modules.get("pyspark.taskcontext")
    return taskcontext is not None and taskcontext.TaskContext.get() is not None


def capacity_bytes() -> int:
    """The bound in bytes, from ``DEEPFLASH_SHARD_CACHE_MB`` or the default where this runs."""
    raw = os.environ.get(CACHE_MB_ENV, "").strip()
    if not raw:
        return 0 if _in_spark_task() else DRIVER_DEFAULT_MB << 20
    try:
        megabytes = float(raw)
    except ValueError:
        raise ValueError(f"{CACHE_MB_ENV} must be a number of megabytes (0 turns the cache off), "
                         f"found {raw!r}") from None
    return max(0, int(megabytes * (1 << 20)))


class ShardCache:
    """Shards by key (the reader, the dataset, the shard and its files' stamps), bounded in bytes."""

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple, tuple[object, int]] = OrderedDict()  # key -> (shard, bytes)
        self._lock = threading.Lock()

    def get(self, key: tuple):
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: tuple, shard, limit: int) -> None:
        """Keeps ``shard`` (its arrays made read-only) if it fits in ``limit`` bytes, dropping the
        least recently used shards until all fit."""
        arrays = [a for a in (shard.features, shard.labels, shard.weights) if a is not None]
        nbytes = sum(a.nbytes for a in arrays)
        if nbytes > limit:
            return
        for a in arrays:
            a.flags.writeable = False  # a reader of the cached arrays must not change them
        with self._lock:
            self._entries[key] = (shard, nbytes)
            self._entries.move_to_end(key)
            while sum(size for _, size in self._entries.values()) > limit:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


SHARDS = ShardCache()
