"""Cluster scenario: HyperoptSearch (TPE) with SparkTrials, 2 trials at once on the executors, the
store in the shared dir.

Usage: spark-submit search.py SHARED
"""
import json
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from deepflash import HyperoptSearch, KerasEstimator
from deepflash.data.datasets import load_digits

shared = sys.argv[1]
spark = SparkSession.builder.getOrCreate()
spark.sparkContext.setLogLevel("WARN")
train, test = load_digits(spark).randomSplit([0.8, 0.2], seed=7)
search = HyperoptSearch(
    estimator=KerasEstimator(backend="local", storePath=shared + "/store3", epochs=5, seed=1, featuresCol="features"),
    space={"learningRate": {"loguniform": [1e-3, 1e-2]}}, algo="tpe", maxEvals=4, parallelism=2,
    metric="val_accuracy", mode="max", seed=0, track=False)
found = search.fit(train)
accuracy = found.transform(test).agg(F.avg((F.col("prediction") == F.col("label")).cast("double"))).first()[0]
print("RESULT " + json.dumps({"trials": len(found.trials), "ok": int((found.trials["status"] == "ok").sum()),
                              "errors": [str(e)[:500] for e in found.trials.get("error", []) if e],
                              "best_params": found.bestParams, "accuracy": accuracy}, default=str))
spark.stop()
