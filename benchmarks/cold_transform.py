"""The first ``KerasModel.transform`` of a fresh session, against its second: a spark-submit driver.

Loads a saved KerasModel, builds the inference rows from the Fashion-MNIST numpy data (cached and
counted before any timing), then writes ``transform`` into the noop sink twice, timing each: the
first starts the Python workers, imports Keras there, deserializes the model and traces it.
Prints one ``RESULT {json}`` line. ``benchmarks.inference.cold_transform`` runs it for the suite.

    .venv/bin/spark-submit --master local[2] benchmarks/cold_transform.py --model DIR --rows 70000
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

# Run as a script, its own folder is on sys.path; the repository root holds the benchmarks package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def measure(model_path: str, data_dir: str, rows: int, partitions: int) -> dict:
    from pyspark.sql import SparkSession

    from benchmarks.inference import inference_frame, inference_rows
    from deepflash import KerasModel
    from deepflash.data import datasets

    started = time.time()
    spark = SparkSession.builder.appName("deepflash-benchmark-cold").config("spark.ui.enabled", "false").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    session_seconds = time.time() - started
    x, y = inference_rows(*datasets.load_idx_numpy(data_dir, "train"), *datasets.load_idx_numpy(data_dir, "test"),
                          limit=rows)
    df = inference_frame(spark, x, y, partitions)
    started = time.time()
    model = KerasModel.load(model_path)
    load_seconds = time.time() - started
    seconds = []
    for _ in range(2):
        started = time.time()
        model.transform(df).write.format("noop").mode("overwrite").save()
        seconds.append(time.time() - started)
    spark.stop()
    return {"rows": len(x), "session_seconds": session_seconds, "load_seconds": load_seconds,
            "first_seconds": seconds[0], "second_seconds": seconds[1]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a saved KerasModel")
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST IDX directory")
    parser.add_argument("--rows", type=int, default=0, help="the first rows of train and test together (0 = all)")
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args(argv)
    result = measure(args.model, args.data, args.rows, args.partitions)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
