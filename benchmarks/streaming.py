"""Benchmark part: training on more data than memory, ``readMode="stream"`` against ``"memory"``.

Generates ``--stream-gb`` GB of float32 features in Spark (a learnable rule: the label says
whether the first two features sum to more than 1), materializes them once, then trains one
process for ``--stream-epochs`` epochs in a fresh Python process per read mode and reports that
process's peak RSS, its seconds, its training throughput and the validation accuracy.

    .venv/bin/spark-submit --master local[2] jobs/benchmark.py --skip local,hvd1,hvd2,inference,search,algos,best
    python -m benchmarks.streaming --plan plan.json --mode stream     # one measured process (repo root)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time

DIM = 256
LAYERS = [{"type": "dense", "units": 64, "activation": "relu"}]
#: The repository root: the measured child process imports ``benchmarks`` from there.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def generate(spark, gigabytes: float, seed: int = 0):
    """A DataFrame of ``gigabytes`` GB of float32 features (``DIM`` per row) and a 0/1 label."""
    from pyspark.sql import functions as F

    rows = int(gigabytes * 1e9 / (DIM * 4))
    partitions = max(8, int(gigabytes * 16))
    features = F.array(*[F.rand(seed + i).cast("float") for i in range(DIM)])
    df = spark.range(0, rows, numPartitions=partitions).select(features.alias("features"))
    return df.withColumn("label", ((F.col("features")[0] + F.col("features")[1]) > 1).cast("double")), rows


def _estimator(store: str, mode: str, epochs: int, seed: int):
    from deepflash import KerasEstimator

    return KerasEstimator(layers=LAYERS, optimizer="adam", learningRate=3e-3, batchSize=1024, epochs=epochs,
                          validationSplit=0.01, backend="local", readMode=mode, shuffleBufferRows=50_000,
                          seed=seed, storePath=store)


def measure_one(plan_path: str, mode: str, epochs: int, seed: int) -> dict:
    """Runs in a fresh process: trains on the planned data and reports its own peak RSS."""
    from deepflash.data.plan import FitPlan
    from deepflash.worker import loop as remote

    with open(plan_path) as f:
        plan = FitPlan(**json.load(f))
    est = _estimator(plan.store_url, mode, epochs, seed)
    started = time.time()
    trained = remote.train_network(est.paramValues(), plan)
    seconds = time.time() - started
    history = trained.history
    return {"mode": mode, "seconds": seconds, "train_seconds": trained.fit_seconds,
            "rows_per_second": plan.train_rows * epochs / trained.fit_seconds,
            "val_accuracy": history["val_accuracy"][-1],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def streaming_benchmark(spark, args, store: str) -> dict:
    """The data is generated and materialized once; each read mode then trains in its own process."""
    df, rows = generate(spark, args.stream_gb, args.seed)
    started = time.time()
    plan = _estimator(store, "stream", args.stream_epochs, args.seed).plan(df, numProc=1)
    materialize_seconds = time.time() - started
    plan_path = os.path.join(store, "plan.json")
    with open(plan_path, "w") as f:
        json.dump(dataclasses.asdict(plan), f)
    out = {"rows": rows, "dim": DIM, "gigabytes": rows * DIM * 4 / 1e9, "stored_mb": plan.bytes / 1e6,
           "materialize_seconds": materialize_seconds, "runs": []}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    for mode in args.stream_modes.split(","):
        done = subprocess.run([sys.executable, "-m", "benchmarks.streaming", "--plan", plan_path, "--mode", mode,
                               "--epochs", str(args.stream_epochs), "--seed", str(args.seed)],
                              capture_output=True, text=True, env=env)
        result = next((json.loads(line[len("RESULT "):]) for line in done.stdout.splitlines()
                       if line.startswith("RESULT ")), None)
        if result is None:
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            result = {"mode": mode, "error": f"exit {done.returncode}: {tail}"}
        out["runs"].append(result)
    by_mode = {r["mode"]: r for r in out["runs"] if "error" not in r}
    if "stream" in by_mode and "memory" in by_mode:
        out["stream_vs_memory_throughput"] = by_mode["stream"]["rows_per_second"] / by_mode["memory"]["rows_per_second"]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", required=True)
    parser.add_argument("--mode", required=True, choices=["memory", "stream"])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print("RESULT " + json.dumps(measure_one(args.plan, args.mode, args.epochs, args.seed)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
