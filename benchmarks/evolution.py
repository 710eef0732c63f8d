"""Evolutionary search on a sine wave: the evolved network against a hand-picked LSTM and the
persistence baseline on a held-out stretch, and the search's wall time with 1 and 2 parallel
evaluations (same seed, so the same individuals are evaluated).

Run: .venv/bin/python benchmarks/evolution.py [output_dir]
"""
from __future__ import annotations

import json
import logging
import os
import sys

import numpy as np
import pandas as pd

PERIOD, STEPS, TRAIN_STEPS = 25, 600, 480


def main(out: str) -> None:
    from pyspark.sql import SparkSession

    from deepflash import EvolutionarySearch, KerasEstimator
    from deepflash.data.datasets import from_numpy
    from deepflash.ml.timeseries import window_arrays
    from deepflash.reporting.plots import generations

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    os.makedirs(out, exist_ok=True)
    spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    rng = np.random.default_rng(0)
    series = np.sin(2 * np.pi * np.arange(STEPS) / PERIOD) + 0.02 * rng.standard_normal(STEPS)
    train_df = spark.createDataFrame(pd.DataFrame({"t": np.arange(TRAIN_STEPS), "value": series[:TRAIN_STEPS]}))

    def estimator() -> KerasEstimator:
        return KerasEstimator(backend="local", epochs=30, batchSize=32, learningRate=0.01, seed=0,
                              storePath=os.path.join(out, "store"))

    def test_mae(model, look_back: int) -> float:
        x, y = window_arrays(series[TRAIN_STEPS - look_back:], look_back)
        scored = model.transform(from_numpy(spark, x.reshape(len(x), -1), y)).toPandas()
        return float(np.mean(np.abs(scored["prediction"] - scored["label"])))

    # Warm both Python workers (TensorFlow imported, Keras traced once) so that neither timed run
    # pays the workers' start-up.
    EvolutionarySearch(estimator=estimator(), orderBy="t", valueCols=["value"], populationSize=2, generations=0,
                       parallelism=2, searchEpochs=1, refit=False, track=False).fit(train_df)
    runs = {}
    for parallelism in (1, 2):
        search = EvolutionarySearch(estimator=estimator(), problem="trained", orderBy="t", valueCols=["value"],
                                    populationSize=6, generations=3, parallelism=parallelism, maxLookBack=8,
                                    maxLayers=2, maxUnits=16, layerTypes=["lstm", "dense"],
                                    activations=["tanh", "relu"], searchEpochs=8, refit=parallelism == 2,
                                    track=False, seed=1)
        found = search.fit(train_df)
        # The evaluations' wall time (the refit, done only once, is left out).
        runs[parallelism] = (found, float(found.trials["seconds"].sum()))
    found, _ = runs[2]
    arch = found.architecture()
    plot = generations(found.trials.to_dict(orient="records"), os.path.join(out, "generations.png"),
                       fitness="validation MAE", title="Evolutionary search on a sine wave")
    hand_lb = 8
    x, y = window_arrays(series[:TRAIN_STEPS], hand_lb)
    hand = estimator().setLayers([{"type": "lstm", "units": 16}]).setInputShape([hand_lb, 1]).setTask("regression")
    hand_model = hand.fit(from_numpy(spark, x.reshape(len(x), -1), y))
    xp, yp = window_arrays(series[TRAIN_STEPS - 1:], 1)
    summary = {
        "evolved": {**arch.as_dict(), "fitness_val_mae": found.getBestFitness(),
                    "test_mae": test_mae(found, arch.look_back)},
        "hand_picked_lstm": {"look_back": hand_lb, "layers": [1, 16, 1], "test_mae": test_mae(hand_model, hand_lb)},
        "persistence": {"test_mae": float(np.mean(np.abs(xp[:, -1, 0] - yp)))},
        "search_seconds": {"parallelism_1": runs[1][1], "parallelism_2": runs[2][1],
                           "speedup": runs[1][1] / runs[2][1]},
        "same_runs": runs[1][0].trials["best"].tolist() == runs[2][0].trials["best"].tolist(),
        "evaluations": int(found.trials["evaluated"].sum()),
        "generations": found.trials.to_dict(orient="records"),
        "plot": plot,
    }
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, default=float)
    print(json.dumps({k: v for k, v in summary.items() if k != "generations"}, indent=1, default=float))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "output/bench_evolution")
