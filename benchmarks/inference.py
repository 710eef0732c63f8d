"""Benchmark part: inference on the same rows, each way side by side.

Over the same rows (Fashion-MNIST's train and test, 70k; ``--infer-rows`` for fewer), each Spark
step written into the ``noop`` sink twice and the second run timed (the Python workers warm):

- ``model.predict`` on the numpy array: the floor of the network itself;
- a pandas UDF that does nothing over ``vector_to_array(features, "float32")``: the floor of moving
  the features from the JVM to Python;
- ``KerasModel.transform`` on the Vector column;
- Spark's own ``pyspark.ml.functions.predict_batch_udf`` with the same network, as many rows per
  call as ``transform`` makes;
- ``KerasModel.transform`` on the same features stored as ``array<float>`` (cached), its
  predictions checked against the Vector path's;
- the first ``transform`` of a fresh session against its second, in a ``spark-submit`` child of its
  own (``benchmarks/cold_transform.py``) that loads the model saved from this session.

    .venv/bin/spark-submit --master local[2] jobs/benchmark.py --infer-rows 10000 --skip hvd1,hvd2,bar1,bar2,...
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd

#: The repository root: the cold child imports ``benchmarks`` from there.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Pairs a row of the Vector frame with its row of the ``array<float>`` frame.
ROW_ID = "row_id"


# --- helpers shared with benchmarks/profile_speed.py ---------------------------------------------

def noop_seconds(make_df) -> float:
    """Writes ``make_df()`` into the noop sink twice; the second run's seconds (the first starts the
    Python workers, loads the model and traces its functions)."""
    make_df().write.format("noop").mode("overwrite").save()
    started = time.time()
    make_df().write.format("noop").mode("overwrite").save()
    return time.time() - started


def predict_seconds(net, x: np.ndarray, batch_size: int = 4096) -> float:
    """``net.predict`` over all of ``x``, after a warm-up call that traces its functions."""
    net.predict(x[:1024], verbose=0)
    started = time.time()
    net.predict(x, batch_size=batch_size, verbose=0)
    return time.time() - started


def do_nothing_udf():
    """A pandas UDF that reads each batch and returns zeros: the floor of Spark's JVM-to-Python
    transfer of its input column."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    # Nested, so that it pickles by value: the executors import deepflash, not ``benchmarks``.
    def nothing(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        for batch in batches:
            yield pd.Series(np.zeros(len(batch)))

    return F.pandas_udf(nothing, T.DoubleType())


# --- the rows --------------------------------------------------------------------------------------

def inference_rows(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                   limit: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train and test rows together, the first ``limit`` of them (0: all)."""
    x, y = np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])
    return (x[:limit], y[:limit]) if limit else (x, y)


def inference_frame(spark, x: np.ndarray, y: np.ndarray, partitions: int):
    """``x``, ``y`` as a cached DataFrame (features Vector, label, ``ROW_ID``), counted once."""
    from pyspark.sql import functions as F

    from deepflash import datasets

    df = datasets.from_numpy(spark, x, y, num_partitions=partitions).withColumn(ROW_ID, F.monotonically_increasing_id())
    df = df.cache()
    df.count()
    return df


# --- the ways to score ----------------------------------------------------------------------------

def keras_predict_batch_udf(keras_model, rows_per_call: int):
    """Spark's ``predict_batch_udf`` over the network of ``keras_model`` (a KerasModel): its bytes
    loaded once per Python worker, ``rows_per_call`` rows per ``predict_on_batch``, the class
    probabilities out as ``array<float>``."""
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import types as T

    data, keras_backend = keras_model.stateBytes(), keras_model.kerasBackendValue()

    def make_predict_fn():
        from deepflash.io.keras_files import model_from_bytes
        from deepflash.networks.keras_backends import prefer_backend
        from deepflash.worker.devices import configure_devices

        prefer_backend(keras_backend)
        configure_devices()
        net = model_from_bytes(data)

        def predict(inputs: np.ndarray) -> np.ndarray:
            return np.asarray(net.predict_on_batch(inputs))

        return predict

    return predict_batch_udf(make_predict_fn, return_type=T.ArrayType(T.FloatType()), batch_size=rows_per_call,
                             input_tensor_shapes=[[keras_model.getInputDim()]])


def compare_predictions(keras_model, vector_df, array_df) -> dict:
    """How far ``transform`` on ``array_df`` is from ``transform`` on ``vector_df`` (the same rows,
    paired by ``ROW_ID``): rows, equal predictions, the largest absolute probability difference."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    pred, prob = keras_model.getPredictionCol(), keras_model.getProbabilityCol()

    def scored(df, tag: str):
        return keras_model.transform(df).select(ROW_ID, F.col(pred).alias(f"pred_{tag}"),
                                                vector_to_array(F.col(prob)).alias(f"prob_{tag}"))

    both = scored(vector_df, "v").join(scored(array_df, "a"), ROW_ID)
    diff = F.array_max(F.zip_with("prob_v", "prob_a", lambda v, a: F.abs(v - a)))
    row = both.agg(F.count(F.lit(1)).alias("rows"),
                   F.sum((F.col("pred_v") == F.col("pred_a")).cast("long")).alias("equal"),
                   F.max(diff).alias("diff")).first()
    return {"rows": int(row["rows"]), "equal_predictions": int(row["equal"] or 0),
            "max_abs_prob_diff": float(row["diff"] or 0.0)}


def cold_transform(model_path: str, data_dir: str, rows: int, partitions: int, master: str,
                   timeout: float = 600) -> dict:
    """The first and second ``transform`` of a fresh ``spark-submit`` session on ``master`` (see
    ``benchmarks/cold_transform.py``), or ``{"error": ...}`` with the child's last lines."""
    from benchmarks.connect import fresh_session_env

    env = fresh_session_env()
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", env["PYSPARK_PYTHON"])
    # spark-submit sets SPARK_HOME for its driver; a plain Python one finds spark-submit beside itself.
    home = os.environ.get("SPARK_HOME")
    submit = os.path.join(home, "bin", "spark-submit") if home else \
        os.path.join(os.path.dirname(sys.executable), "spark-submit")
    script = os.path.join(ROOT, "benchmarks", "cold_transform.py")
    command = [submit, "--master", master, "--driver-memory", "4g", script, "--model", model_path, "--data", data_dir,
               "--rows", str(rows), "--partitions", str(partitions)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"no result in {timeout:.0f}s"}
    result = next((json.loads(line[len("RESULT "):]) for line in done.stdout.splitlines()
                   if line.startswith("RESULT ")), None)
    if result is None:
        tail = "\n".join((done.stderr.strip() or done.stdout.strip()).splitlines()[-8:])
        return {"error": f"exit {done.returncode}: {tail}"}
    return result


# --- the part of the suite ------------------------------------------------------------------------

def inference_ratios(infer: dict) -> dict:
    """The ratios the report and the goals quote, from ``infer``'s seconds (keys that are missing
    leave their ratios out)."""
    out = {}
    transform, predict = infer.get("transform_seconds"), infer.get("predict_seconds")
    if transform and predict:
        out["ratio"] = transform / predict
    if transform and infer.get("predict_batch_udf_seconds"):
        out["predict_batch_udf_ratio"] = transform / infer["predict_batch_udf_seconds"]
    if transform and predict and infer.get("transfer_floor_seconds"):
        out["floor_ratio"] = transform / (infer["transfer_floor_seconds"] + predict)
    if transform and infer.get("array_transform_seconds"):
        out["array_ratio"] = infer["array_transform_seconds"] / transform
    cold = infer.get("cold") or {}
    if "first_seconds" in cold and "second_seconds" in cold:
        out["cold_minus_warm"] = cold["first_seconds"] - cold["second_seconds"]
    return out


def inference_benchmark(keras_model, all_df, x_all: np.ndarray, workdir: str, data_dir: str, partitions: int,
                        cold: bool = True) -> dict:
    """Every way of scoring ``all_df`` (from :func:`inference_frame`; ``x_all``: its rows as numpy)
    with ``keras_model``; ``cold``: also the fresh session's first transform (a child process)."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    from deepflash.serving.scoring import predict_batch_rows

    net = keras_model.getKerasModel()
    features = keras_model.getFeaturesCol()
    infer = {"rows": len(x_all), "predict_seconds": predict_seconds(net, x_all)}
    infer["transfer_floor_seconds"] = noop_seconds(
        lambda: all_df.select(do_nothing_udf()(vector_to_array(F.col(features), "float32"))))
    infer["transform_seconds"] = noop_seconds(lambda: keras_model.transform(all_df))
    infer["rows_per_call"] = rows = predict_batch_rows(net)
    # One UDF for both runs: each predict_batch_udf call gets a new cache key, and would load the model again.
    batch_udf = keras_predict_batch_udf(keras_model, rows)
    infer["predict_batch_udf_seconds"] = noop_seconds(
        lambda: all_df.select(batch_udf(vector_to_array(F.col(features), "float32"))))
    array_df = all_df.select(ROW_ID, vector_to_array(F.col(features), "float32").alias(features), "label").cache()
    array_df.count()
    infer["array_transform_seconds"] = noop_seconds(lambda: keras_model.transform(array_df))
    infer["array_vs_vector"] = compare_predictions(keras_model, all_df, array_df)
    array_df.unpersist()
    logging.getLogger("deepflash").info("inference: %s",
                                        {k: round(v, 2) for k, v in infer.items() if isinstance(v, float)})
    if cold:
        model_path = os.path.join(workdir, "model")
        keras_model.write().overwrite().save(model_path)
        infer["cold"] = cold_transform(model_path, data_dir, len(x_all), partitions,
                                       all_df.sparkSession.sparkContext.master)
    infer.update(inference_ratios(infer))
    return infer


def report_lines(infer: dict) -> list[str]:
    """The Markdown lines of the report for :func:`inference_benchmark`'s result."""
    predict, transform = infer["predict_seconds"], infer["transform_seconds"]

    def row(name: str, seconds: float) -> str:
        return f"| {name} | {seconds:.2f} | {seconds / predict:.2f} | {seconds / transform:.2f} |"

    lines = ["", f"Inference on {infer['rows']} rows, each Spark step into the noop sink, the second of two runs "
                 "timed (Python workers warm)", "",
             "| scoring | seconds | / model.predict | / transform |", "|---|---|---|---|",
             row("model.predict on the numpy array (the network's floor)", predict)]
    if "transfer_floor_seconds" in infer:
        floor = infer["transfer_floor_seconds"]
        lines += [row('pandas UDF doing nothing over vector_to_array(features, "float32") (the transfer floor)',
                      floor),
                  row("transfer floor + model.predict", floor + predict)]
    lines.append(row("KerasModel.transform, Vector column", transform))
    if "predict_batch_udf_seconds" in infer:
        lines.append(row(f"predict_batch_udf, the same network, batch_size {infer['rows_per_call']}",
                         infer["predict_batch_udf_seconds"]))
    if "array_transform_seconds" in infer:
        lines.append(row("KerasModel.transform, array<float> column (cached)", infer["array_transform_seconds"]))
    cold = infer.get("cold")
    if cold and "first_seconds" in cold:
        lines += [row("first transform of a fresh spark-submit session (cold)", cold["first_seconds"]),
                  row("its second transform (warm)", cold["second_seconds"])]
    check = infer.get("array_vs_vector")
    if check:
        lines.append(f"\narray<float> against Vector transform: {check['equal_predictions']}/{check['rows']} equal "
                     f"predictions, largest probability difference {check['max_abs_prob_diff']:.3g}")
    if cold and "error" in cold:
        errors = [line for line in cold["error"].splitlines() if "Error" in line or "Exception" in line]
        lines.append(f"\ncold transform failed: {(errors or cold['error'].splitlines() or ['?'])[-1].strip()}")
    elif cold:
        lines.append(f"\ncold first transform - warm transform: {infer['cold_minus_warm']:.2f}s (fresh session: "
                     f"started in {cold['session_seconds']:.1f}s, model loaded in {cold['load_seconds']:.1f}s)")
    return lines
