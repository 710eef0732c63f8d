"""KerasEstimator and KerasModel end to end on local Spark: Horovod and local backends."""
from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import StandardScaler, VectorAssembler
from pyspark.ml.linalg import VectorUDT
from pyspark.sql import functions as F

from deepflash import KerasEstimator, KerasModel
from deepflash.networks.keras_compat import output_shape
from helpers import accuracy, frame

pytestmark = [pytest.mark.slow,
              pytest.mark.both_profiles(reason="the Pipeline trains, saves, loads and scores Keras 2 or 3 networks")]


def digits_pipeline(train, **params) -> Pipeline:
    pixels = [c for c in train.columns if c.startswith("px")]
    settings = dict(featuresCol="scaled", layers=[{"type": "dense", "units": 64, "activation": "relu"}],
                    optimizer="adam", learningRate=0.003, batchSize=32, epochs=15, seed=11)
    est = KerasEstimator(**{**settings, **params})
    return Pipeline(stages=[VectorAssembler(inputCols=pixels, outputCol="raw"),
                            StandardScaler(inputCol="raw", outputCol="scaled"), est])


@pytest.fixture(scope="module")
def local_fit(digits_columns, tmp_path_factory):
    train, test = digits_columns
    store = str(tmp_path_factory.mktemp("store"))
    return digits_pipeline(train, backend="local", storePath=store).fit(train), store


@pytest.mark.horovod
def test_pipeline_horovod_two_processes_reaches_095(digits_columns, tmp_path):
    train, test = digits_columns
    model = digits_pipeline(train, backend="horovod", numProc=2, storePath=str(tmp_path)).fit(train)
    keras_model = model.stages[-1]
    assert isinstance(keras_model, KerasModel)
    assert accuracy(model.transform(test)) >= 0.95
    history = keras_model.getHistory()
    assert len(history["loss"]) == 15 and len(history["val_accuracy"]) == 15
    # each of the two ranks read its own half of the training rows, not all of them
    rows = keras_model.fitInfo.rows_read_per_rank
    total = train.count()
    assert len(rows) == 2 and 0.8 * total <= sum(rows) <= total  # the training rows: all but validationSplit
    assert all(abs(r - sum(rows) / 2) <= 0.1 * sum(rows) for r in rows), rows
    assert keras_model.fitInfo.data.reused is False


@pytest.mark.connect
def test_pipeline_local_backend_reaches_095(local_fit, digits_columns):
    model, _ = local_fit
    train, test = digits_columns
    assert accuracy(model.transform(test)) >= 0.95
    assert model.stages[-1].getHistory()["loss"][-1] < model.stages[-1].getHistory()["loss"][0]
    info = model.stages[-1].fitInfo  # the phases of the fit lie inside it, and add up to no more
    assert 0 < info.plan_seconds and info.plan_seconds + info.read_seconds + info.fit_seconds <= info.seconds


@pytest.mark.connect
def test_transform_keeps_columns_and_adds_typed_outputs(local_fit, digits_columns):
    model, _ = local_fit
    _, test = digits_columns
    out = model.transform(test)
    assert out.columns[:len(test.columns)] == test.columns
    assert out.schema["prediction"].dataType.simpleString() == "double"
    assert isinstance(out.schema["probability"].dataType, VectorUDT)
    row = out.select("probability", "prediction").first()
    assert row.probability.size == 10
    assert abs(float(row.probability.toArray().sum()) - 1.0) < 1e-5
    assert row.prediction == float(np.argmax(row.probability.toArray()))
    assert out.count() == test.count()


@pytest.mark.connect
def test_transform_errors_name_the_column_before_any_job(local_fit, digits_columns):
    model, _ = local_fit
    _, test = digits_columns
    keras_model = model.stages[-1]
    with pytest.raises(ValueError, match=r"`featuresCol` == 'scaled': no such column; the DataFrame has: px0"):
        keras_model.transform(test)
    scored = model.transform(test)
    with pytest.raises(ValueError, match=r"`predictionCol` == 'prediction': the DataFrame already has a column"):
        keras_model.transform(scored.drop("probability"))
    with pytest.raises(ValueError, match="holds no trained network"):
        KerasModel().transform(test)


def _worker_models(spark) -> list[list[str]]:
    """Per Python worker that a 2-partition stage reaches: the model digests it holds deserialized."""
    import pandas as pd

    def held(batches):
        from deepflash.io import keras_files

        for _ in batches:
            yield pd.DataFrame({"digests": [",".join(sorted(keras_files._LOADED))]})

    rows = spark.range(0, 2, 1, numPartitions=2).mapInPandas(held, "digests string").collect()
    return [r.digests.split(",") if r.digests else [] for r in rows]


@pytest.mark.connect
def test_transforms_carry_the_model_in_the_closure_and_workers_load_it_once(local_fit, digits_columns, tmp_path):
    import cloudpickle

    from deepflash.io.keras_files import model_digest
    from deepflash.ml.model import batch_predictor

    model, _ = local_fit
    _, test = digits_columns
    model.stages[-1].save(str(tmp_path / "stage"))
    keras_model = KerasModel.load(str(tmp_path / "stage"))  # a model that has not transformed yet
    data = keras_model.stateBytes()
    digest = model_digest(data)
    # what travels to the executors: the model's bytes once, with their digest, and little else
    shipped = cloudpickle.dumps(batch_predictor(data, digest, "multiclass", 64, 10, "scaled"))
    assert shipped.count(data) == 1 and digest.encode() in shipped and len(shipped) < len(data) + 4096
    scaled = model.transform(test).select("scaled")
    first = keras_model.transform(scaled).select("prediction").collect()
    second = keras_model.transform(scaled).select("prediction").collect()
    assert first == second
    # every Python worker that scored keeps exactly this model, deserialized once, for later tasks
    held = _worker_models(test.sparkSession)
    assert [digest] in held and all(h in ([], [digest]) for h in held), held
    # the model's transform-time columns stay settable
    renamed = keras_model.setPredictionCol("p").transform(scaled)
    assert [r.p for r in renamed.select("p").collect()] == [r.prediction for r in first]
    assert not hasattr(keras_model, "setOutputKind") and not hasattr(keras_model, "setEpochs")


def test_a_saved_model_without_its_network_fails_at_load_naming_the_file(local_fit, tmp_path):
    import shutil

    model, _ = local_fit
    model.stages[-1].save(str(tmp_path / "stage"))
    shutil.copytree(tmp_path / "stage", tmp_path / "torn")
    (tmp_path / "torn" / "keras" / "model.keras").unlink()
    with pytest.raises(FileNotFoundError, match=r"^KerasModel at .*torn was saved with keras/model.keras, which is "
                                                r"missing .*: the stage directory is incomplete"):
        KerasModel.load(str(tmp_path / "torn"))
    assert KerasModel.load(str(tmp_path / "stage")).getKerasModel() is not None


@pytest.mark.connect
def test_fit_from_a_worker_thread_uses_the_dataframes_session(digits_columns, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    train, test = digits_columns
    pipeline = digits_pipeline(train, backend="local", storePath=str(tmp_path / "store"), epochs=3)
    with ThreadPoolExecutor(max_workers=1) as pool:
        fitted = pool.submit(pipeline.fit, train).result(timeout=600)
    assert isinstance(fitted.stages[-1], KerasModel)
    assert accuracy(fitted.transform(test)) >= 0.8


@pytest.mark.connect
def test_pipeline_save_load_gives_identical_predictions(local_fit, digits_columns, tmp_path):
    model, _ = local_fit
    _, test = digits_columns
    path = str(tmp_path / "pipeline")
    model.save(path)
    loaded = PipelineModel.load(path)
    keras_loaded = loaded.stages[-1]
    assert isinstance(keras_loaded, KerasModel)
    assert keras_loaded.getHistory() == model.stages[-1].getHistory()
    assert keras_loaded.getNumClasses() == 10 and keras_loaded.getInputDim() == 64
    before = model.transform(test).select("probability", "prediction").collect()
    after = loaded.transform(test).select("probability", "prediction").collect()
    assert [r.prediction for r in before] == [r.prediction for r in after]
    np.testing.assert_array_equal(np.array([r.probability.toArray() for r in before]),
                                  np.array([r.probability.toArray() for r in after]))


@pytest.mark.connect
def test_unfitted_pipeline_with_estimator_round_trips(digits_columns, tmp_path):
    train, _ = digits_columns
    pipeline = digits_pipeline(train, backend="local", runId="abc", earlyStoppingPatience=2)
    path = str(tmp_path / "unfitted")
    pipeline.save(path)
    est = Pipeline.load(path).getStages()[-1]
    assert isinstance(est, KerasEstimator)
    assert (est.getRunId(), est.getEarlyStoppingPatience(), est.getLearningRate()) == ("abc", 2, 0.003)
    assert est.getLayers() == [{"type": "dense", "units": 64, "activation": "relu"}]


def test_second_fit_reuses_the_materialized_parquet(local_fit, digits_columns):
    model, store = local_fit
    train, _ = digits_columns
    again = digits_pipeline(train, backend="local", storePath=store, epochs=1).fit(train)
    assert again.stages[-1].fitInfo.data.reused is True
    assert again.stages[-1].fitInfo.data.train_url == model.stages[-1].fitInfo.data.train_url


def test_same_seed_repeats_the_run(digits, tmp_path):
    train, test = digits
    fits = [KerasEstimator(backend="local", epochs=3, seed=5, storePath=str(tmp_path)).fit(train) for _ in range(2)]
    probs = [np.array([r.probability.toArray() for r in m.transform(test).select("probability").collect()])
             for m in fits]
    np.testing.assert_allclose(probs[0], probs[1], atol=1e-6)
    assert fits[0].getHistory() == pytest.approx(fits[1].getHistory()) or \
        np.allclose(fits[0].getHistory()["loss"], fits[1].getHistory()["loss"])


def test_run_without_run_id_leaves_no_checkpoint(digits, tmp_path):
    train, _ = digits
    KerasEstimator(backend="local", epochs=1, storePath=str(tmp_path)).fit(train)
    runs = tmp_path / "runs"
    assert not runs.exists() or list(runs.iterdir()) == []


def test_regression_on_diabetes_beats_the_mean(spark, tmp_path):
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    df = frame(spark, d.data, d.target)
    train, test = df.randomSplit([0.8, 0.2], seed=1)
    assembler = VectorAssembler(inputCols=[c for c in df.columns if c != "label"], outputCol="raw")
    est = KerasEstimator(task="regression", featuresCol="scaled", learningRate=0.01, batchSize=16, epochs=60,
                         layers=[{"type": "dense", "units": 32, "activation": "relu"}], backend="local", seed=2,
                         storePath=str(tmp_path))
    model = Pipeline(stages=[assembler, StandardScaler(inputCol="raw", outputCol="scaled"), est]).fit(train)
    out = model.transform(test)
    assert "probability" not in out.columns
    mean = train.agg(F.avg("label")).first()[0]
    mse_model = out.agg(F.avg((F.col("prediction") - F.col("label")) ** 2)).first()[0]
    mse_mean = test.agg(F.avg((F.col("label") - F.lit(mean)) ** 2)).first()[0]
    assert mse_model < 0.75 * mse_mean, (mse_model, mse_mean)
    assert "mae" in model.stages[-1].getHistory()


def test_binary_task(spark, tmp_path):
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    df = frame(spark, d.data, d.target)
    train, test = df.randomSplit([0.8, 0.2], seed=1)
    assembler = VectorAssembler(inputCols=[c for c in df.columns if c != "label"], outputCol="raw")
    est = KerasEstimator(featuresCol="scaled", epochs=20, batchSize=16, backend="local", seed=4,
                         storePath=str(tmp_path))
    model = Pipeline(stages=[assembler, StandardScaler(inputCol="raw", outputCol="scaled"), est]).fit(train)
    keras_model = model.stages[-1]
    assert keras_model.getOutputKind() == "binary" and keras_model.getNumClasses() == 2
    assert output_shape(keras_model.getKerasModel()) == (None, 1)
    out = model.transform(test)
    assert accuracy(out) >= 0.92
    probs = np.array([r.probability.toArray() for r in out.select("probability").collect()])
    assert probs.shape[1] == 2
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


def test_reduce_lr_on_plateau_lowers_the_rate(digits, tmp_path):
    train, _ = digits
    # A rate this small moves val_loss by far less than ReduceLROnPlateau's min_delta: a plateau.
    model = KerasEstimator(backend="local", epochs=4, learningRate=1e-7, reduceLrPatience=1, reduceLrFactor=0.5,
                           storePath=str(tmp_path)).fit(train)
    lrs = model.getHistory()["lr"]
    assert lrs[0] == pytest.approx(1e-7)
    assert lrs[-1] < lrs[0]


def test_early_stopping_stops_and_keeps_the_best_epoch(spark, tmp_path):
    import pandas as pd
    import tensorflow as tf
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = (d.data / 16.0).astype(np.float32), d.target
    # validation rows marked by hand, so the test can score exactly the rows fit validated on
    is_val = np.arange(len(y)) % 5 == 0
    df = spark.createDataFrame(pd.DataFrame({"features": [row.tolist() for row in x.astype(np.float64)],
                                             "label": y.astype(np.float64), "isVal": is_val}))
    # adam at a rate this high gains for an epoch or two, then val_loss goes up and down
    model = KerasEstimator(backend="local", epochs=20, optimizer="adam", learningRate=0.05, batchSize=64,
                           earlyStoppingPatience=2, validationCol="isVal", seed=1,
                           storePath=str(tmp_path)).fit(df)
    val_loss = model.getHistory()["val_loss"]
    best = int(np.nanargmin(val_loss))
    assert len(val_loss) < 20 and best == len(val_loss) - 3, val_loss  # stopped 2 epochs after the best
    returned = float(tf.keras.losses.SparseCategoricalCrossentropy()(
        y[is_val], model.getKerasModel().predict(x[is_val], verbose=0)))
    assert returned == pytest.approx(val_loss[best], rel=1e-4)
    assert returned != pytest.approx(val_loss[-1], rel=1e-3), "the model holds the last epoch's weights"


def test_set_model_trains_a_hand_built_network(digits, tmp_path):
    import tensorflow as tf

    train, test = digits
    inputs = tf.keras.Input(shape=(64,))
    x = tf.keras.layers.Reshape((8, 8, 1))(inputs)
    x = tf.keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = tf.keras.layers.Flatten()(x)
    outputs = tf.keras.layers.Dense(10, activation="softmax")(x)
    est = KerasEstimator(backend="local", epochs=10, batchSize=32, seed=1, storePath=str(tmp_path))
    est.setModel(tf.keras.Model(inputs, outputs))
    model = est.fit(train)
    assert any(isinstance(layer, tf.keras.layers.Conv2D) for layer in model.getKerasModel().layers)
    assert accuracy(model.transform(test)) >= 0.9
    bad = KerasEstimator(backend="local", storePath=str(tmp_path / "bad")).setModel(
        tf.keras.Sequential([tf.keras.Input(shape=(64,)), tf.keras.layers.Dense(3, activation="softmax")]))
    with pytest.raises(ValueError, match="3 output units"):
        bad.fit(train)


def test_scores_of_a_parquet_input_with_vector_columns_write_to_parquet(local_fit, digits_columns, spark, tmp_path):
    """Spark 4.3's columnar pandas-UDF input could not carry a Vector column (UNSUPPORTED_DATATYPE
    at write time); transform turns it off for the session where that conf exists."""
    model, _ = local_fit
    _, test = digits_columns
    keras_model = model.stages[-1]
    # the Parquet holds the assembled Vector column itself
    model.transform(test).drop("probability", "prediction").write.parquet(str(tmp_path / "in"))
    scored = keras_model.transform(spark.read.parquet(str(tmp_path / "in")))
    scored.write.parquet(str(tmp_path / "out"))
    back = spark.read.parquet(str(tmp_path / "out"))
    assert back.count() == test.count()
    assert {"probability", "prediction"} <= set(back.columns)
