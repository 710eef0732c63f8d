"""Every bad input fails with a message naming the column or param, before anything is written.

Param and schema errors must also come before any Spark job; data errors (NaN, bad labels) need
the one validation pass over the data, but nothing is written to the store either way.
"""
from __future__ import annotations

import pytest
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StructField, StructType

from deepflash import KerasEstimator
from helpers import fails_cleanly

SCHEMA = StructType([StructField("features", VectorUDT()), StructField("label", DoubleType())])


def _vec_df(spark, rows):
    return spark.createDataFrame([(Vectors.dense(f), float(y) if y is not None else None) for f, y in rows], SCHEMA)


@pytest.fixture(scope="module")
def good(spark):
    return _vec_df(spark, [([0.1 * i, 1.0 - 0.1 * i], i % 2) for i in range(10)])


def local(**kw):
    return KerasEstimator(backend="local", epochs=1, **kw)


@pytest.mark.parametrize("est, error, match", [
    (local(featuresCol="pixels"), ValueError,
     r"`featuresCol` == 'pixels': no such column; the DataFrame has: features \(vector\), label \(double\)"),
    (local(labelCol="target"), ValueError, r"`labelCol` == 'target': no such column; the DataFrame has: features"),
    (local(validationCol="is_val"), ValueError, r"`validationCol` == 'is_val': no such column"),
    (local(layers=[{"type": "dense2", "units": 3}]), ValueError, r"unknown layer type 'dense2', must be one of: dense"),
    (local(layers=[{"type": "dense", "units": 3, "activation": "swish"}]), ValueError,
     r"unknown activation 'swish', must be one of: relu, sigmoid"),
    (local(layers=[{"type": "dropout", "rate": 1.5}]), ValueError,
     r"`layers`\[0\] \(dropout\): `rate` == 1.5, must be in \[0, 1\)"),
    (local(layers="resnet"), ValueError, r"unknown preset, must be one of: simple, deep, tuned_mlp"),
    (local(optimizer="adamm"), ValueError, r"`optimizer` == 'adamm', must be one of: sgd, adagrad, adadelta"),
    (local(loss="hinge"), ValueError, r"`loss` == 'hinge', must be one of: auto, categorical_crossentropy"),
    (local(task="regression", loss="categorical_crossentropy"), ValueError, r"does not fit task 'regression'"),
    (local(earlyStoppingPatience=2, validationSplit=0.0), ValueError,
     r"`earlyStoppingMonitor` == 'val_loss' needs validation"),
    (KerasEstimator(backend="horovod", numProc=3), ValueError, r"`numProc` == 3, but the cluster has 2 task slot"),
    (KerasEstimator(backend="local", numProc=2), ValueError, r"`numProc` == 2, must be 1 with backend='local'"),
])
def test_param_and_column_errors_come_before_any_job(spark, good, store_dir, est, error, match):
    fails_cleanly(spark, store_dir, good, est, error, match, no_job=True)


def test_feature_column_of_wrong_type(spark, store_dir):
    df = spark.createDataFrame([("a", 1.0)], "features string, label double")
    fails_cleanly(spark, store_dir, df, local(), TypeError,
                  r"`featuresCol` column 'features' must be a Vector or an array of numbers, found string",
                  no_job=True)


def test_string_label(spark, store_dir, good):
    df = good.withColumn("label", F.lit("cat"))
    fails_cleanly(spark, store_dir, df, local(), TypeError, r"`labelCol` column 'label' must be numeric, found string",
                  no_job=True)


def test_non_boolean_validation_col(spark, store_dir, good):
    df = good.withColumn("is_val", F.lit(1))
    fails_cleanly(spark, store_dir, df, local(validationCol="is_val"), TypeError,
                  r"`validationCol` column 'is_val' must be boolean, found int", no_job=True)


@pytest.mark.parametrize("rows, match", [
    ([], r"the training DataFrame is empty: expected at least one row, found 0"),
    ([([1.0, float("nan")], 0), ([1.0, 2.0], 1), ([float("nan"), 2.0], 1)],
     r"`featuresCol` column 'features' has null or NaN values in 2 of 3 rows"),
    ([([1.0, 2.0], None), ([1.0, 2.0], 1), ([1.0, 2.0], 0)],
     r"`labelCol` column 'label' has null or NaN values in 1 of 3 rows"),
    ([([1.0, 2.0], 0.5), ([1.0, 2.0], 1), ([1.0, 2.0], 0)], r"found 1 non-integer and 0 negative labels"),
    ([([1.0, 2.0], -1), ([1.0, 2.0], 1), ([1.0, 2.0], 0)], r"found 0 non-integer and 1 negative labels"),
    ([([1.0, 2.0], 0), ([2.0, 2.0], 0)], r"has a single class"),
    ([([1.0, 2.0], 1), ([2.0, 2.0], 1)], r"`labelCol` column 'label' has a single class \(1\)"),
    ([([1.0, float("inf")], 0), ([1e39, 2.0], 1), ([1.0, 2.0], 1)],
     r"`featuresCol` column 'features' holds 2 rows with inf/-inf or values beyond float32"),
])
def test_bad_data(spark, store_dir, rows, match):
    fails_cleanly(spark, store_dir, _vec_df(spark, rows), local(), ValueError, match, no_job=False)


def test_arrays_of_varying_length(spark, store_dir):
    df = spark.createDataFrame([([1.0, 2.0], 0.0), ([1.0, 2.0, 3.0], 1.0)], "features array<double>, label double")
    fails_cleanly(spark, store_dir, df, local(), ValueError,
                  r"`featuresCol` column 'features' must hold arrays of one length, found lengths from 2 to 3",
                  no_job=False)


def test_null_array_counts_as_bad_feature(spark, store_dir):
    df = spark.createDataFrame([(None, 0.0), ([1.0, 2.0], 1.0), ([1.0, 3.0], 0.0)],
                               "features array<double>, label double")
    fails_cleanly(spark, store_dir, df, local(), ValueError, r"null or NaN values in 1 of 3 rows", no_job=False)


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": 0}, r"`epochs` == 0, must be >= 1"),
    ({"learningRate": 0.0}, r"`learningRate` == 0.0, must be > 0"),
    ({"learningRate": -0.1}, r"`learningRate` == -0.1, must be > 0"),
    ({"batchSize": 0}, r"`batchSize` == 0, must be >= 1"),
    ({"validationSplit": 1.0}, r"`validationSplit` == 1.0, must be < 1"),
])
def test_out_of_range_numbers_fail_at_construction(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        KerasEstimator(**kwargs)


def test_class_ids_above_max_class_id(spark, store_dir):
    df = _vec_df(spark, [([1.0, 2.0], 0), ([2.0, 2.0], 1), ([3.0, 2.0], 7)])
    fails_cleanly(spark, store_dir, df, local(maxClassId=5), ValueError,
                  r"`labelCol` column 'label' holds class id 7, above `maxClassId` == 5", no_job=False)


@pytest.mark.one_profile(reason="trains; tests/unit/worker/test_nonfinite_loss.py checks the callback on both profiles")
def test_a_diverging_fit_fails_naming_the_epoch(spark, store_dir):
    from deepflash.worker.callbacks import NonFiniteLossError

    df = _vec_df(spark, [([1e3 * i, -1e3 * i], 1e3 * i) for i in range(40)])
    est = local(task="regression", optimizer="sgd", learningRate=10.0, batchSize=4, validationSplit=0.0)
    with pytest.raises(NonFiniteLossError, match=r"in epoch 1: training diverged; lower `learningRate` \(now 10\)"):
        est.setStorePath(store_dir).fit(df)


@pytest.mark.one_profile(reason="trains; tests/unit/worker/test_train_deadline.py checks the callback on both profiles")
def test_a_fit_past_its_train_timeout_fails_naming_it(spark, store_dir):
    import time

    from deepflash.worker.callbacks import TrainTimeoutError

    df = _vec_df(spark, [([float(i % 7), float(i % 3)], i % 2) for i in range(200)])
    est = KerasEstimator(backend="local", batchSize=4, epochs=100_000, trainTimeout=3)
    started = time.time()
    with pytest.raises(TrainTimeoutError, match=r"training ran past `trainTimeout` == 3 s, in epoch \d+"):
        est.setStorePath(store_dir).fit(df)
    # 100,000 epochs would take hours; the data's checks and writing come before the 3 s
    assert time.time() - started < 60
