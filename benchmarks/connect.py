"""Benchmark part: ``KerasModel.transform`` on a classic session against a Spark Connect one.

One process cannot hold both kinds of session (pyspark switches a process to Connect once a remote
session starts), so each half runs in a fresh Python process of its own, on the same master, with
the same saved model and the same Parquet rows: a warm-up transform (Python workers started, the
model loaded and traced), then ``--connect-repeats`` timed transforms into a noop sink; the
medians are compared. The Connect half's server is a local one (``builder.remote("local[2]")``).

    .venv/bin/spark-submit --master local[2] jobs/benchmark.py --skip local,hvd1,hvd2,bar1,inference,...
    python -m benchmarks.connect --kind connect --model DIR --rows DIR --master local[2]   # one half
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

#: The repository root: the measured child processes import ``benchmarks`` from there.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = ("classic", "connect")
#: What spark-submit sets for its Python driver (the suite's process), and the Connect switches.
SUBMIT_ENV = ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "PYSPARK_SUBMIT_ARGS", "MASTER", "SPARK_REMOTE",
              "SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_REMOTE")


def measure_one(kind: str, model_path: str, rows_path: str, master: str, repeats: int) -> dict:
    """Runs in a fresh process: one session of ``kind``, a warm-up, then ``repeats`` timed transforms."""
    from pyspark.sql import SparkSession

    from deepflash import KerasModel
    from deepflash.spark.session import is_connect

    builder = SparkSession.builder.remote(master) if kind == "connect" else SparkSession.builder.master(master)
    spark = (builder.appName(f"deepflash-benchmark-{kind}").config("spark.ui.enabled", "false")
             .config("spark.driver.memory", "4g").getOrCreate())
    if is_connect(spark) != (kind == "connect"):
        raise RuntimeError(f"asked for a {kind} session, got {type(spark).__module__}")
    model = KerasModel.load(model_path)
    df = spark.read.parquet(rows_path).cache()
    rows = df.count()

    def once() -> float:
        started = time.time()
        model.transform(df).write.format("noop").mode("overwrite").save()
        return time.time() - started

    warmup = once()
    seconds = [once() for _ in range(repeats)]
    spark.stop()
    return {"kind": kind, "rows": rows, "warmup_seconds": warmup, "seconds": seconds,
            "median_seconds": statistics.median(seconds)}


def fresh_session_env() -> dict:
    """This process's environment for a child that starts a Spark session of its own: without
    spark-submit's variables, which would attach it to this driver's JVM or to its master, and with
    the repository root on its ``PYTHONPATH``."""
    env = {k: v for k, v in os.environ.items() if k not in SUBMIT_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    return env


def connect_benchmark(model, df, master: str, repeats: int, workdir: str) -> dict:
    """Saves ``model`` and ``df``'s rows under ``workdir``, then measures each kind of session in a child."""
    model_path, rows_path = os.path.join(workdir, "model"), os.path.join(workdir, "rows")
    model.write().overwrite().save(model_path)
    df.write.mode("overwrite").parquet(rows_path)
    env = fresh_session_env()
    out = {"master": master, "repeats": repeats, "runs": {}}
    for kind in KINDS:
        done = subprocess.run([sys.executable, "-m", "benchmarks.connect", "--kind", kind, "--model", model_path,
                               "--rows", rows_path, "--master", master, "--repeats", str(repeats)],
                              capture_output=True, text=True, env=env, cwd=ROOT)
        result = next((json.loads(line[len("RESULT "):]) for line in done.stdout.splitlines()
                       if line.startswith("RESULT ")), None)
        if result is None:
            tail = "\n".join((done.stderr.strip() or done.stdout.strip()).splitlines()[-8:])
            result = {"kind": kind, "error": f"exit {done.returncode}: {tail}"}
        out["runs"][kind] = result
    classic, connect = out["runs"]["classic"], out["runs"]["connect"]
    if "error" not in classic and "error" not in connect:
        out["ratio"] = connect["median_seconds"] / classic["median_seconds"]
    return out


def report_lines(result: dict) -> list[str]:
    """The Markdown lines of the report for ``connect_benchmark``'s result."""
    lines = ["", f"KerasModel.transform (noop sink), classic against Spark Connect on {result['master']}, "
                 f"median of {result['repeats']} after a warm-up, each in a fresh process", "",
             "| session | rows | warm-up s | median s | all s |", "|---|---|---|---|---|"]
    for kind in KINDS:
        r = result["runs"][kind]
        if "error" in r:
            # the exception's own line, not the last frame of a JVM stack
            errors = [line for line in r["error"].splitlines() if "Error" in line or "Exception" in line]
            lines.append(f"| {kind} | failed: {(errors or r['error'].splitlines())[-1].strip()} | | | |")
        else:
            lines.append(f"| {kind} | {r['rows']} | {r['warmup_seconds']:.2f} | {r['median_seconds']:.2f} | "
                         + " ".join(f"{s:.2f}" for s in r["seconds"]) + " |")
    if "ratio" in result:
        lines.append(f"\ntransform on Connect / classic: {result['ratio']:.2f} (goal <= 1.2)")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", required=True, choices=KINDS)
    parser.add_argument("--model", required=True, help="a saved KerasModel")
    parser.add_argument("--rows", required=True, help="Parquet rows to transform")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    result = measure_one(args.kind, args.model, args.rows, args.master, args.repeats)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
