"""Cluster scenario: the searches across the executors, in one driver, the stores in the shared dir:

- ``hyperopt``: HyperoptSearch (TPE) with SparkTrials, 2 trials at once on the executors;
- ``optuna_ran``: OptunaSearch with 2 parallel workers (Spark tasks) sharing a JournalStorage file
  in the shared store, with median pruning; then a RAN trained in one executor task and scored on
  the executors;
- ``evolution``: MAE random sampling of two architectures (one Spark task each), then an
  EvolutionarySearch (trained problem, 2 evaluations at a time) whose best network predicts a
  held-out stretch of the sine wave better than persistence.

Usage: spark-submit searches.py SHARED
"""
import json
import sys

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from deepflash import EvolutionarySearch, HyperoptSearch, KerasEstimator, OptunaSearch, RANEstimator
from deepflash.data.datasets import from_numpy, load_digits
from deepflash.evolution.sampling import sample_architectures
from deepflash.ml.timeseries import window_arrays

shared = sys.argv[1]
spark = SparkSession.builder.getOrCreate()
spark.sparkContext.setLogLevel("WARN")
train, test = load_digits(spark).randomSplit([0.8, 0.2], seed=7)


def accuracy(model):
    return model.transform(test).agg(F.avg((F.col("prediction") == F.col("label")).cast("double"))).first()[0]


def errors(found):
    return [str(e)[:500] for e in found.trials.get("error", []) if e]


def hyperopt():
    found = HyperoptSearch(
        estimator=KerasEstimator(backend="local", storePath=shared + "/store3", epochs=5, seed=1,
                                 featuresCol="features"),
        space={"learningRate": {"loguniform": [1e-3, 1e-2]}}, algo="tpe", maxEvals=4, parallelism=2,
        metric="val_accuracy", mode="max", seed=0, track=False).fit(train)
    return {"trials": len(found.trials), "ok": int((found.trials["status"] == "ok").sum()), "errors": errors(found),
            "best_params": found.bestParams, "accuracy": accuracy(found)}


def optuna_ran():
    found = OptunaSearch(
        estimator=KerasEstimator(backend="local", storePath=shared + "/store-optuna", epochs=5, seed=1),
        space={"learningRate": {"loguniform": [1e-3, 3e-2]}}, sampler="tpe", pruner="median", maxEvals=6,
        parallelism=2, metric="val_accuracy", mode="max", seed=0, track=False).fit(train)
    x = np.random.default_rng(1).uniform(0, 2 * np.pi, (300, 1))
    sine = from_numpy(spark, x, np.sin(x[:, 0]))
    ran = RANEstimator(epochs=10, errorThreshold=0.05).fit(sine)
    mae = ran.transform(sine).agg(F.avg(F.abs(F.col("prediction") - F.col("label")))).first()[0]
    return {"trials": len(found.trials), "statuses": sorted(found.trials["status"].tolist()), "errors": errors(found),
            "accuracy": accuracy(found), "ran_units": ran.numUnits, "ran_mae": mae}


def evolution():
    series = np.sin(2 * np.pi * np.arange(600) / 25)
    sampled = sample_architectures(spark, series, [(2, [2, 2]), (4, [8])], samples=50, seed=0)
    stretch = spark.createDataFrame(pd.DataFrame({"t": np.arange(480), "value": series[:480]}))
    est = KerasEstimator(backend="local", epochs=25, batchSize=32, learningRate=0.01, seed=0,
                         storePath=shared + "/store-evolution")
    found = EvolutionarySearch(estimator=est, problem="trained", orderBy="t", valueCols=["value"], populationSize=4,
                               generations=2, parallelism=2, maxLookBack=6, maxLayers=2, maxUnits=8,
                               layerTypes=["dense", "lstm"], searchEpochs=6, track=False, seed=1).fit(stretch)
    look_back = found.getBestLookBack()
    x, y = window_arrays(series[480 - look_back:], look_back)
    scored = found.transform(from_numpy(spark, x.reshape(len(x), -1), y)).toPandas()
    return {"sampled": [r.to_dict() for r in sampled],
            "layers": found.getBestLayers(), "look_back": look_back, "fitness": found.getBestFitness(),
            "model_mae": float(np.mean(np.abs(scored["prediction"] - scored["label"]))),
            "persistence_mae": float(np.mean(np.abs(x[:, -1, 0] - y)))}


print("RESULT " + json.dumps({"hyperopt": hyperopt(), "optuna_ran": optuna_ran(), "evolution": evolution()},
                             default=str))
spark.stop()
