"""One filesystem layer on a real SparkSession: Spark's path rule everywhere, dbfs:/, data identity."""
from __future__ import annotations

import os
import shutil
import uuid

import numpy as np
import pytest
from pyspark.ml import Pipeline
from pyspark.ml.feature import StandardScaler
from pyspark.sql import functions as F

from deepflash import KerasEstimator
from deepflash.io import atomic, fs
from helpers import accuracy


def test_paths_without_a_scheme_follow_fs_default_fs(spark):
    """The qualification goes through Hadoop: with an HDFS default FS a plain path is on HDFS."""
    jvm = spark.sparkContext._jvm
    conf = jvm.org.apache.hadoop.conf.Configuration(spark.sparkContext._jsc.hadoopConfiguration())
    conf.set("fs.defaultFS", "hdfs://localhost:8020")
    user = jvm.java.lang.System.getProperty("user.name")
    assert fs.qualify("/models/m", conf) == "hdfs://localhost:8020/models/m"
    assert fs.qualify("models/m", conf) == f"hdfs://localhost:8020/user/{user}/models/m"
    assert fs.qualify("file:/models/m", conf) == "file:///models/m"
    # the session's own default FS is the local one
    assert fs.qualify("/models/m") == "file:///models/m"


@pytest.mark.slow
def test_relative_save_keeps_the_model_in_one_directory(spark, digits, tmp_path, monkeypatch):
    """A relative path means the same place to Spark's metadata writer and to the Keras file writer.

    Spark resolves it against the JVM's working directory; the Python process here runs in
    another one. Before the filesystem layer the Keras file went to Python's cwd and the
    metadata to the JVM's: the model was split in two and loaded without its network.
    """
    train, test = digits
    model = KerasEstimator(backend="local", epochs=2, seed=1, storePath=str(tmp_path / "store")).fit(train)
    name = f"deepflash-test-model-{uuid.uuid4().hex[:8]}"
    jvm_cwd = spark.sparkContext._jvm.java.lang.System.getProperty("user.dir")
    monkeypatch.chdir(tmp_path)  # Python's cwd differs from the JVM's from here on
    try:
        model.write().save(name)
        saved = os.path.join(jvm_cwd, name)
        assert any(n.startswith("part-") for n in os.listdir(os.path.join(saved, "metadata")))
        assert os.path.isfile(os.path.join(saved, "keras", "model.keras"))
        assert not (tmp_path / name).exists()
        loaded = type(model).load(name)
        a = np.array([r.probability.toArray() for r in model.transform(test).select("probability").collect()])
        b = np.array([r.probability.toArray() for r in loaded.transform(test).select("probability").collect()])
        np.testing.assert_array_equal(a, b)
    finally:
        shutil.rmtree(os.path.join(jvm_cwd, name), ignore_errors=True)


@pytest.mark.slow
def test_dbfs_store_path_writes_through_the_fuse_mount(digits, tmp_path, monkeypatch):
    monkeypatch.setenv(fs.DBFS_ROOT_ENV, str(tmp_path / "dbfs"))
    train, _ = digits
    model = KerasEstimator(backend="local", epochs=1, seed=1, storePath="dbfs:/ml/deepflash").fit(train)
    assert model.fitInfo["data"]["train_url"].startswith(f"file://{tmp_path}/dbfs/ml/deepflash/data/")
    data_dirs = os.listdir(tmp_path / "dbfs" / "ml" / "deepflash" / "data")
    assert len(data_dirs) == 1 and (tmp_path / "dbfs" / "ml" / "deepflash" / "data" / data_dirs[0] /
                                     atomic.SUCCESS_MARKER).exists()


def _doubled(df):
    return df.unionByName(df)


@pytest.mark.slow
def test_datasets_with_duplicated_rows_never_share_materialized_data(digits, tmp_path):
    """Regression: XOR-combined row hashes made every dataset whose rows all appear twice hash to
    the same value, so B was trained on A's materialized copy (0.02 accuracy on B)."""
    train, _ = digits
    a = _doubled(train)
    b = _doubled(train.withColumn("label", (F.col("label") + 1) % 10))  # same rows, other labels
    assert a.count() == b.count()
    store = str(tmp_path / "store")
    settings = dict(backend="local", epochs=8, batchSize=32, learningRate=0.003, seed=2, storePath=store,
                    layers=[{"type": "dense", "units": 64, "activation": "relu"}], featuresCol="scaled")
    scaler = StandardScaler(inputCol="features", outputCol="scaled")
    model_a = Pipeline(stages=[scaler, KerasEstimator(**settings)]).fit(a)
    model_b = Pipeline(stages=[scaler, KerasEstimator(**settings)]).fit(b)
    assert model_a.stages[-1].fitInfo["data"]["train_url"] != model_b.stages[-1].fitInfo["data"]["train_url"]
    assert model_b.stages[-1].fitInfo["data"]["reused"] is False
    assert accuracy(model_b.transform(b)) >= 0.9
