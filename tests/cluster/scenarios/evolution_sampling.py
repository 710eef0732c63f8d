"""Cluster scenario: MAE random sampling of two architectures (one Spark task each), then an
EvolutionarySearch (trained problem, 2 evaluations at a time) whose best network predicts a held-out
stretch of the sine wave better than persistence.

Usage: spark-submit evolution_sampling.py SHARED
"""
import json
import sys

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession

from deepflash import EvolutionarySearch, KerasEstimator
from deepflash.data.datasets import from_numpy
from deepflash.evolution.sampling import sample_architectures
from deepflash.ml.timeseries import window_arrays

shared = sys.argv[1]
spark = SparkSession.builder.getOrCreate()
spark.sparkContext.setLogLevel("WARN")
series = np.sin(2 * np.pi * np.arange(600) / 25)
sampled = sample_architectures(spark, series, [(2, [2, 2]), (4, [8])], samples=50, seed=0)

train = spark.createDataFrame(pd.DataFrame({"t": np.arange(480), "value": series[:480]}))
est = KerasEstimator(backend="local", epochs=25, batchSize=32, learningRate=0.01, seed=0,
                     storePath=shared + "/store-evolution")
found = EvolutionarySearch(estimator=est, problem="trained", orderBy="t", valueCols=["value"], populationSize=4,
                           generations=2, parallelism=2, maxLookBack=6, maxLayers=2, maxUnits=8,
                           layerTypes=["dense", "lstm"], searchEpochs=6, track=False, seed=1).fit(train)
look_back = found.getBestLookBack()
x, y = window_arrays(series[480 - look_back:], look_back)
scored = found.transform(from_numpy(spark, x.reshape(len(x), -1), y)).toPandas()
print("RESULT " + json.dumps({
    "sampled": [r.to_dict() for r in sampled],
    "layers": found.getBestLayers(), "look_back": look_back, "fitness": found.getBestFitness(),
    "model_mae": float(np.mean(np.abs(scored["prediction"] - scored["label"]))),
    "persistence_mae": float(np.mean(np.abs(x[:, -1, 0] - y)))}, default=str))
spark.stop()
