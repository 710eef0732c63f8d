"""The streaming read mode's shuffle buffer and the batch stream built on it."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deepflash.data.pipeline import ShuffleBuffer, stream_dataset
from deepflash.data.readers import ArrowReader, Shard
from deepflash.io import fs


def _parts(total: int, part_rows: int, weighted: bool = False) -> list[Shard]:
    """Row i has features (i, 2i), label i and weight i/10: any mix-up of columns shows."""
    parts = []
    for start in range(0, total, part_rows):
        ids = np.arange(start, min(total, start + part_rows), dtype=np.float32)
        parts.append(Shard(np.stack([ids, 2 * ids], axis=1), ids.copy(), ids / 10 if weighted else None))
    return parts


def _run(parts: list[Shard], capacity: int, batch_size: int, seed: int = 0, weighted: bool = False):
    pool = ShuffleBuffer(capacity, 2, weighted, np.random.default_rng(seed))
    out, peak = [], 0
    for part in parts:
        for rows in pool.add(part, batch_size):
            assert len(rows.labels) == batch_size  # only whole batches leave before the end
            out.append(rows)
        peak = max(peak, len(pool.labels))
        assert pool.fill <= capacity + batch_size - 1
    drained = list(pool.drain(batch_size))
    assert all(len(rows.labels) == batch_size for rows in drained[:-1]) and len(drained[-1].labels) <= batch_size
    assert pool.fill == 0
    return out + drained, peak


@pytest.mark.parametrize("capacity,batch_size,part_rows", [(0, 4, 7), (10, 4, 7), (50, 8, 13), (500, 16, 30)])
def test_every_row_leaves_once_with_its_own_columns(capacity, batch_size, part_rows, monkeypatch):
    monkeypatch.setattr(ShuffleBuffer, "SLICE_ROWS", 3)  # holes are refilled over several slices
    out, _ = _run(_parts(203, part_rows, weighted=True), capacity, batch_size, weighted=True)
    labels = np.concatenate([o.labels for o in out])
    np.testing.assert_array_equal(np.sort(labels), np.arange(203))
    feats = np.concatenate([o.features for o in out])
    np.testing.assert_array_equal(feats[:, 0], labels)
    np.testing.assert_array_equal(feats[:, 1], 2 * labels)
    np.testing.assert_array_equal(np.concatenate([o.weights for o in out]), labels / 10)


def test_the_buffer_mixes_rows_from_far_apart_and_its_memory_stays_bounded():
    out, peak = _run(_parts(2000, 100), capacity=500, batch_size=10)
    labels = np.concatenate([o.labels for o in out])
    first = labels[:100]
    # The first 100 rows out come from the first 600 read, well spread over them, not in read order.
    assert first.max() < 600 and first.max() - first.min() > 300
    assert not np.array_equal(labels, np.sort(labels))
    assert peak <= 2 * (500 + 100)  # capacity plus one row group, grown by doubling at most


def test_the_stream_is_a_function_of_the_seed():
    a = np.concatenate([o.labels for o in _run(_parts(300, 40), 100, 8, seed=1)[0]])
    b = np.concatenate([o.labels for o in _run(_parts(300, 40), 100, 8, seed=1)[0]])
    c = np.concatenate([o.labels for o in _run(_parts(300, 40), 100, 8, seed=2)[0]])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.fixture
def row_group_parquet(tmp_path):
    """300 rows in 6 row groups of 50; row i has features (i, -i) and label i."""
    ids = np.arange(300, dtype=np.float32)
    table = pa.table({"features": pa.array(list(np.stack([ids, -ids], axis=1)), type=pa.list_(pa.float32())),
                      "label": pa.array(ids)})
    pq.write_table(table, tmp_path / "part-0.parquet", row_group_size=50)
    return fs.qualify(str(tmp_path))


def _labels(ds, batches: int) -> list[np.ndarray]:
    return [y.numpy() for _, y in ds.take(batches)]


def test_stream_passes_cover_every_row_and_resume_continues_the_same_stream(row_group_parquet):
    def stream(start_batch=0):
        return stream_dataset(ArrowReader(), row_group_parquet, shard=0, num_shards=1, batch_size=32,
                              buffer_rows=64, target_encoding="raw", num_classes=0, seed=(7, 0),
                              start_batch=start_batch)

    full = _labels(stream(), 30)  # 300 rows = 9 full batches and one of 12 per pass
    assert [len(b) for b in full[:10]] == [32] * 9 + [12]
    for p in range(3):
        np.testing.assert_array_equal(np.sort(np.concatenate(full[10 * p:10 * p + 10]).ravel()), np.arange(300))
    assert not np.array_equal(np.concatenate(full[:10]), np.concatenate(full[10:20]))  # each pass reshuffles
    resumed = _labels(stream(start_batch=13), 17)
    for a, b in zip(resumed, full[13:], strict=True):
        np.testing.assert_array_equal(a, b)
