"""Where a job's rows come from: the Spark session from the ``spark`` section, the ``data`` section's
train/test DataFrames, and the Pipeline stages that turn raw columns into the estimator's input.

Example:
    spark = spark_session(config)
    train, test = load_data(spark, config.get("data") or {})
"""
from __future__ import annotations

import os


def spark_session(config: dict):
    """The SparkSession for a job: the config's ``spark.master`` (unless spark-submit set one) and ``spark.conf``.

    Args:
        config: a validated job config.
    """
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("deepflash")
    spark_conf = config.get("spark") or {}
    # spark-submit's --master wins; the config's master applies when the job is started without
    # spark-submit (e.g. `deepflash train`). A driver started by spark-submit finds its JVM through
    # PYSPARK_GATEWAY_PORT; SparkConf() cannot tell, as it is read before that JVM is reached.
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ or SparkConf().contains("spark.master")
    if spark_conf.get("master") and not submitted:
        builder = builder.master(spark_conf["master"])
    for key, value in (spark_conf.get("conf") or {}).items():
        builder = builder.config(key, str(value))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def load_data(spark, data: dict):
    """(train, test) DataFrames for the ``data`` section.

    Args:
        spark: the job's SparkSession.
        data: the config's ``data`` section (``source``, ``path``, ``table``, ``test_fraction``, ``seed``, ``limit``).
    """
    from deepflash import datasets

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
