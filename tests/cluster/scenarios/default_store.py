"""Cluster scenario: a distributed fit (the barrier backend, which both profiles have) with no storePath.
The default store would sit in the driver's local temp dir, which the executors cannot reach: the fit must
fail fast and say so.

Usage: spark-submit default_store.py
"""
import json
import time

from pyspark.sql import SparkSession

from deepflash import KerasEstimator
from deepflash.data.datasets import load_digits

spark = SparkSession.builder.getOrCreate()
spark.sparkContext.setLogLevel("WARN")
train = load_digits(spark)
started = time.time()
try:
    KerasEstimator(backend="barrier", numProc=2, epochs=2, seed=1).fit(train)
    outcome = {"type": None, "message": None}
except Exception as e:  # noqa: BLE001 - the scenario reports whatever was raised
    outcome = {"type": type(e).__name__, "message": str(e)[:4000]}
outcome["seconds"] = time.time() - started
print("RESULT " + json.dumps(outcome))
spark.stop()
