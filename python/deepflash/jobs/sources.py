"""Where a job's rows come from: the Spark session from the ``spark`` section, the ``data`` section's
train/test DataFrames (or, for the time-series jobs, its ordered series), and the Pipeline stages
that turn raw columns into the estimator's input.

Example:
    spark = spark_session(config)
    train, test = load_data(spark, config.get("data") or {})
"""
from __future__ import annotations

import os

import numpy as np

SINE_DEFAULTS = {"steps": 1000, "period": 100.0, "noise": 0.0, "seed": 0}


def spark_session(config: dict):
    """The SparkSession for a job: a Spark Connect session for ``spark.remote`` (``deepflash
    <job> --remote sc://host:15002``), else a classic one on the config's ``spark.master``
    (unless spark-submit set one); ``spark.conf`` either way. A driver JVM that this call starts
    has a spark-submit job's console (:func:`deepflash.jobs.console.driver_console_conf`): its log at
    WARN, without Spark's start-up INFO lines, and no stage progress bars, unless the user sets them.

    Args:
        config: a validated job config.
    """
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    from deepflash.jobs.console import driver_console_conf
    from deepflash.spark.session import is_connect

    builder = SparkSession.builder.appName("deepflash")
    spark_conf = config.get("spark") or {}
    user_conf = {key: str(value) for key, value in (spark_conf.get("conf") or {}).items()}
    if spark_conf.get("remote"):
        # A Connect client: the server's settings are its own; `spark.conf` sets the session's
        # runtime ones (pyspark skips, silently, those a running server cannot change).
        builder = builder.remote(spark_conf["remote"])
    else:
        # spark-submit's --master wins; the config's master applies when the job is started without
        # spark-submit (e.g. `deepflash train`). A driver started by spark-submit finds its JVM through
        # PYSPARK_GATEWAY_PORT; SparkConf() cannot tell, as it is read before that JVM is reached.
        submitted = "PYSPARK_GATEWAY_PORT" in os.environ or SparkConf().contains("spark.master")
        if spark_conf.get("master") and not submitted:
            builder = builder.master(spark_conf["master"])
        if not submitted:  # the JVM starts here: its log level is set now, before its start-up lines
            for key, value in driver_console_conf(user_conf).items():
                builder = builder.config(key, value)
    for key, value in user_conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if not is_connect(spark):
        # Classic only: the log level is the driver JVM's, through its SparkContext; a Connect
        # client has neither (the server logs at its own level).
        spark.sparkContext.setLogLevel("WARN")
    return spark


def load_data(spark, data: dict):
    """(train, test) DataFrames for the ``data`` section.

    Args:
        spark: the job's SparkSession.
        data: the config's ``data`` section (``source``, ``path``, ``table``, ``test_fraction``, ``seed``, ``limit``).
    """
    from deepflash.data import datasets

    source = data.get("source", "digits")
    test_fraction = float(data.get("test_fraction", 0.2))
    seed = int(data.get("seed", 0))
    if source == "fashion_mnist":
        kwargs = {"directory": data["path"]} if data.get("path") else {}
        train, test = (datasets.load_fashion_mnist(spark, "train", **kwargs),
                       datasets.load_fashion_mnist(spark, "test", **kwargs))
    elif source == "idx":
        train, test = datasets.load_idx(spark, data["path"], "train"), datasets.load_idx(spark, data["path"], "test")
    else:
        if source == "parquet":
            df = spark.read.parquet(data["path"])
        elif source == "table":
            df = spark.table(data["table"])
        else:
            df = datasets.load_digits(spark)
        train, test = df.randomSplit([1 - test_fraction, test_fraction], seed=seed)
    if data.get("limit"):
        train = train.limit(int(data["limit"]))
    return train, test


def pipeline_stages(estimator, data: dict) -> list:
    """The training Pipeline's stages: ``data.features`` as a list of columns is assembled into the
    estimator's features column first (so the saved model scores raw rows); ``data.features`` as
    one name and ``data.label`` set the estimator's columns.

    Args:
        estimator: the KerasEstimator to train (its columns are set here).
        data: the config's ``data`` section.
    """
    from pyspark.ml.feature import VectorAssembler

    if data.get("label"):
        estimator.setLabelCol(data["label"])
    features = data.get("features")
    if isinstance(features, list):
        return [VectorAssembler(inputCols=features, outputCol=estimator.getFeaturesCol(), handleInvalid="error"),
                estimator]
    if features:
        estimator.setFeaturesCol(features)
    return [estimator]


def load_series(data: dict) -> np.ndarray:
    """The ordered series of a time-series ``data`` section, as a ``(steps,)`` array.

    ``source: sine`` is ``sin(2 pi t / period) + noise * N(0, 1)`` for ``t = 0 .. steps - 1``,
    the noise drawn with NumPy from ``seed`` (defaults: 1,000 steps, period 100, no noise).
    The series is generated on the driver; the sampling tasks get it in their closure.

    Args:
        data: the config's ``data`` section.
    """
    source = data.get("source")
    if source != "sine":
        raise ValueError(f"data.source: a time-series job needs a series; expected 'sine', found {source!r}")
    settings = {**SINE_DEFAULTS, **{k: data[k] for k in SINE_DEFAULTS if k in data}}
    t = np.arange(settings["steps"], dtype=np.float64)
    values = np.sin(2 * np.pi * t / settings["period"])
    if settings["noise"] > 0:
        values = values + settings["noise"] * np.random.default_rng(settings["seed"]).standard_normal(len(t))
    return values
