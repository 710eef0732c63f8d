"""Cluster scenario: a barrier fit whose rank 1 kills its own executor JVM at the start of epoch 4
(``DEEPFLASH_TEST_CRASH=...,kill=executor`` in the driver's environment, which the backend passes
to its ranks). The executor is lost; its worker starts a new one; Spark runs the training stage
again and the new attempt resumes from the checkpoint of epoch 3 in the shared store. No runId is
given, so the fit's internal run is removed at the end. Then the same fit again, uninterrupted
(the marker the hook left disarms it), to compare weights and history with.

Usage: spark-submit lost_executor.py SHARED
"""
import json
import os
import sys
import time

from pyspark.sql import SparkSession

from deepflash import KerasEstimator
from deepflash.data.datasets import load_digits

shared = sys.argv[1]
spark = SparkSession.builder.getOrCreate()
spark.sparkContext.setLogLevel("WARN")
train, test = load_digits(spark).randomSplit([0.8, 0.2], seed=7)
store = os.path.join(shared, "lost-executor-store")
est = KerasEstimator(backend="barrier", numProc=2, storePath=store,
                     layers=[{"type": "dense", "units": 64, "activation": "relu"}], learningRate=0.01,
                     batchSize=32, epochs=6, seed=11)
started = time.time()
model = est.fit(train)
seconds = time.time() - started
scored = model.transform(test).select("label", "prediction").collect()
reference = est.fit(train)
pairs = list(zip(model.getKerasModel().get_weights(), reference.getKerasModel().get_weights(), strict=True))
print("RESULT " + json.dumps({
    "reference_initial_epoch": reference.fitInfo["initial_epoch"],
    "same_history": model.getHistory() == reference.getHistory(),
    "max_abs_weight_diff": max(float(abs(a - b).max()) for a, b in pairs),
    "seconds": seconds, "initial_epoch": model.fitInfo["initial_epoch"],
    "epochs": len(model.getHistory()["loss"]),
    "accuracy": sum(r["label"] == r["prediction"] for r in scored) / len(scored),
    "run_dir_left": os.path.exists(os.path.join(store, "runs", model.fitInfo["run_id"]))}))
spark.stop()
