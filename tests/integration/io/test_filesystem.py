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


@pytest.mark.connect
def test_paths_without_a_scheme_follow_the_sessions_default_fs(spark, tmp_path, monkeypatch):
    """No JVM: the session's spark.hadoop.fs.defaultFS decides, by Hadoop's rule."""
    monkeypatch.delenv("HADOOP_CONF_DIR", raising=False)
    monkeypatch.delenv("SPARK_CONF_DIR", raising=False)
    monkeypatch.setenv("HADOOP_USER_NAME", "ana")
    monkeypatch.chdir(tmp_path)
    # the test session's own default FS is the local one
    assert fs.default_fs(spark) == "file:///"
    assert fs.qualify("/models/m", spark) == "file:///models/m"
    assert fs.qualify("models/m", spark) == f"file://{tmp_path}/models/m"
    spark.conf.set("spark.hadoop.fs.defaultFS", "hdfs://localhost:8020")
    try:
        assert fs.qualify("/models/m", spark) == "hdfs://localhost:8020/models/m"
        assert fs.qualify("models/m", spark) == "hdfs://localhost:8020/user/ana/models/m"
        assert fs.qualify("file:/models/m", spark) == "file:///models/m"
        assert fs.qualify("models/m", spark, local=True) == f"file://{tmp_path}/models/m"
    finally:
        spark.conf.unset("spark.hadoop.fs.defaultFS")
    assert fs.qualify("models/m", spark) == f"file://{tmp_path}/models/m"


@pytest.mark.slow
def test_relative_save_keeps_the_model_in_one_directory(spark, digits, tmp_path, monkeypatch):
    """A relative path means the same place to Spark's metadata writer and to the Keras file writer.

    The JVM's working directory differs from Python's here. Before the filesystem layer the Keras
    file went to Python's cwd and the metadata to the JVM's: the model was split in two and loaded
    without its network. Now both go where :func:`deepflash.io.fs.qualify` puts the path.
    """
    train, test = digits
    model = KerasEstimator(backend="local", epochs=2, seed=1, storePath=str(tmp_path / "store")).fit(train)
    name = f"deepflash-test-model-{uuid.uuid4().hex[:8]}"
    # classic only: the JVM's working directory, to show that nothing lands there
    jvm_cwd = spark.sparkContext._jvm.java.lang.System.getProperty("user.dir")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # Python's cwd differs from the JVM's from here on
    try:
        model.write().save(name)
        saved = fs.local_path(fs.qualify(name, spark))
        assert saved == str(work / name)
        assert any(n.startswith("part-") for n in os.listdir(os.path.join(saved, "metadata")))
        assert os.path.isfile(os.path.join(saved, "keras", "model.keras"))
        assert not os.path.exists(os.path.join(jvm_cwd, name))
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
