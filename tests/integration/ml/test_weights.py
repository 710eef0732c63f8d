"""`weightCol` end to end: weights change what the model learns, on every reader and read mode and
on two Horovod processes; val_loss is weighted; bad weights fail before anything is written."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StructField, StructType

from deepflash import KerasEstimator
from deepflash.data.pipeline import encode_targets
from deepflash.data.readers import get_reader
from helpers import fails_cleanly

# The readers this profile has (the modern profile installs no Petastorm).
READERS = ("arrow", "petastorm") if importlib.util.find_spec("petastorm") else ("arrow",)

DROPPED = 3  # the digit that gets weight 0
DIGITS = dict(layers=[{"type": "dense", "units": 32, "activation": "relu"}], epochs=8, batchSize=32,
              learningRate=0.01, seed=5, validationSplit=0.2, weightCol="w")


@pytest.fixture(scope="module")
def weighted_digits(digits):
    train, test = digits
    return train.withColumn("w", F.when(F.col("label") == DROPPED, 0.0).otherwise(1.0)).cache(), test


@pytest.fixture(scope="module")
def digit_fits(weighted_digits, tmp_path_factory):
    """One fit per reader and read mode, on one store (the data is materialized once)."""
    train, _ = weighted_digits
    store = str(tmp_path_factory.mktemp("store"))
    fits = {}
    for reader in READERS:
        for mode in ("memory", "stream"):
            fits[reader, mode] = KerasEstimator(backend="local", reader=reader, readMode=mode, storePath=store,
                                                shuffleBufferRows=300, **DIGITS).fit(train)
    return fits, store


def predicted(model, df) -> np.ndarray:
    return np.array([r["prediction"] for r in model.transform(df).select("prediction").collect()])


@pytest.mark.parametrize("reader, mode", [
    ("arrow", "memory"), ("arrow", "stream"), pytest.param("petastorm", "memory", marks=pytest.mark.petastorm),
    pytest.param("petastorm", "stream", marks=pytest.mark.petastorm)])
def test_a_class_of_weight_zero_is_never_predicted(digit_fits, weighted_digits, reader, mode):
    fits, _ = digit_fits
    model = fits[reader, mode]
    assert model.fitInfo.read_mode == mode
    _, test = weighted_digits
    labels = np.array([r["label"] for r in test.select("label").collect()])
    preds = predicted(model, test)
    assert (labels == DROPPED).sum() >= 25  # the class is there to be predicted ...
    assert (preds == DROPPED).sum() <= 2    # ... but the model learned nothing of it
    others = labels != DROPPED
    assert (preds[others] == labels[others]).mean() >= 0.85  # and the rest well


def test_weighted_data_is_materialized_once_and_apart_from_unweighted(digit_fits, weighted_digits):
    fits, store = digit_fits
    runs = list(fits.values())
    assert runs[0].fitInfo.data.reused is False
    assert all(m.fitInfo.data.reused for m in runs[1:])  # reader and read mode do not change the data
    train, _ = weighted_digits
    plain = KerasEstimator(backend="local", storePath=store, **{**DIGITS, "epochs": 1, "weightCol": ""}).fit(train)
    assert plain.fitInfo.data.reused is False  # unweighted data is not the weighted copy
    assert plain.fitInfo.data.train_url != runs[0].fitInfo.data.train_url
    assert get_reader("arrow").load(plain.fitInfo.data.train_url).weights is None
    heavier = train.withColumn("w", F.when(F.col("label") == DROPPED, 0.0).otherwise(2.0))
    doubled = KerasEstimator(backend="local", storePath=store, **{**DIGITS, "epochs": 1}).fit(heavier)
    assert doubled.fitInfo.data.reused is False  # other weights, other data


def test_val_loss_is_weighted_and_accuracy_is_not(digit_fits):
    """The history's val_loss is the mean over validation rows of weight x loss (the training loss's
    definition); val_accuracy counts every row."""
    fits, _ = digit_fits
    model = fits["arrow", "memory"]
    val = get_reader("arrow").load(model.fitInfo.data.val_url)
    assert val.weights is not None and (val.weights == 0).sum() >= 5
    np.testing.assert_array_equal(val.weights, np.where(val.labels == DROPPED, 0.0, 1.0))
    net = model.getKerasModel()
    net.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"], weighted_metrics=[])
    y = encode_targets(val.labels, "sparse", 10)
    weighted = net.evaluate(val.features, y, sample_weight=val.weights, batch_size=1024, verbose=0, return_dict=True)
    unweighted = net.evaluate(val.features, y, batch_size=1024, verbose=0, return_dict=True)
    history = model.getHistory()
    assert history["val_loss"][-1] == pytest.approx(weighted["loss"], rel=1e-5)
    assert abs(history["val_loss"][-1] - unweighted["loss"]) > 0.1  # so the weights did count
    assert history["val_accuracy"][-1] == pytest.approx(unweighted["accuracy"], abs=1e-6)


# --- class weights on an imbalanced task -------------------------------------------------------

def imbalanced(spark, seed: int, majority: int, minority: int):
    """Two overlapping Gaussians 1.5 standard deviations apart, minority (label 1) shifted along the
    diagonal; weight 10 on the minority rows balances a 10:1 ratio."""
    rng = np.random.default_rng(seed)
    shift = 1.5 / np.sqrt(2)
    x = np.concatenate([rng.normal(size=(majority, 2)), rng.normal(size=(minority, 2)) + shift])
    y = np.concatenate([np.zeros(majority), np.ones(minority)])
    schema = StructType([StructField("features", VectorUDT()), StructField("label", DoubleType()),
                         StructField("w", DoubleType())])
    rows = [(Vectors.dense(f), float(t), 10.0 if t else 1.0) for f, t in zip(x, y, strict=True)]
    return spark.createDataFrame(rows, schema)


def recall(model, df, label: float) -> float:
    rows = model.transform(df).where(F.col("label") == label).select("prediction").collect()
    return float(np.mean([r["prediction"] == label for r in rows]))


def test_balancing_weights_raise_minority_recall(spark, tmp_path):
    """Unweighted, the best rule for a 10:1 prior calls few minority rows (recall ~0.2); weighted 10:1
    it is the balanced rule (recall ~0.77, majority recall ~0.77)."""
    train = imbalanced(spark, 0, 2000, 200).cache()
    test = imbalanced(spark, 1, 1000, 1000).cache()
    settings = dict(backend="local", layers=[{"type": "dense", "units": 8, "activation": "relu"}], epochs=15,
                    batchSize=64, learningRate=0.01, seed=2, validationSplit=0.0, storePath=str(tmp_path))
    plain = KerasEstimator(**settings).fit(train)
    balanced = KerasEstimator(weightCol="w", **settings).fit(train)
    plain_recall, balanced_recall = recall(plain, test, 1.0), recall(balanced, test, 1.0)
    assert plain_recall <= 0.45, plain_recall  # the premise: unweighted, the minority is under-predicted
    assert balanced_recall >= plain_recall + 0.25, (plain_recall, balanced_recall)
    assert recall(balanced, test, 0.0) >= 0.6  # not by calling everything minority


# --- errors ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rows(spark):
    return spark.createDataFrame([(Vectors.dense([0.1 * i, 1.0 - 0.1 * i]), float(i % 2), 1.0) for i in range(10)],
                                 StructType([StructField("features", VectorUDT()), StructField("label", DoubleType()),
                                             StructField("w", DoubleType())]))


def local(**kw):
    return KerasEstimator(backend="local", epochs=1, validationSplit=0.0, **kw)


@pytest.mark.parametrize("column, error, match", [
    (None, ValueError, r"`weightCol` == 'weight': no such column; the DataFrame has: features \(vector\), "
                       r"label \(double\), w \(double\)"),
    (lambda: F.lit("heavy"), TypeError, r"`weightCol` column 'weight' must be numeric, found string"),
    (lambda: F.lit(True), TypeError, r"`weightCol` column 'weight' must be numeric, found boolean"),
])
def test_column_errors_come_before_any_job(spark, rows, store_dir, column, error, match):
    df = rows if column is None else rows.withColumn("weight", column())
    fails_cleanly(spark, store_dir, df, local(weightCol="weight"), error, match, no_job=True)


@pytest.mark.parametrize("weight, match", [
    (lambda: F.when(F.col("label") == 1, -2.0).otherwise(1.0),
     r"`weightCol` column 'w' has 5 negative value\(s\) \(min -2\.0\); weights must be >= 0"),
    (lambda: F.when(F.col("label") == 1, float("nan")).otherwise(1.0),
     r"`weightCol` column 'w' has null or NaN values in 5 of 10 rows; expected a weight >= 0 in every row"),
    (lambda: F.when(F.col("label") == 1, None).otherwise(F.lit(1.0)),
     r"`weightCol` column 'w' has null or NaN values in 5 of 10 rows"),
    (lambda: F.lit(0.0), r"`weightCol` column 'w' is 0 in all 10 training rows: expected at least one weight > 0"),
])
def test_value_errors_come_before_any_write(spark, rows, store_dir, weight, match):
    fails_cleanly(spark, store_dir, rows.withColumn("w", weight()), local(weightCol="w"), ValueError, match,
                  no_job=False)


# --- two Horovod processes ---------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.horovod
def test_horovod_two_processes(weighted_digits, tmp_path):
    """Both ranks train on weighted batches, and the sharded val_loss is the weighted loss on every
    validation row."""
    train, test = weighted_digits
    model = KerasEstimator(backend="horovod", numProc=2, storePath=str(tmp_path), **DIGITS).fit(train)
    assert len(model.fitInfo.rows_read_per_rank) == 2
    assert (predicted(model, test) == DROPPED).sum() <= 2
    val = get_reader("arrow").load(model.fitInfo.data.val_url)
    net = model.getKerasModel()
    net.compile(loss="sparse_categorical_crossentropy", weighted_metrics=[])
    full = net.evaluate(val.features, encode_targets(val.labels, "sparse", 10), sample_weight=val.weights,
                        batch_size=1024, verbose=0, return_dict=True)
    assert model.getHistory()["val_loss"][-1] == pytest.approx(full["loss"], rel=1e-5)
