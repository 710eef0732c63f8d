"""Per-example weights (`weightCol`): the checks in the validation pass, the fingerprint, and the
weights coming back from both readers in both read modes, row for row."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deepflash.data.pipeline import stream_dataset, to_dataset
from deepflash.data.readers import ArrowReader, Shard
from deepflash.io import fs


def weight_of(row_id: np.ndarray) -> np.ndarray:
    """The weight written for each row: a function of its id, so alignment is checkable."""
    return (np.asarray(row_id) % 7 * 0.5).astype(np.float32)


# --- readers -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def weighted_parquet(tmp_path_factory):
    """5 files of one row group, laid out as materialization writes them; row i has label i, feature
    0 == i and weight weight_of(i)."""
    root = tmp_path_factory.mktemp("weighted")
    start = 0
    for f in range(5):
        n = 20 + 3 * f
        ids = np.arange(start, start + n, dtype=np.float32)
        x = np.stack([ids, -ids, np.full(n, f, np.float32)], axis=1)
        table = pa.table({"features": pa.array(list(x), type=pa.list_(pa.float32())), "label": pa.array(ids),
                          "weight": pa.array(weight_of(ids))})
        pq.write_table(table, root / f"part-{f:05d}.parquet")
        start += n
    return fs.qualify(str(root)), start


def _check_rows(x, y, w):
    """Every row's features and weight belong to its label (the row id)."""
    assert w is not None
    np.testing.assert_array_equal(x[:, 0], y)
    np.testing.assert_array_equal(w, weight_of(y))


def _read_both_modes(reader, url: str, total: int) -> dict:
    """(features, labels, weights) as training sees them: memory (load, then to_dataset, shuffled) and
    stream (stream_dataset, one full pass)."""
    shard = reader.load(url)
    memory = [tuple(t.numpy() for t in batch) for batch in
              to_dataset(shard, batch_size=16, target_encoding="raw", num_classes=0, shuffle=True, seed=4,
                         repeat=False)]
    stream, seen = [], 0
    for batch in stream_dataset(reader, url, shard=0, num_shards=1, batch_size=16, buffer_rows=20,
                                target_encoding="raw", num_classes=0, seed=(1, 0)):
        batch = tuple(t.numpy() for t in batch)
        stream.append(batch)
        seen += len(batch[1])
        if seen >= total:
            break
    out = {"loaded": (shard.features, shard.labels, shard.weights)}
    for mode, batches in (("memory", memory), ("stream", stream)):
        assert all(len(b) == 3 for b in batches), f"{mode}: batches without weights"
        out[mode] = tuple(np.concatenate([b[i] for b in batches]) for i in range(3))
    return out


def test_arrow_reader_weights_follow_their_rows(weighted_parquet):
    url, total = weighted_parquet
    reader = ArrowReader()
    parts = list(reader.iter_batches(url))
    assert all(p.weights is not None and p.weights.dtype == np.float32 for p in parts)
    got = _read_both_modes(reader, url, total)
    x, y, w = got["loaded"]
    np.testing.assert_array_equal(y, np.arange(total, dtype=np.float32))  # the column, in order
    np.testing.assert_array_equal(w, weight_of(np.arange(total)))
    for mode in ("memory", "stream"):
        x, y, w = got[mode]
        _check_rows(x, y[:, 0], w)
        np.testing.assert_array_equal(np.sort(y[:, 0]), np.arange(total, dtype=np.float32))  # every row once
    shards = [reader.load(url, k, 2) for k in range(2)]
    for s in shards:
        _check_rows(s.features, s.labels, s.weights)
    assert sum(len(s.labels) for s in shards) == total


_PETASTORM = """
import sys, numpy as np
sys.path.insert(0, sys.argv[3])
from test_weight_data import _read_both_modes
from deepflash.data.readers import PetastormReader
got = _read_both_modes(PetastormReader(workers=1), sys.argv[1], int(sys.argv[2]))
np.savez(sys.argv[4], **{f"{k}_{i}": v for k, arrays in got.items() for i, v in enumerate(arrays)})
"""


@pytest.mark.petastorm
def test_petastorm_reader_weights_follow_their_rows(weighted_parquet, tmp_path):
    """In a fresh process, as in test_arrow_reader. Petastorm sometimes ends a read early; the reader
    reads a short shard again once and raises ShortReadError when it stays short, so a process may
    fail that way (then the next attempt runs): one of eight must read every row."""
    url, total = weighted_parquet
    complete = False
    for attempt in range(8):
        out = tmp_path / f"peta-{attempt}.npz"
        run = subprocess.run([sys.executable, "-c", _PETASTORM, url, str(total), os.path.dirname(__file__), str(out)],
                             capture_output=True, text=True)
        if run.returncode != 0 and "ShortReadError" in run.stderr:
            continue
        assert run.returncode == 0, run.stderr[-3000:]
        with np.load(out) as z:
            x, y, w = z["loaded_0"], z["loaded_1"], z["loaded_2"]
            _check_rows(x, y, w)
            np.testing.assert_array_equal(y, np.arange(len(y), dtype=np.float32))  # Arrow's order, a prefix
            for mode in ("memory", "stream"):
                _check_rows(z[f"{mode}_0"], z[f"{mode}_1"][:, 0], z[f"{mode}_2"])
        if len(y) == total:
            complete = True
            break
    assert complete, f"Petastorm never returned all {total} rows"


def test_unweighted_data_keeps_two_element_batches(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    pq.write_table(pa.table({"features": pa.array(list(x), type=pa.list_(pa.float32())),
                             "label": pa.array(np.arange(6, dtype=np.float32))}), tmp_path / "part-0.parquet")
    url = fs.qualify(str(tmp_path))
    shard = ArrowReader().load(url)
    assert shard.weights is None
    ds = to_dataset(shard, batch_size=4, target_encoding="raw", num_classes=0, shuffle=False, seed=None, repeat=False)
    assert len(ds.element_spec) == 2
    stream = stream_dataset(ArrowReader(), url, shard=0, num_shards=1, batch_size=4, buffer_rows=4,
                            target_encoding="raw", num_classes=0, seed=1)
    assert len(stream.element_spec) == 2


def test_empty_weighted_shard_batches_carry_weights():
    shard = Shard(np.zeros((0, 3), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.float32))
    ds = to_dataset(shard, batch_size=4, target_encoding="sparse", num_classes=3, shuffle=False, seed=None,
                    repeat=False)
    assert len(ds.element_spec) == 3


def test_canonical_order_tells_rows_apart_by_weight():
    """Rows equal in features and label but not in weight are different rows: the order the reader
    returned them in must not change the seeded stream."""
    x = np.repeat(np.arange(4, dtype=np.float32)[:, None], 3, axis=0)  # each feature row three times
    y = np.zeros(12, np.float32)
    w = np.arange(12, dtype=np.float32)

    def stream(order):
        ds = to_dataset(Shard(x[order], y[order], w[order]), batch_size=12, target_encoding="sparse",
                        num_classes=2, shuffle=True, seed=5, repeat=False, canonical_order=True)
        return [t.numpy() for t in next(iter(ds))]

    first = stream(np.arange(12))
    second = stream(np.random.default_rng(0).permutation(12))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


# --- the checks: one validation pass -----------------------------------------------------------

def _df(spark, weights, labels=None, weight_type="double"):
    labels = labels if labels is not None else [i % 2 for i in range(len(weights))]
    rows = [([float(i), 1.0], float(y), w) for i, (w, y) in enumerate(zip(weights, labels, strict=True))]
    return spark.createDataFrame(rows, f"features array<double>, label double, w {weight_type}")


def _summarize(df, weight_col="w", validation_split=0.0, validation_col=None):
    from deepflash.data.schema import prepare, summarize

    prepared = prepare(df, "features", "label", validation_col, validation_split, 1, weight_col=weight_col)
    return summarize(prepared, task="classification", features_col="features", label_col="label",
                     weight_col=weight_col, key_extra={})


@pytest.mark.parametrize("weights, match", [
    ([1.0, -1.0, 2.0, -0.5, -3.0, 1.0],
     r"^`weightCol` column 'w' has 3 negative value\(s\) \(min -3\.0\); weights must be >= 0$"),
    ([1.0, float("nan"), 2.0, 1.0], r"^`weightCol` column 'w' has null or NaN values in 1 of 4 rows; expected a "
                                    r"weight >= 0 in every row$"),
    ([1.0, None, None, 1.0], r"^`weightCol` column 'w' has null or NaN values in 2 of 4 rows"),
    ([0.0, 0.0, 0.0, 0.0], r"^`weightCol` column 'w' is 0 in all 4 training rows: expected at least one weight > 0, "
                           r"found none"),
    ([1.0, float("inf"), 1.0, 1.0], r"^`weightCol` column 'w' has 1 infinite value\(s\) or value\(s\) beyond float32"),
    ([1.0, 1e39, 1.0, 1.0], r"^`weightCol` column 'w' has 1 infinite value\(s\) or value\(s\) beyond float32"),
])
def test_bad_weight_values(spark, weights, match):
    with pytest.raises(ValueError, match=match):
        _summarize(_df(spark, weights))


def test_weights_only_on_validation_rows_count_as_all_zero(spark):
    from pyspark.sql import functions as F

    df = _df(spark, [0.0, 0.0, 5.0, 5.0]).withColumn("is_val", F.col("features")[0] >= 2)
    with pytest.raises(ValueError, match=r"is 0 in all 2 training rows"):
        _summarize(df, validation_col="is_val")


def test_missing_and_non_numeric_weight_columns_fail_without_a_job(spark):
    from deepflash.data.schema import prepare

    sc = spark.sparkContext
    df = _df(spark, [1.0, 1.0])
    strings = spark.createDataFrame([([1.0], 0.0, "a")], "features array<double>, label double, w string")
    flags = spark.createDataFrame([([1.0], 0.0, True)], "features array<double>, label double, w boolean")
    group = f"weights-{uuid.uuid4().hex[:8]}"
    sc.setJobGroup(group, "weight column checks")
    try:
        with pytest.raises(ValueError, match=r"^`weightCol` == 'weight': no such column; the DataFrame has: "
                                             r"features \(array<double>\), label \(double\), w \(double\)$"):
            prepare(df, "features", "label", None, 0.0, 1, weight_col="weight")
        with pytest.raises(TypeError, match=r"^`weightCol` column 'w' must be numeric, found string"):
            prepare(strings, "features", "label", None, 0.0, 1, weight_col="w")
        with pytest.raises(TypeError, match=r"^`weightCol` column 'w' must be numeric, found boolean"):
            prepare(flags, "features", "label", None, 0.0, 1, weight_col="w")
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    assert sc.statusTracker().getJobIdsForGroup(group) == []


def _jobs_of(spark, fn) -> int:
    from helpers import job_group  # here: a subprocess test imports this module without tests/ on its path

    with job_group(spark, "weights") as group:
        fn()
    return len(spark.sparkContext.statusTracker().getJobIdsForGroup(group))


def test_weight_checks_add_no_job_to_the_validation_pass(spark):
    df = _df(spark, [1, 0, 2, 3], weight_type="int").cache()  # integer weights are fine
    df.count()
    summary = _summarize(df)
    assert summary.weighted and summary.rows == 4
    # The aggregation is one query (with adaptive execution Spark runs it as a shuffle job and a
    # result job); the weight checks add columns to it, not jobs.
    weighted, unweighted = _jobs_of(spark, lambda: _summarize(df)), _jobs_of(spark, lambda: _summarize(df, None))
    assert weighted == unweighted >= 1


def test_fingerprint_covers_the_weights(spark):
    ones = _summarize(_df(spark, [1.0] * 4))
    other = _summarize(_df(spark, [1.0, 2.0, 1.0, 1.0]))
    unweighted = _summarize(_df(spark, [1.0] * 4), weight_col=None)
    again = _summarize(_df(spark, [1.0] * 4))
    assert not unweighted.weighted
    assert len({ones.fingerprint, other.fingerprint, unweighted.fingerprint}) == 3
    assert again.fingerprint == ones.fingerprint
    assert json.loads(json.dumps(ones.to_json()))["weighted"] is True
