"""Cluster scenario: OptunaSearch with 2 parallel workers (Spark tasks) sharing a JournalStorage file
in the shared store, with median pruning; then a RAN trained in one executor task and scored on the
executors.

Usage: spark-submit optuna_ran.py SHARED
"""
import json
import sys

import numpy as np
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from deepflash import KerasEstimator, OptunaSearch, RANEstimator
from deepflash.data.datasets import from_numpy, load_digits

shared = sys.argv[1]
spark = SparkSession.builder.getOrCreate()
spark.sparkContext.setLogLevel("WARN")
train, test = load_digits(spark).randomSplit([0.8, 0.2], seed=7)
search = OptunaSearch(
    estimator=KerasEstimator(backend="local", storePath=shared + "/store-optuna", epochs=5, seed=1),
    space={"learningRate": {"loguniform": [1e-3, 3e-2]}}, sampler="tpe", pruner="median", maxEvals=6,
    parallelism=2, metric="val_accuracy", mode="max", seed=0, track=False)
found = search.fit(train)
accuracy = found.transform(test).agg(F.avg((F.col("prediction") == F.col("label")).cast("double"))).first()[0]

x = np.random.default_rng(1).uniform(0, 2 * np.pi, (300, 1))
sine = from_numpy(spark, x, np.sin(x[:, 0]))
ran = RANEstimator(epochs=10, errorThreshold=0.05).fit(sine)
mae = ran.transform(sine).agg(F.avg(F.abs(F.col("prediction") - F.col("label")))).first()[0]
print("RESULT " + json.dumps({"trials": len(found.trials), "statuses": sorted(found.trials["status"].tolist()),
                              "errors": [str(e)[:500] for e in found.trials.get("error", []) if e],
                              "accuracy": accuracy, "ran_units": ran.numUnits, "ran_mae": mae}, default=str))
spark.stop()
