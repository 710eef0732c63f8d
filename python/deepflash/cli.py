"""``deepflash train ...``: the logic behind the thin spark-submit scripts in ``jobs/``.

Example:
    spark-submit --master local[2] jobs/train.py --config conf/default.yaml --set model.epochs=5
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
import uuid
from typing import Any

import yaml

log = logging.getLogger("deepflash")

SECTIONS = ("data", "model", "spark", "output")
DATA_SOURCES = ("digits", "fashion_mnist", "idx", "parquet")


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text)


def load_config(path: str, overrides: list[str] = ()) -> dict:
    """Reads a YAML config and applies ``key.path=value`` overrides (values parsed as YAML)."""
    with open(path) as f:
        config = yaml.safe_load(f) or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a mapping of sections, found {type(config).__name__}")
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected key.path=value")
        key, value = item.split("=", 1)
        node = config
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {key}: {part!r} is not a section")
        node[parts[-1]] = _parse_value(value)
    unknown = sorted(set(config) - set(SECTIONS))
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {unknown}, valid sections are: {', '.join(SECTIONS)}")
    source = config.get("data", {}).get("source", "digits")
    if source not in DATA_SOURCES:
        raise ValueError(f"data.source: {source!r} is not one of {', '.join(DATA_SOURCES)}")
    return config


def _spark(config: dict):
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("deepflash")
    spark_conf = config.get("spark") or {}
    # spark-submit's --master wins; the config's master applies when the job is started without one.
    if spark_conf.get("master") and not SparkConf().contains("spark.master"):
        builder = builder.master(spark_conf["master"])
    for key, value in (spark_conf.get("conf") or {}).items():
        builder = builder.config(key, str(value))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def load_data(spark, data: dict):
    """(train, test) DataFrames for the ``data`` section."""
    from deepflash import datasets

    source = data.get("source", "digits")
    test_fraction = float(data.get("test_fraction", 0.2))
    seed = int(data.get("seed", 0))
    if source == "fashion_mnist":
        kwargs = {"directory": data["path"]} if data.get("path") else {}
        return (datasets.load_fashion_mnist(spark, "train", **kwargs),
                datasets.load_fashion_mnist(spark, "test", **kwargs))
    if source == "idx":
        return datasets.load_idx(spark, data["path"], "train"), datasets.load_idx(spark, data["path"], "test")
    if source == "parquet":
        df = spark.read.parquet(data["path"])
    else:
        df = datasets.load_digits(spark)
    train, test = df.randomSplit([1 - test_fraction, test_fraction], seed=seed)
    return train, test


def _classification_metrics(predictions, label_col: str) -> dict:
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator

    out = {}
    for metric in ("accuracy", "f1", "weightedPrecision", "weightedRecall"):
        ev = MulticlassClassificationEvaluator(labelCol=label_col, predictionCol="prediction", metricName=metric)
        out[metric] = float(ev.evaluate(predictions))
    return out


def _regression_metrics(predictions, label_col: str) -> dict:
    from pyspark.ml.evaluation import RegressionEvaluator

    return {m: float(RegressionEvaluator(labelCol=label_col, metricName=m).evaluate(predictions))
            for m in ("rmse", "mae", "r2")}


def train(config: dict, output: str, overwrite: bool = False) -> dict:
    """Fits the configured estimator, reports test metrics, saves the PipelineModel under ``output``.

    Everything is written to a temporary sibling directory first and renamed at the end, so a
    failed job leaves no half-written output.
    """
    from pyspark.ml import Pipeline

    from deepflash import KerasEstimator

    output = os.path.abspath(output)
    if os.path.exists(output) and not overwrite:
        raise FileExistsError(f"output {output} exists; pass --overwrite to replace it")
    model_params = dict(config.get("model") or {})
    estimator = KerasEstimator(**model_params)  # unknown or bad params fail here, before Spark starts
    spark = _spark(config)
    train_df, test_df = load_data(spark, config.get("data") or {})
    tmp = f"{output}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        started = time.time()
        model = Pipeline(stages=[estimator]).fit(train_df)
        fit_seconds = time.time() - started
        predictions = model.transform(test_df)
        label = estimator.getLabelCol()
        if estimator.getTask() == "classification":
            test_metrics = _classification_metrics(predictions, label)
        else:
            test_metrics = _regression_metrics(predictions, label)
        keras_model = model.stages[-1]
        history = keras_model.getHistory()
        metrics = {"test": test_metrics, "fit_seconds": fit_seconds,
                   "train": {k: v[-1] for k, v in history.items() if not k.startswith("val_")},
                   "validation": {k: v[-1] for k, v in history.items() if k.startswith("val_")},
                   "epochs_run": len(history.get("loss", []))}
        os.makedirs(tmp)
        model.save(os.path.join(tmp, "model"))
        with open(os.path.join(tmp, "metrics.json"), "w") as f:
            json.dump({"metrics": metrics, "history": history, "config": config}, f, indent=2)
        if os.path.exists(output):
            shutil.rmtree(output)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    log.info("test metrics: %s", json.dumps(test_metrics))
    log.info("saved the model and metrics to %s", output)
    print(json.dumps({"output": output, "test": test_metrics, "fit_seconds": round(fit_seconds, 1)}, indent=2))
    return metrics


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s deepflash %(message)s", "%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deepflash", description="Keras on Spark: train a configured job")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="fit the configured model, report test metrics, save it")
    p.add_argument("--config", required=True, help="YAML config, e.g. conf/default.yaml")
    p.add_argument("--output", help="output directory (default: output.dir of the config)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    args = parser.parse_args(argv)
    _setup_logging()
    config = load_config(args.config, args.set)
    output = args.output or (config.get("output") or {}).get("dir") or "output/train"
    train(config, output, overwrite=args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(main())
