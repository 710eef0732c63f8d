"""The Arrow-native reader against Petastorm on the same Parquet: same rows, same order, same shards."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deepflash.data.readers import Shard
from deepflash.data.readers.arrow import ArrowReader, list_pieces, shard_pieces, table_to_arrays
from deepflash.io import fs


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """7 files of one row group each, as materialization writes them: features list<float>, label float.

    (Petastorm 0.13.1 drops rows from shards of files with several row groups: 111 of 220 rows over
    2 shards of 5 files of 2-4 row groups. The Arrow reader reads them all: see the next fixture.)"""
    root = tmp_path_factory.mktemp("parquet")
    rng = np.random.default_rng(0)
    rows, start = [], 0
    for f in range(7):
        n = 30 + 7 * f
        x = rng.normal(size=(n, 6)).astype(np.float32)
        y = np.arange(start, start + n, dtype=np.float32)  # row ids: order is checkable
        start += n
        table = pa.table({"features": pa.array(list(x), type=pa.list_(pa.float32())), "label": pa.array(y)})
        pq.write_table(table, root / f"part-{f:05d}.snappy.parquet")
        rows.append((x, y))
    (root / "_SUCCESS").write_bytes(b"")
    return fs.qualify(str(root)), np.concatenate([r[0] for r in rows]), np.concatenate([r[1] for r in rows])


@pytest.fixture(scope="module")
def multi_group(tmp_path_factory):
    """5 files of 2-4 row groups of up to 15 rows."""
    root = tmp_path_factory.mktemp("parquet-groups")
    start = 0
    for f in range(5):
        n = 30 + 7 * f
        x = np.full((n, 3), f, np.float32)
        table = pa.table({"features": pa.array(list(x), type=pa.list_(pa.float32())),
                          "label": pa.array(np.arange(start, start + n, dtype=np.float32))})
        pq.write_table(table, root / f"part-{f:05d}.parquet", row_group_size=15)
        start += n
    return fs.qualify(str(root)), start


def test_pieces_are_row_groups_in_file_order(multi_group):
    url, total = multi_group
    pieces = list_pieces(url)
    assert sum(p.rows for p in pieces) == total
    assert [(p.path, p.row_group) for p in pieces] == sorted((p.path, p.row_group) for p in pieces)
    assert len(pieces) == sum(-(-(30 + 7 * f) // 15) for f in range(5))
    shards = [ArrowReader().load(url, k, 2).labels for k in range(2)]
    np.testing.assert_array_equal(np.sort(np.concatenate(shards)), np.arange(total, dtype=np.float32))


def test_whole_dataset_in_order(dataset):
    url, x, y = dataset
    shard = ArrowReader().load(url)
    assert shard.features.dtype == np.float32 and shard.features.shape == x.shape
    np.testing.assert_array_equal(shard.labels, y)
    np.testing.assert_array_equal(shard.features, x)


def _petastorm_in_a_fresh_process(url: str, shard: int, num_shards: int, out) -> Shard:
    # iter_batches, not load: what Petastorm itself returns, before load's row-count check and retry.
    code = ("import sys, numpy as np; from deepflash.data.readers import PetastormReader; "
            "p = list(PetastormReader(workers=1).iter_batches(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))); "
            "np.savez(sys.argv[4], x=np.concatenate([b.features for b in p]), y=np.concatenate([b.labels for b in p]))")
    subprocess.run([sys.executable, "-c", code, url, str(shard), str(num_shards), str(out)], check=True,
                   capture_output=True)
    with np.load(out) as z:
        return Shard(z["x"], z["y"])


@pytest.mark.parametrize("num_shards", [1, 2, 3])
@pytest.mark.petastorm
def test_same_rows_same_order_as_petastorm(dataset, num_shards, tmp_path):
    """Petastorm 0.13.1 sometimes ends a read early (seen: 162 of 357 rows, the first four files, with
    no sharding and one worker, in about one run of ten). What it returns is always the start of the
    Arrow reader's rows, in the same order; and within eight reads it returns the whole shard (three were not
    always enough on a loaded machine)."""
    url, _, y = dataset
    seen = []
    for k in range(num_shards):
        arrow = ArrowReader().load(url, k, num_shards)
        complete = False
        for attempt in range(8):
            peta = _petastorm_in_a_fresh_process(url, k, num_shards, tmp_path / f"p{k}-{attempt}.npz")
            n = len(peta.labels)
            assert n > 0
            np.testing.assert_array_equal(arrow.labels[:n], peta.labels)
            np.testing.assert_array_equal(arrow.features[:n], peta.features)
            if n == len(arrow.labels):
                complete = True
                break
        assert complete, f"Petastorm never returned all {len(arrow.labels)} rows of shard {k}"
        seen.append(arrow.labels)
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), y)  # shards partition the rows


def test_shards_take_every_nth_piece():
    assert shard_pieces(list(range(7)), 1, 3) == [1, 4]
    assert shard_pieces(list(range(7)), 0, 1) == list(range(7))


def test_iter_batches_streams_one_row_group_at_a_time(dataset):
    url, _, y = dataset
    batches = list(ArrowReader().iter_batches(url, 0, 2))
    assert [len(b.labels) for b in batches] == [30 + 7 * f for f in (0, 2, 4, 6)]  # one batch per row group
    np.testing.assert_array_equal(np.concatenate([b.labels for b in batches]), ArrowReader().load(url, 0, 2).labels)


def test_sliced_chunks_keep_their_own_values():
    x = np.arange(24, dtype=np.float32).reshape(8, 3)
    table = pa.table({"features": pa.array(list(x), type=pa.list_(pa.float32())),
                      "label": pa.array(np.arange(8, dtype=np.float32))}).slice(3, 4)
    feats, labels = table_to_arrays(table)
    np.testing.assert_array_equal(feats, x[3:7])
    np.testing.assert_array_equal(labels, [3, 4, 5, 6])
