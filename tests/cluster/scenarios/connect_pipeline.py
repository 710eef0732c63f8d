"""Cluster scenario, a Spark Connect client: fit digits with backend="barrier" (2 processes, Keras
on JAX: one jax.distributed job across the workers) through a Connect server whose driver runs on
the cluster, save the Pipeline to the shared dir, then load it in a new Connect session and score
the same rows. The client has no SparkContext: it is plain
``python``, not spark-submit.

Usage: python connect_pipeline.py sc://HOST:PORT SHARED
"""
import json
import os
import sys
import time

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from deepflash import KerasEstimator
from deepflash.data.datasets import load_digits
from deepflash.spark.session import is_connect

url, shared = sys.argv[1], sys.argv[2]
spark = SparkSession.builder.remote(url).getOrCreate()
assert is_connect(spark), type(spark)
train, test = load_digits(spark).randomSplit([0.8, 0.2], seed=7)
# The rows both sessions score, with an id: written once, read back by each session.
rows_path = os.path.join(shared, "connect-test-rows")
test.withColumn("id", F.monotonically_increasing_id()).write.mode("overwrite").parquet(rows_path)
est = KerasEstimator(backend="barrier", numProc=2, storePath=shared + "/connect-store",
                     layers=[{"type": "dense", "units": 64, "activation": "relu"}], learningRate=0.01,
                     batchSize=32, epochs=12, seed=11, kerasBackend="jax")
started = time.time()
model = Pipeline(stages=[est]).fit(train)
fit_seconds = time.time() - started
path = os.path.join(shared, "connect-model")
model.write().overwrite().save(path)


def scored(session, m):
    out = m.transform(session.read.parquet(rows_path))
    return {r["id"]: (r["label"], r["prediction"], r["p"]) for r in out
            .select("id", "label", "prediction", vector_to_array("probability").alias("p")).collect()}


a = scored(spark, model)
first_session = spark.session_id
epochs = len(model.stages[-1].getHistory()["loss"])
spark.stop()

# A new Connect session (a new session id on the same server) loads the saved Pipeline.
spark = SparkSession.builder.remote(url).create()
loaded = PipelineModel.load(path)
b = scored(spark, loaded)
print("RESULT " + json.dumps({
    "new_session": spark.session_id != first_session, "fit_seconds": fit_seconds, "rows": len(a),
    "loaded_rows": len(b), "accuracy": sum(label == pred for label, pred, _ in a.values()) / len(a),
    "equal_predictions": sum(a[i][1] == b[i][1] for i in a if i in b),
    "max_abs_probability_diff": max(max(abs(x - y) for x, y in zip(a[i][2], b[i][2], strict=True))
                                    for i in a if i in b),
    "epochs": epochs, "keras_backend": model.stages[-1].fitInfo.keras_backend}))
spark.stop()
