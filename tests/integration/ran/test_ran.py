"""RANEstimator / RANModel through Spark: training on one executor equals the numpy core, transform
equals the core's scoring, save/load, and errors raised before any Spark job."""
from __future__ import annotations

import uuid

import numpy as np
import pytest
from pyspark.sql import functions as F

from deepflash import RANEstimator, RANModel
from deepflash.data.datasets import from_numpy
from deepflash.data.schema import prepare
from deepflash.ran import RAN
from deepflash.ran.stage import training_order


def sine(n: int, seed: int = 1):
    x = np.random.default_rng(seed).uniform(0, 2 * np.pi, n)[:, None]
    return x, np.sin(x[:, 0])


@pytest.fixture(scope="module")
def sine_df(spark):
    x, y = sine(240)
    return from_numpy(spark, x, y, num_partitions=3).cache()


@pytest.fixture(scope="module")
def fitted(sine_df):
    return RANEstimator(epochs=4, seed=5).fit(sine_df)


def test_fit_on_one_executor_equals_the_numpy_core_in_the_same_order(spark, sine_df, fitted):
    # The order training sees (tiny here, so collecting it in the test is fine), fed to the core.
    data = prepare(sine_df, "features", "label", None, 0.0, 5).select("features", "label")
    rows = training_order(data, 4, 5).collect()
    ran = RAN(fitted.settings(), 1)
    for epoch in range(4):
        part = [r for r in rows if r[2] == epoch]
        ran.learn(np.array([r[0] for r in part], np.float32), np.array([r[1] for r in part]))
        ran.end_pass()
    expected = ran.network()
    net = fitted.getNetwork()
    np.testing.assert_array_equal(net.centres, expected.centres)
    np.testing.assert_array_equal(net.weights, expected.weights)
    assert net.bias == expected.bias
    assert fitted.getUnitHistory() == ran.unit_history and fitted.numUnits == ran.num_units > 3
    assert fitted.getExamplesSeen() == 4 * 240 and fitted.getInputDim() == 1
    assert fitted.unitGrowth(240) == fitted.getUnitHistory()


def test_the_same_data_gives_the_same_network_however_partitioned(spark, sine_df, fitted):
    again = RANEstimator(epochs=4, seed=5).fit(sine_df.repartition(1))
    np.testing.assert_array_equal(again.getNetwork().centres, fitted.getNetwork().centres)
    other_seed = RANEstimator(epochs=4, seed=6).fit(sine_df)
    assert not np.array_equal(other_seed.getNetwork().weights, fitted.getNetwork().weights)


def test_transform_equals_the_numpy_core_and_approximates_the_sine(spark, fitted):
    grid = np.linspace(0, 2 * np.pi, 300)[:, None]
    df = from_numpy(spark, grid, np.sin(grid[:, 0]), num_partitions=2).withColumn("id", F.monotonically_increasing_id())
    out = fitted.transform(df)
    assert out.columns == ["features", "label", "id", "prediction"]
    rows = out.orderBy("id").collect()
    x = np.array([r["features"].toArray() for r in rows], np.float32)
    spark_pred = np.array([r["prediction"] for r in rows])
    np.testing.assert_allclose(spark_pred, fitted.getNetwork().predict(x), rtol=0, atol=1e-12)
    assert np.abs(spark_pred - np.sin(x[:, 0])).mean() < 0.03


def test_save_and_load_give_identical_predictions(spark, sine_df, fitted, tmp_path):
    path = str(tmp_path / "ran")
    fitted.write().save(path)
    loaded = RANModel.load(path)
    assert loaded.uid == fitted.uid and loaded.numUnits == fitted.numUnits
    assert loaded.getUnitHistory() == fitted.getUnitHistory() and loaded.getOverlap() == fitted.getOverlap()
    before = [r["prediction"] for r in fitted.transform(sine_df).collect()]
    after = [r["prediction"] for r in loaded.transform(sine_df).collect()]
    assert before == after
    est_path = str(tmp_path / "est")
    RANEstimator(epochs=3, maxUnits=9).save(est_path)
    est = RANEstimator.load(est_path)
    assert est.getEpochs() == 3 and est.getMaxUnits() == 9
    copied = fitted.copy()
    assert copied.numUnits == fitted.numUnits


def _no_job(spark, fn, error, match):
    sc = spark.sparkContext
    group = f"ran-{uuid.uuid4().hex[:8]}"
    sc.setJobGroup(group, "RAN validation test")
    try:
        with pytest.raises(error, match=match):
            fn()
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    assert sc.statusTracker().getJobIdsForGroup(group) == []


def test_errors_name_the_param_and_start_no_job(spark, sine_df):
    bad_label = sine_df.withColumn("label", F.lit("x"))
    as_text = sine_df.withColumn("features", F.lit("x"))
    cases = [
        (lambda: RANEstimator(featuresCol="nope").fit(sine_df), ValueError, r"`featuresCol` == 'nope': no such column"),
        (lambda: RANEstimator(labelCol="y").fit(sine_df), ValueError, r"`labelCol` == 'y': no such column"),
        (lambda: RANEstimator().fit(bad_label), TypeError, r"`labelCol` column 'label' must be numeric"),
        (lambda: RANEstimator().fit(as_text), TypeError, r"`featuresCol` column 'features' must be a Vector"),
        (lambda: RANEstimator(distanceMin=3.0).fit(sine_df), ValueError,
         r"`distanceMin` == 3.0, must be <= `distanceMax`"),
        (lambda: RANModel().transform(sine_df), ValueError, r"holds no network; get one from RANEstimator.fit"),
    ]
    for fn, error, match in cases:
        _no_job(spark, fn, error, match)


def test_errors_found_in_the_data(spark, sine_df, fitted):
    with pytest.raises(ValueError, match=r"empty: expected at least one row, found 0"):
        RANEstimator().fit(sine_df.limit(0))
    with_nan = sine_df.withColumn("label", F.when(F.rand(0) < 0.1, F.lit(float("nan"))).otherwise(F.col("label")))
    with pytest.raises(ValueError, match=r"`labelCol` column 'label' has null or NaN values"):
        RANEstimator().fit(with_nan)
    with pytest.raises(ValueError, match=r"`predictionCol` == 'label': the DataFrame already has a column"):
        fitted.copy({fitted.predictionCol: "label"}).transform(sine_df)
    two_d = from_numpy(spark, np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(Exception, match=r"must hold vectors of length 1"):
        fitted.transform(two_d).collect()
