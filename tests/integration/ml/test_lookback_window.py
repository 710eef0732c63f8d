"""LookBackWindow and sine_wave on local Spark, and LSTM stacks trained on their windows."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F

from deepflash import HyperoptSearch, KerasEstimator
from deepflash.data.datasets import sine_wave
from deepflash.ml.timeseries import LookBackWindow, window_arrays
from helpers import raises_before_any_job

RNG = np.random.default_rng(5)



pytestmark = pytest.mark.both_profiles(reason="LSTM stacks and their windows' shapes, on Keras 2 and Keras 3")

def series_frame(spark, columns: dict, key=None):
    """A DataFrame of the given columns plus ``t`` (0..n-1), its rows shuffled over 3 partitions."""
    pdf = pd.DataFrame(columns)
    pdf["t"] = np.arange(len(pdf))
    if key is not None:
        pdf["key"] = key
    return spark.createDataFrame(pdf.sample(frac=1.0, random_state=1)).repartition(3)


def collected(out, key=None):
    """(t, features as an array of rows, label) sorted by (key,) t."""
    rows = out.orderBy(*([key] if key else []), "t").collect()
    return (np.array([r["t"] for r in rows]), np.array([r["features"].toArray() for r in rows]),
            np.array([r["label"] for r in rows]))


@pytest.mark.connect
def test_windows_match_window_arrays_one_column(spark):
    values = RNG.normal(size=12)
    out = LookBackWindow(inputCol="v", lookBack=3, orderBy="t").transform(series_frame(spark, {"v": values}))
    t, features, label = collected(out)
    x, y = window_arrays(values, 3)
    np.testing.assert_array_equal(features, x.reshape(len(x), -1))
    np.testing.assert_array_equal(label, y)
    # The row keeps the window's last step: its own time and value.
    np.testing.assert_array_equal(t, np.arange(2, 11))
    np.testing.assert_array_equal(features[:, -1], values[2:11])
    assert out.schema["features"].metadata == {"deepflash": {"window_shape": [3, 1]}}


def test_two_columns_and_horizon_two_are_time_major(spark):
    a, b = RNG.normal(size=10), RNG.normal(size=10)
    out = LookBackWindow(inputCols=["a", "b"], lookBack=3, horizon=2, orderBy="t").transform(
        series_frame(spark, {"a": a, "b": b}))
    t, features, label = collected(out)
    x, y = window_arrays(np.column_stack([a, b]), 3, horizon=2)
    np.testing.assert_array_equal(features, x.reshape(len(x), -1))
    np.testing.assert_array_equal(label, y)
    # First row: steps 0, 1, 2 with (a, b) each; label a[2 + 2].
    np.testing.assert_array_equal(features[0], [a[0], b[0], a[1], b[1], a[2], b[2]])
    assert label[0] == a[4] and list(t) == list(range(2, 8))
    assert out.schema["features"].metadata["deepflash"]["window_shape"] == [3, 2]


@pytest.mark.connect
def test_windows_stay_within_their_partition_key(spark):
    lengths = {"x": 7, "y": 4, "z": 2}
    series = {k: RNG.normal(size=n) + 100 * i for i, (k, n) in enumerate(lengths.items())}
    pdf = pd.concat([pd.DataFrame({"key": k, "t": np.arange(len(v)) + 10 * i, "v": v})
                     for i, (k, v) in enumerate(series.items())])
    df = spark.createDataFrame(pdf.sample(frac=1.0, random_state=2)).repartition(3)
    lw = LookBackWindow(inputCol="v", lookBack=3, orderBy="t", partitionBy=["key"])
    out = lw.transform(df)
    rows = out.orderBy("key", "t").collect()
    for key, values in series.items():
        mine = [r for r in rows if r["key"] == key]
        x, y = window_arrays(values, 3)
        assert len(mine) == len(x)  # 5, 2 and 0 windows
        if mine:
            np.testing.assert_array_equal([r["features"].toArray() for r in mine], x.reshape(len(x), -1))
            np.testing.assert_array_equal([r["label"] for r in mine], y)
    # min(n, lookBack + horizon - 1) per key: 3 + 3 + 2.
    assert lw.droppedRows(df) == 8 == df.count() - out.count()


@pytest.mark.parametrize("look_back, horizon", [(1, 1), (4, 1), (2, 3), (9, 5)])
def test_dropped_rows_is_what_transform_drops(spark, caplog, look_back, horizon):
    df = series_frame(spark, {"v": RNG.normal(size=11)})
    lw = LookBackWindow(inputCol="v", lookBack=look_back, horizon=horizon, orderBy="t")
    with caplog.at_level(logging.INFO, logger="deepflash"):
        kept = lw.transform(df).count()
        dropped = lw.droppedRows(df)
    assert dropped == 11 - kept == min(11, look_back + horizon - 1)
    assert f"drops {dropped} row(s) of 1 series" in caplog.text
    assert f"drops the first {look_back - 1} and the last {horizon} row(s)" in caplog.text


@pytest.mark.connect
def test_null_values_become_nan_which_the_estimator_reports(spark, tmp_path):
    df = spark.createDataFrame([(t, None if t == 3 else float(t)) for t in range(8)], "t long, v double")
    out = LookBackWindow(inputCol="v", lookBack=2, orderBy="t").transform(df)
    _, features, label = collected(out)
    # t = 3 is the last step of the window at t = 3, the first at t = 4, and the label at t = 2.
    assert np.isnan(features[2, 1]) and np.isnan(features[3, 0]) and np.isnan(label[1])
    assert np.isnan(features).sum() == 2 and np.isnan(label).sum() == 1
    est = KerasEstimator(task="regression", backend="local", storePath=str(tmp_path / "store"))
    with pytest.raises(ValueError, match="`featuresCol` column 'features' has null or NaN values in 2 of 6 rows"):
        est.fit(out)


@pytest.mark.connect
def test_saves_and_loads_alone_and_in_a_pipeline(spark, tmp_path):
    df = series_frame(spark, {"a": RNG.normal(size=15), "b": RNG.normal(size=15)})
    lw = LookBackWindow(inputCols=["a", "b"], outputCol="w", labelCol="y", lookBack=4, horizon=2, orderBy="t")
    lw.save(str(tmp_path / "stage"))
    loaded = LookBackWindow.load(str(tmp_path / "stage"))
    assert {p.name: v for p, v in loaded.extractParamMap().items()} == \
        {p.name: v for p, v in lw.extractParamMap().items()}
    Pipeline(stages=[lw]).fit(df).save(str(tmp_path / "pipeline"))
    out = PipelineModel.load(str(tmp_path / "pipeline")).transform(df)
    expected = lw.transform(df).orderBy("t").collect()
    assert out.orderBy("t").collect() == expected and len(expected) == 15 - 5
    assert out.schema["w"].metadata == {"deepflash": {"window_shape": [4, 2]}}


@pytest.mark.parametrize("lw, match", [
    (LookBackWindow(inputCol="v", orderBy="t"), r"`lookBack` is not set"),
    (LookBackWindow(inputCol="v", lookBack=2), r"`orderBy` is not set: a DataFrame has no order"),
    (LookBackWindow(lookBack=2, orderBy="t"), r"set exactly one of `inputCol`"),
    (LookBackWindow(inputCol="nope", lookBack=2, orderBy="t"), r"`inputCol` == 'nope': no such column"),
    (LookBackWindow(inputCols=["v", "name"], lookBack=2, orderBy="t"),
     r"`inputCols` column 'name' must be numeric, found string"),
    (LookBackWindow(inputCol="v", lookBack=2, orderBy="time"), r"`orderBy` == 'time': no such column"),
    (LookBackWindow(inputCol="v", lookBack=2, orderBy="t", partitionBy=["k"]), r"`partitionBy` == 'k': no such"),
    (LookBackWindow(inputCol="v", lookBack=2, orderBy="t", labelCol="v"), r"`labelCol` == 'v': the DataFrame "
     "already has that column"),
])
def test_bad_input_fails_before_any_job(spark, lw, match):
    df = spark.createDataFrame([(0, 1.0, "a"), (1, 2.0, "b")], "t long, v double, name string")
    with raises_before_any_job(spark, (ValueError, TypeError), match):
        lw.transform(df)
    with raises_before_any_job(spark, (ValueError, TypeError), match):
        lw.droppedRows(df)


def test_look_back_below_one_fails_before_any_job(spark):
    with raises_before_any_job(spark, ValueError, r"`lookBack` == 0, must be >= 1"):
        LookBackWindow(inputCol="v", lookBack=0, orderBy="t")


@pytest.mark.connect
def test_sine_wave_is_generated_in_spark_and_seeded(spark):
    clean = sine_wave(spark, 200, period=25)
    assert [(f.name, f.dataType.simpleString()) for f in clean.schema.fields] == [("t", "bigint"), ("value", "double")]
    rows = clean.orderBy("t").collect()
    np.testing.assert_allclose([r["value"] for r in rows], np.sin(2 * np.pi * np.arange(200) / 25), atol=1e-12)
    noisy = np.array([r["value"] for r in sine_wave(spark, 2000, 25, noise=0.1, seed=4).orderBy("t").collect()])
    again = np.array([r["value"] for r in sine_wave(spark, 2000, 25, noise=0.1, seed=4).orderBy("t").collect()])
    other = np.array([r["value"] for r in sine_wave(spark, 2000, 25, noise=0.1, seed=5).orderBy("t").collect()])
    np.testing.assert_array_equal(noisy, again)
    assert not np.allclose(noisy, other)
    residual = noisy - np.sin(2 * np.pi * np.arange(2000) / 25)
    assert 0.09 < residual.std() < 0.11 and abs(residual.mean()) < 0.01


@pytest.mark.connect
def test_estimator_takes_the_window_shape_from_the_metadata(spark, tmp_path):
    rows = LookBackWindow(inputCols=["value", "t2"], lookBack=4, orderBy="t").transform(
        sine_wave(spark, 40, 10).withColumn("t2", F.col("t") / 40.0))
    lstm = [{"type": "lstm", "units": 3}, {"type": "lstm", "units": 2}]
    est = KerasEstimator(task="regression", backend="local", layers=lstm, storePath=str(tmp_path / "store"))
    assert est.plan(rows).input_shape == (4, 2)
    # An explicit inputShape wins over the metadata.
    assert est.copy({est.inputShape: [8]}).setLayers([]).plan(rows).input_shape == (8,)
    # Without the metadata the lstm stack gets the flat vector, which it cannot take. (An empty
    # metadata dict would be ignored by alias: replace it with another.)
    flat = rows.select(F.col("features").alias("features", metadata={"origin": "test"}), "label")
    with pytest.raises(ValueError, match=r"`layers`\[0\] \(lstm\) does not fit its input of shape \(8,\)"):
        est.plan(flat)


@pytest.mark.slow
def test_lstm_stack_beats_persistence_on_a_held_out_stretch(spark, tmp_path):
    look_back, n, cut = 8, 400, 300
    series = sine_wave(spark, n, period=40, noise=0.05, seed=3).cache()
    rows = LookBackWindow(inputCol="value", lookBack=look_back, orderBy="t").transform(series)
    # The Spark windows are the in-memory ones on the same series.
    values = np.array([r["value"] for r in series.orderBy("t").collect()])
    x, y = window_arrays(values, look_back)
    _, features, label = collected(rows)
    np.testing.assert_array_equal(features, x[:, :, 0])
    np.testing.assert_array_equal(label, y)

    train, test = rows.where(F.col("t") < cut), rows.where(F.col("t") >= cut)
    est = KerasEstimator(task="regression", backend="local", layers=[{"type": "lstm", "units": 16},
                                                                      {"type": "lstm", "units": 8}],
                         epochs=10, batchSize=32, learningRate=0.01, validationSplit=0.0, seed=1,
                         storePath=str(tmp_path / "store"))
    model = est.fit(train)
    scored = model.transform(test)
    last_value = vector_to_array(F.col("features"))[look_back - 1]
    mae = scored.agg(F.avg(F.abs(F.col("prediction") - F.col("label"))).alias("model"),
                     F.avg(F.abs(last_value - F.col("label"))).alias("persistence"),
                     F.count(F.lit(1)).alias("rows")).first()
    logging.getLogger("deepflash").info("held-out MAE: LSTM %.4f, persistence %.4f (%d rows)", *mae)
    assert mae["rows"] == n - cut - 1
    assert mae["model"] < 0.8 * mae["persistence"], mae


@pytest.mark.slow
def test_search_trials_take_the_window_shape_too(spark, tmp_path):
    rows = LookBackWindow(inputCol="value", lookBack=6, orderBy="t").transform(sine_wave(spark, 120, 20))
    est = KerasEstimator(task="regression", backend="local", epochs=1, seed=2, storePath=str(tmp_path / "store"))
    stacks = [[{"type": "lstm", "units": 4}], [{"type": "lstm", "units": 4}, {"type": "lstm", "units": 2}]]
    found = HyperoptSearch(estimator=est, space={"layers": {"choice": stacks}}, algo="grid", maxEvals=10,
                           parallelism=1, metric="val_loss", mode="min", refit=False).fit(rows)
    assert list(found.trials["status"]) == ["ok", "ok"], list(found.trials["error"])
