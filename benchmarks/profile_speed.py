"""Where the benchmark's missed time goes: a local second fit and KerasModel.transform, step by step.

    .venv/bin/python benchmarks/profile_speed.py [fit|transform|summary ...]

- ``fit``: a cProfile of a second ``fit`` (local backend, the benchmark's MLP, 54k Fashion-MNIST
  rows, 3 epochs) and its ``fitInfo`` (plan, read and train seconds);
- ``summary``: the parts of the validation pass, each as its own aggregation over the same rows;
- ``transform``: 70k rows into a noop sink, one step more at a time (scan, ``vector_to_array``,
  a pandas UDF that does nothing, one that concatenates, the whole ``transform``), against
  ``model.predict``.

Each Spark step runs twice and the second run is timed (Python workers warm). Run it on a quiet
machine: the README's Benchmark section quotes its figures.
"""
from __future__ import annotations

import cProfile
import os
import pstats
import sys
import time
from collections.abc import Iterator

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
# Run as a script, its own folder is on sys.path; the repository root holds the benchmarks package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql import types as T  # noqa: E402

from benchmarks.inference import do_nothing_udf, inference_rows, noop_seconds, predict_seconds  # noqa: E402
from benchmarks.suite import LAYERS  # noqa: E402
from deepflash import KerasEstimator, datasets  # noqa: E402
from deepflash.data.schema import features_as_array  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"


def _timed(name: str, make_df, baseline: float | None = None) -> float:
    seconds = noop_seconds(make_df)
    ratio = f"  ({seconds / baseline:.2f}x predict)" if baseline else ""
    print(f"{name:55s} {seconds:6.2f} s{ratio}", flush=True)
    return seconds


def _estimator(store: str) -> KerasEstimator:
    return KerasEstimator(layers=LAYERS, optimizer="adam", learningRate=1e-3, batchSize=128, epochs=3,
                          validationSplit=0.0, seed=0, backend="local", storePath=store)


def profile_fit(spark, x, y) -> None:
    df = datasets.from_numpy(spark, x[:54000], y[:54000], num_partitions=8).cache()
    df.count()
    est = _estimator("/tmp/deepflash-profile-fit")
    est.fit(df)  # the first fit materializes; the second finds it
    profiler = cProfile.Profile()
    started = time.time()
    profiler.enable()
    model = est.fit(df)
    profiler.disable()
    info = model.fitInfo
    print(f"second fit {time.time() - started:.2f} s: plan {info.plan_seconds:.2f} s, read {info.read_seconds:.2f} s, "
          f"train {info.fit_seconds:.2f} s")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(30)


def profile_summary(spark, x, y) -> None:
    df = datasets.from_numpy(spark, x[:54000], y[:54000], num_partitions=8).cache()
    df.count()
    rows = df.select(features_as_array(df, "featuresCol", "features").alias("f"), F.col("label"))
    f = F.col("f")
    parts = {
        "count": [F.count(F.lit(1))],
        "sizes (min/max)": [F.min(F.size(f)), F.max(F.size(f))],
        "null/NaN check (exists)": [F.sum(F.when(F.exists(f, lambda v: v.isNull() | F.isnan(v)), 1).otherwise(0))],
        "NaN check (array_contains)": [F.sum(F.when(F.array_contains(f, float("nan")), 1).otherwise(0))],
        "one row hash": [F.sum(F.xxhash64(f, F.col("label")).cast("decimal(38,0)"))],
        "two row hashes": [F.sum(F.xxhash64(f, F.col("label")).cast("decimal(38,0)")),
                           F.sum(F.xxhash64(F.lit(7), f, F.col("label")).cast("decimal(38,0)"))],
    }
    for attempt in range(2):
        for name, aggregates in parts.items():
            started = time.time()
            rows.agg(*aggregates).collect()
            if attempt:
                print(f"{name:30s} {time.time() - started:.2f} s", flush=True)


def profile_transform(spark, x, y) -> None:
    x_all, y_all = inference_rows(x, y, *datasets.load_idx_numpy(DATA, "test"))
    df = datasets.from_numpy(spark, x_all, y_all, num_partitions=8).cache()
    df.count()
    model = _estimator("/tmp/deepflash-profile-transform").fit(df.limit(5000))
    predict_s = predict_seconds(model.getKerasModel(), x_all)
    print(f"model.predict, {len(x_all)} rows: {predict_s:.2f} s")

    def concatenate(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        for batch in batches:
            np.concatenate(batch.to_numpy())
            yield pd.Series(np.zeros(len(batch)))

    features = features_as_array(df, "featuresCol", "features")
    _timed("scan of the cached frame", lambda: df.select("label"), predict_s)
    _timed("vector_to_array (JVM only)", lambda: df.select(F.size(features)), predict_s)
    _timed("pandas UDF that does nothing", lambda: df.select(do_nothing_udf()(features)), predict_s)
    _timed("pandas UDF that concatenates each batch", lambda: df.select(
        F.pandas_udf(concatenate, T.DoubleType())(features)), predict_s)
    _timed("KerasModel.transform", lambda: model.transform(df), predict_s)


def main(argv: list[str]) -> int:
    steps = {"fit": profile_fit, "summary": profile_summary, "transform": profile_transform}
    chosen = argv or list(steps)
    unknown = [s for s in chosen if s not in steps]
    if unknown:
        raise SystemExit(f"unknown step(s) {unknown}: choose from {', '.join(steps)}")
    spark = SparkSession.builder.master("local[2]").config("spark.driver.memory", "4g").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    x, y = datasets.load_idx_numpy(DATA, "train")
    for step in chosen:
        print(f"--- {step}", flush=True)
        steps[step](spark, x, y)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
