"""Every reader's ``load`` counts the rows it read against the Parquet metadata of its shard: a
short read is retried once, and one that stays short raises naming the files and both counts."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deepflash.data.readers import ArrowReader, Shard, ShortReadError
from deepflash.io import fs


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """3 files of 10 rows, two row groups each."""
    root = tmp_path_factory.mktemp("counted")
    for f in range(3):
        x = np.full((10, 2), f, np.float32)
        table = pa.table({"features": pa.array(list(x), type=pa.list_(pa.float32())),
                          "label": pa.array(np.arange(10 * f, 10 * f + 10, dtype=np.float32))})
        pq.write_table(table, root / f"part-{f:05d}.parquet", row_group_size=5)
    return fs.qualify(str(root))


class DroppingReader(ArrowReader):
    """The Arrow reader, losing the last row group of the shard on its first ``lossy_reads`` reads
    (as Petastorm does now and then)."""

    def __init__(self, lossy_reads: int):
        self.lossy_reads, self.reads = lossy_reads, 0

    def iter_batches(self, url, shard=0, num_shards=1, seed=None):
        batches = list(super().iter_batches(url, shard, num_shards, seed))
        self.reads += 1
        return iter(batches[:-1] if self.reads <= self.lossy_reads else batches)


def test_a_short_read_is_read_again(dataset):
    reader = DroppingReader(lossy_reads=1)
    shard = reader.load(dataset, 1, 2)
    assert reader.reads == 2
    np.testing.assert_array_equal(shard.labels, ArrowReader().load(dataset, 1, 2).labels)
    assert len(shard.labels) == 15  # row groups 1, 3, 5 of 6


def test_a_read_short_twice_names_the_files_and_both_counts(dataset):
    with pytest.raises(ShortReadError, match=r"^the 'arrow' reader read 10 rows of shard 1 of 2 of .*counted\S*, "
                                             r"twice, but the Parquet metadata of its files lists 15: "
                                             r".*part-00000\.parquet, .*part-00001\.parquet, .*part-00002\.parquet"):
        DroppingReader(lossy_reads=2).load(dataset, 1, 2)


def test_rows_beyond_the_metadata_count_too(dataset, monkeypatch):
    extra = Shard(np.zeros((1, 2), np.float32), np.zeros((1,), np.float32))
    original = ArrowReader.iter_batches
    monkeypatch.setattr(ArrowReader, "iter_batches", lambda self, *a, **k: iter([*original(self, *a, **k), extra]))
    with pytest.raises(ShortReadError, match=r"read 31 rows of shard 0 of 1 .* lists 30"):
        ArrowReader().load(dataset)


def test_a_streaming_pass_that_comes_up_short_stops_the_stream_naming_the_pass(dataset):
    """A stream cannot read a pass again without changing it: the short pass raises at its end."""
    import tensorflow as tf

    from deepflash.data.pipeline import stream_dataset

    def stream(reader):
        return stream_dataset(reader, dataset, shard=1, num_shards=2, batch_size=4, buffer_rows=2,
                              target_encoding="raw", num_classes=0, seed=3)

    # 15 rows a pass: 4 batches; two passes read whole
    assert sum(len(y) for _, y in stream(ArrowReader()).take(8)) == 30
    # the sample read and pass 1 lose a row group, pass 2 reads whole: pass 1 has let batches
    # out of its 2-row buffer, so it cannot be read again unchanged, and fails
    with pytest.raises(tf.errors.OpError, match=r"ShortReadError: .*read 10 rows of shard 1 of 2 .*, in streaming "
                                                r"pass 1, but the Parquet metadata of its files lists 15"):
        list(stream(DroppingReader(lossy_reads=2)).take(8))


def test_a_short_streaming_pass_that_let_no_batch_out_is_read_again_and_the_stream_is_unchanged(dataset):
    from deepflash.data.pipeline import PASS_ATTEMPTS, stream_dataset

    def stream(reader):
        # a buffer larger than the shard: every batch of a pass leaves at its end
        ds = stream_dataset(reader, dataset, shard=1, num_shards=2, batch_size=4, buffer_rows=100,
                            target_encoding="raw", num_classes=0, seed=3)
        return [y.numpy().ravel().tolist() for _, y in ds.take(8)]

    # the sample read and the first read of pass 1 lose a row group
    assert stream(DroppingReader(lossy_reads=2)) == stream(ArrowReader())
    with pytest.raises(Exception, match=rf"ShortReadError: .*read 10 rows .*in streaming pass 1, {PASS_ATTEMPTS} "
                                        "times"):
        stream(DroppingReader(lossy_reads=PASS_ATTEMPTS + 1))
