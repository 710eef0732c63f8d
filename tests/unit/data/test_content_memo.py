"""A second fit of in-memory data that cannot have changed skips the validation pass and keeps the
first's fingerprint; data that can change (files, an unloaded or new cache, a non-deterministic
plan) is validated on every fit, so bad rows written between two fits are still refused."""
from __future__ import annotations

import numpy as np
import pytest
from pyspark.sql import functions as F

from deepflash.data import datasets
from deepflash.data.content import SummaryMemo, content_identity
from deepflash.data.schema import prepare, summarize
from helpers import job_group


def _frame(spark, rows=40, nan_row=None):
    x = np.arange(rows * 3, dtype=np.float64).reshape(rows, 3)
    if nan_row is not None:
        x[nan_row, 1] = np.nan
    return datasets.from_numpy(spark, x, np.arange(rows) % 2, num_partitions=2)


def _summarize(df):
    prepared = prepare(df, "features", "label", None, 0.25, 7)
    return summarize(prepared, task="classification", features_col="features", label_col="label",
                     key_extra={"split": 0.25, "seed": 7}, source=df)


def _jobs(spark, fn):
    with job_group(spark, "memo") as group:
        result = fn()
    return result, len(spark.sparkContext.statusTracker().getJobIdsForGroup(group))


def test_a_loaded_cache_is_validated_once_per_cache(spark):
    df = _frame(spark).cache()
    assert content_identity(df) is None  # not loaded: its rows are not fixed yet
    first, first_jobs = _jobs(spark, lambda: _summarize(df))
    assert first_jobs >= 1
    identity = content_identity(df)
    assert identity is not None and len(identity.caches) == 1
    again, jobs = _jobs(spark, lambda: _summarize(df))
    assert again == first and jobs == 0
    # Another DataFrame object with the same plan over the same cache is the same rows.
    same, jobs = _jobs(spark, lambda: _summarize(df.select("features", "label")))
    assert same.fingerprint == first.fingerprint and jobs == 0
    # Unpersisted and cached again, the rows are read again: validated again.
    df.unpersist(blocking=True)
    df.cache().count()
    assert content_identity(df).caches != identity.caches
    recached, jobs = _jobs(spark, lambda: _summarize(df))
    assert jobs >= 1 and recached.fingerprint == first.fingerprint
    df.unpersist()


def test_a_non_deterministic_plan_or_another_split_is_validated_again(spark):
    df = _frame(spark).cache()
    df.count()
    _summarize(df)
    shuffled = df.withColumn("r", F.rand()).drop("r").where(F.rand() >= 0.0)
    assert content_identity(shuffled) is None
    _, jobs = _jobs(spark, lambda: _summarize(shuffled))
    assert jobs >= 1
    prepared = prepare(df, "features", "label", None, 0.5, 7)
    _, jobs = _jobs(spark, lambda: summarize(prepared, task="classification", features_col="features",
                                             label_col="label", key_extra={"split": 0.5, "seed": 7}, source=df))
    assert jobs >= 1  # another split is another key
    df.unpersist()


def test_files_are_validated_on_every_fit_and_bad_rows_written_between_are_refused(spark, tmp_path):
    path = str(tmp_path / "rows")
    _frame(spark).write.parquet(path)
    df = spark.read.parquet(path)
    assert content_identity(df) is None
    _summarize(df)
    _frame(spark, nan_row=3).write.mode("overwrite").parquet(path)
    df = spark.read.parquet(path)
    with pytest.raises(ValueError, match="`featuresCol` column 'features' has null or NaN values in 1 of 40 rows"):
        _summarize(df)


def test_a_plan_the_client_cannot_inspect_has_no_identity():
    class ConnectLike:  # a Spark Connect DataFrame has no JVM plan on the client
        pass

    assert content_identity(ConnectLike()) is None


def test_an_entry_goes_with_its_dataframe(spark):
    memo = SummaryMemo(capacity=2)
    df = _frame(spark)  # rows inside the plan (a LocalRelation): fixed
    assert content_identity(df) is not None
    memo.put(df, "k", "found")
    assert memo.get(df, "k") == "found" and memo.get(df, "other") is None
    twin = _frame(spark)  # the same rows in another plan object: found while the first lives
    assert memo.get(twin, "k") == "found"
    del df
    import gc

    gc.collect()
    assert memo.get(twin, "k") is None


def test_a_second_plan_of_a_cached_frame_runs_no_validation_job(spark, tmp_path, caplog):
    from deepflash import KerasEstimator

    df = _frame(spark, rows=60).cache()
    est = KerasEstimator(layers=[{"type": "dense", "units": 4}], epochs=1, backend="local",
                         storePath=str(tmp_path / "store"))
    first, first_jobs = _jobs(spark, lambda: est.plan(df))
    with caplog.at_level("INFO", logger="deepflash"):
        second, jobs = _jobs(spark, lambda: est.plan(df))
    assert second.reused and second.data_fingerprint == first.data_fingerprint
    assert "validation pass skipped" in caplog.text
    assert jobs < first_jobs - 1, (first_jobs, jobs)  # neither the pass nor the write ran
    df.unpersist()
