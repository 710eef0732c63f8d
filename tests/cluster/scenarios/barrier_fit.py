"""Cluster scenario: fit digits with backend="barrier" (TensorFlow's MultiWorkerMirroredStrategy,
2 processes, no Horovod), store in the shared dir, then save the Pipeline, load it back and score.
Then fit again on PyTorch (kerasBackend="torch": torch.distributed across the workers) with
readMode="stream" (the ranks stream their shards from the shared store through the shuffle buffer)
and score that model too. Reports the executor Pythons that the first fit's
executor check saw (the cached answer: no job).

Usage: spark-submit barrier_fit.py SHARED
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
from deepflash.backends.executor_env import check_executors
from deepflash.data.datasets import load_digits

shared = sys.argv[1]
spark = SparkSession.builder.getOrCreate()
spark.sparkContext.setLogLevel("WARN")
train, test = load_digits(spark).randomSplit([0.8, 0.2], seed=7)
est = KerasEstimator(backend="barrier", numProc=2, storePath=shared + "/barrier-store",
                     layers=[{"type": "dense", "units": 64, "activation": "relu"}], learningRate=0.01,
                     batchSize=32, epochs=12, seed=11)
started = time.time()
model = Pipeline(stages=[est]).fit(train)
fit_seconds = time.time() - started
checked = check_executors(spark)
path = os.path.join(shared, "barrier-model")
model.write().overwrite().save(path)
loaded = PipelineModel.load(path)


def scored(m):
    out = m.transform(test.withColumn("id", F.monotonically_increasing_id()))
    return {r["id"]: (r["prediction"], r["p"]) for r in out
            .select("id", "prediction", vector_to_array("probability").alias("p")).collect()}


a, b = scored(model), scored(loaded)
labels = {r["id"]: r["label"] for r in test.withColumn("id", F.monotonically_increasing_id()).collect()}
accuracy = sum(a[i][0] == labels[i] for i in a) / len(a)
streamed = est.copy({est.readMode: "stream", est.shuffleBufferRows: 200, est.kerasBackend: "torch"}).fit(train)
s = scored(streamed)
print("RESULT " + json.dumps({
    "accuracy": accuracy, "fit_seconds": fit_seconds, "rows": len(a),
    "equal_predictions": sum(a[i][0] == b[i][0] for i in a),
    "max_abs_probability_diff": max(max(abs(x - y) for x, y in zip(a[i][1], b[i][1], strict=True)) for i in a),
    "epochs": len(model.stages[-1].getHistory()["loss"]),
    "checked_workdirs": [env.workdir for env in checked],
    "keras_backend": model.stages[-1].fitInfo.keras_backend,
    "stream": {"keras_backend": streamed.fitInfo.keras_backend, "read_mode": streamed.fitInfo.read_mode,
               "rows_read_per_rank": streamed.fitInfo.rows_read_per_rank,
               "reused": streamed.fitInfo.data["reused"], "accuracy": sum(s[i][0] == labels[i] for i in s) / len(s),
               "epochs": len(streamed.getHistory()["loss"])}}))
spark.stop()
