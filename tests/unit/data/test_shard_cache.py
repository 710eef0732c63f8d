"""A shard read once is kept for the next read of the same files: the same rows without decoding
them, read-only, bounded by DEEPFLASH_SHARD_CACHE_MB, and read again when a file changes."""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deepflash.data.readers import ArrowReader
from deepflash.data.readers.cache import CACHE_MB_ENV, SHARDS, capacity_bytes
from deepflash.io import fs


def _write(root, value: float, rows: int = 12):
    x = np.full((rows, 4), value, np.float32)
    table = pa.table({"features": pa.array(list(x), type=pa.list_(pa.float32())),
                      "label": pa.array(np.arange(rows, dtype=np.float32))})
    pq.write_table(table, root / "part-00000.parquet", row_group_size=4)


class CountingReader(ArrowReader):
    def __init__(self):
        self.reads = 0

    def iter_batches(self, url, shard=0, num_shards=1, seed=None):
        self.reads += 1
        return super().iter_batches(url, shard, num_shards, seed)


def test_a_second_load_is_the_first_shard_read_only(tmp_path, monkeypatch):
    monkeypatch.delenv(CACHE_MB_ENV, raising=False)
    _write(tmp_path, 1.0)
    url, reader = fs.qualify(str(tmp_path)), CountingReader()
    first = reader.load(url, 0, 2)
    second = reader.load(url, 0, 2)
    assert reader.reads == 1 and second is first
    assert not second.features.flags.writeable and not second.labels.flags.writeable
    with pytest.raises(ValueError):
        second.features[0, 0] = 5.0
    other_shard = reader.load(url, 1, 2)
    assert reader.reads == 2 and set(other_shard.labels) == {4.0, 5.0, 6.0, 7.0}


def test_a_file_written_again_is_read_again(tmp_path, monkeypatch):
    monkeypatch.delenv(CACHE_MB_ENV, raising=False)
    _write(tmp_path, 1.0)
    url, reader = fs.qualify(str(tmp_path)), CountingReader()
    assert reader.load(url).features[0, 0] == 1.0
    _write(tmp_path, 2.0)
    os.utime(tmp_path / "part-00000.parquet", ns=(1, 1))  # even where the clock did not move
    assert reader.load(url).features[0, 0] == 2.0 and reader.reads == 2


def test_the_bound_keeps_the_most_recent_and_zero_turns_it_off(tmp_path, monkeypatch):
    roots = [tmp_path / name for name in "abc"]
    for i, root in enumerate(roots):
        root.mkdir()
        _write(root, float(i), rows=1024)  # 16 KiB of features each
    reader = CountingReader()
    monkeypatch.setenv(CACHE_MB_ENV, str(40 / 1024))  # room for two
    for root in roots:
        reader.load(fs.qualify(str(root)))
    assert len(SHARDS) == 2
    reader.load(fs.qualify(str(roots[0])))  # the oldest went first
    assert reader.reads == 4
    monkeypatch.setenv(CACHE_MB_ENV, "0")
    SHARDS.clear()
    reader.load(fs.qualify(str(roots[1])))
    reader.load(fs.qualify(str(roots[1])))
    assert reader.reads == 6 and len(SHARDS) == 0


def test_the_bound_must_be_a_number(monkeypatch):
    monkeypatch.setenv(CACHE_MB_ENV, "lots")
    with pytest.raises(ValueError, match=r"DEEPFLASH_SHARD_CACHE_MB must be a number of megabytes .* found 'lots'"):
        capacity_bytes()


def test_off_by_default_inside_a_spark_task(spark, monkeypatch):
    monkeypatch.delenv(CACHE_MB_ENV, raising=False)
    assert capacity_bytes() == 1024 << 20  # the driver
    inside = spark.sparkContext.parallelize([0], 1).map(lambda _: __import__(
        "deepflash.data.readers.cache", fromlist=["capacity_bytes"]).capacity_bytes()).collect()
    assert inside == [0]
