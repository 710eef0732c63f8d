"""Rows trained are rows validated: materialization checks what it wrote before committing it."""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from deepflash.data import verify
from deepflash.data.materialize import materialize
from deepflash.data.schema import prepare, summarize
from deepflash.data.verify import SourceColumns, WrittenDataError, verify_written
from deepflash.io import fs
from deepflash.io.store import Store


def _flaky_features(marker_dir: str):
    """A UDF that answers differently on its second evaluation of a row: every third row becomes NaN."""
    def features(i):
        marker = os.path.join(marker_dir, str(i))
        seen = os.path.exists(marker)
        open(marker, "w").close()
        return [float("nan") if seen and i % 3 == 0 else float(i), 1.0]
    return F.udf(features, "array<double>")


def test_a_nondeterministic_input_is_refused_before_commit(spark, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    df = spark.range(30).select(_flaky_features(str(markers))("id").alias("pixels"),
                                (F.col("id") % 2).cast("double").alias("target"))
    prepared = prepare(df, "pixels", "target", None, 0.0, 1)
    summary = summarize(prepared, task="classification", features_col="pixels", label_col="target", key_extra={})
    store = Store(fs.qualify(str(tmp_path / "store")))
    with pytest.raises(WrittenDataError, match=r"^`featuresCol` column 'pixels' holds null, NaN, inf or values beyond "
                                               r"float32 \(\|x\| > 3\.403e\+38\) in 10 of the 30 rows written for "
                                               r"training, none when it was validated; the input is not deterministic"):
        materialize(prepared, summary, store, 1, SourceColumns("pixels", "target"))
    data_dir = tmp_path / "store" / "data"
    assert not data_dir.exists() or os.listdir(data_dir) == [], "the temp dir or a dataset was left behind"


@pytest.fixture()
def split(tmp_path):
    """A written split as materialization leaves it: is_validation=false/ (5 rows) and =true/ (2 rows)."""
    def write(name, x, y, w=None):
        columns = {"features": pa.array(list(np.asarray(x, np.float32)), type=pa.list_(pa.float32())),
                   "label": pa.array(np.asarray(y, np.float32))}
        if w is not None:
            columns["weight"] = pa.array(np.asarray(w, np.float32))
        (tmp_path / name).mkdir(exist_ok=True)
        pq.write_table(pa.table(columns), tmp_path / name / "part-00000.snappy.parquet")

    def make(train_x=None, train_y=None, weights=None):
        x = np.ones((5, 3)) if train_x is None else train_x
        write("is_validation=false", x, [0, 1, 0, 1, 0] if train_y is None else train_y, weights)
        write("is_validation=true", np.zeros((2, 3)), [1, 0], None if weights is None else [1, 1])
        return fs.qualify(str(tmp_path))
    return make


def _verify(spark, url, train_rows=5, val_rows=2, num_classes=2, weight=None):
    return verify_written(url, spark=spark, train_rows=train_rows, val_rows=val_rows, num_classes=num_classes,
                          columns=SourceColumns("pixels", "target", weight))


def test_rows_lost_or_added_after_validation_are_refused(spark, split):
    url = split()
    assert _verify(spark, url).train_rows == 5
    with pytest.raises(WrittenDataError, match=r"^the materialized data holds 5 training and 2 validation rows, but "
                                               r"validation counted 6 and 2"):
        _verify(spark, url, train_rows=6)


@pytest.mark.parametrize("change, match", [
    ({"train_x": [[1, 1, 1]] * 3 + [[np.inf, 1, 1], [1, np.nan, 1]]}, r"^`featuresCol` column 'pixels' holds .* in 2 "),
    ({"train_y": [0, 1, np.nan, 1, 0]}, r"^`labelCol` column 'target' holds null, NaN, inf .* in 1 of the 7 rows"),
    ({"train_y": [0, 1, 7, 1, 0]}, r"^`labelCol` column 'target' holds labels that are no class id in \[0, 2\) in 1 "),
    ({"weights": [1, 1, -np.inf, 1, 1]}, r"^`weightCol` column 'w' holds null, NaN, inf .* in 1 of the 7 rows"),
])
def test_bad_values_written_are_refused(spark, split, change, match):
    with pytest.raises(WrittenDataError, match=match):
        _verify(spark, split(**change), weight="w")


def test_the_spark_scan_counts_what_the_driver_scan_counts(spark, split, monkeypatch):
    """Above DRIVER_SCAN_BYTES one Spark job scans the files instead: the same counts."""
    url = split(train_x=[[1, 1, 1]] * 3 + [[np.inf, 1, 1], [1, np.nan, 1]], train_y=[0, 1, np.nan, 7, 0],
                weights=[1, 1, -np.inf, 1, 1])
    expected = verify.WrittenCounts(train_rows=5, val_rows=2, bad_features=2, bad_labels=1, bad_weights=1,
                                    bad_classes=1)
    assert verify.scan_on_driver(url, spark, 2) == expected
    monkeypatch.setattr(verify, "DRIVER_SCAN_BYTES", -1)
    assert verify.choose_scan(0) is verify.scan_with_spark
    assert verify.scan_with_spark(url, spark, 2) == expected


def test_reused_data_is_checked_against_its_manifest_and_metadata_and_a_changed_copy_is_refused(spark, tmp_path):
    import json

    df = spark.range(40).select(F.array(F.col("id").cast("double"), F.lit(1.0)).alias("pixels"),
                                (F.col("id") % 2).cast("double").alias("target"))
    prepared = prepare(df, "pixels", "target", None, 0.25, 1)
    summary = summarize(prepared, task="classification", features_col="pixels", label_col="target", key_extra={})
    store = Store(fs.qualify(str(tmp_path / "store")))
    first = materialize(prepared, summary, store, 1)
    again = materialize(prepared, summary, store, 1)
    assert again.reused and (again.train_rows, again.val_rows) == (first.train_rows, first.val_rows)
    train_dir = fs.local_path(first.train_url)
    victim = sorted(n for n in os.listdir(train_dir) if n.endswith(".parquet") and
                    pq.ParquetFile(os.path.join(train_dir, n)).metadata.num_rows)[0]
    lost = pq.ParquetFile(os.path.join(train_dir, victim)).metadata.num_rows
    os.remove(os.path.join(train_dir, victim))  # a file lost (or a dataset planted with other files)
    with pytest.raises(WrittenDataError, match=rf"is not what deepflash wrote: its files differ from its manifest "
                                               rf"\(meta.json\) in train/{victim}; delete that directory"):
        materialize(prepared, summary, store, 1)
    meta_path = os.path.join(os.path.dirname(train_dir), "meta.json")
    meta = json.loads(open(meta_path).read())
    del meta["files"]  # a copy written before manifests: the row counts are still checked
    with open(meta_path, "w") as f:
        f.write(json.dumps(meta))
    with pytest.raises(WrittenDataError, match=rf"does not hold what its name says: its files have "
                                               rf"{first.train_rows - lost} training and {first.val_rows} validation "
                                               rf"rows .* but the input validated now has {first.train_rows} and "
                                               rf"{first.val_rows}; delete that directory"):
        materialize(prepared, summary, store, 1)
