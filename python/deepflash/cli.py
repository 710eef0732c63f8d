"""``deepflash train|tune|predict|study|bench``: the logic behind the thin scripts in ``jobs/``.

Example:
    spark-submit --master local[2] jobs/train.py --config conf/default.yaml --set model.epochs=5

Every job validates its whole config before Spark starts, writes its output into a temporary
sibling directory and renames it into place at the end, and refuses to replace an existing
output unless ``--overwrite`` is given.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from typing import Any

from deepflash.config import ConfigError, load_config

log = logging.getLogger("deepflash")


# ---------------------------------------------------------------------------------------- set-up

def _spark(config: dict):
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("deepflash")
    spark_conf = config.get("spark") or {}
    # spark-submit's --master wins; the config's master applies when the job is started without
    # spark-submit (e.g. `deepflash train`). A driver started by spark-submit finds its JVM through
    # PYSPARK_GATEWAY_PORT; SparkConf() cannot tell, as it is read before that JVM is reached.
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ or SparkConf().contains("spark.master")
    if spark_conf.get("master") and not submitted:
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
        train, test = (datasets.load_fashion_mnist(spark, "train", **kwargs),
                       datasets.load_fashion_mnist(spark, "test", **kwargs))
    elif source == "idx":
        train, test = datasets.load_idx(spark, data["path"], "train"), datasets.load_idx(spark, data["path"], "test")
    else:
        if source == "parquet":
            df = spark.read.parquet(data["path"])
        elif source == "table":
            df = spark.table(data["table"])
        else:
            df = datasets.load_digits(spark)
        train, test = df.randomSplit([1 - test_fraction, test_fraction], seed=seed)
    if data.get("limit"):
        train = train.limit(int(data["limit"]))
    return train, test


def _open_output(config: dict, output: str, overwrite: bool):
    """(spark, qualified output URI, atomic staging context) for a job.

    Spark starts first so that ``output`` is resolved as Spark resolves paths (``fs.defaultFS``);
    an existing output without ``--overwrite`` is refused before any job or file write.
    """
    from deepflash import fs

    spark = _spark(config)
    uri = fs.qualify(output)
    fs.check_writable_target(uri, overwrite)
    return spark, uri, fs.atomic_dir(uri, overwrite)


def _output_root(output: str) -> str:
    """Local directory for the default MLflow store: beside a local output, else ./output."""
    from deepflash import fs

    return os.path.dirname(fs.local_path(output)) if fs.is_local(output) else os.path.abspath("output")


def _tracking(config: dict, output: str, default_experiment: str):
    """(enabled, tracking section) after pointing MLflow at the configured or default store."""
    tracking = config.get("tracking") or {}
    if not tracking.get("enabled", True):
        return False, tracking
    from deepflash.tracking import configure

    uri, _ = configure(tracking.get("uri"), tracking.get("experiment", default_experiment), _output_root(output))
    log.info("tracking to MLflow at %s, experiment %s", uri, tracking.get("experiment", default_experiment))
    return True, tracking


def _write_json(path: str, data: Any) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=2, default=str)


# ------------------------------------------------------------------------------- evaluation

def evaluate(model, df, estimator, beta: float = 1.0) -> dict:
    """Metrics of ``model`` on ``df`` (classification or regression) from Spark aggregations."""
    from deepflash.evaluation import classification_report, regression_report

    predictions = model.transform(df)
    label = estimator.getLabelCol()
    if estimator.getTask() == "classification":
        return classification_report(predictions, label, "prediction", beta=beta)
    return regression_report(predictions, label, "prediction")


def _summary(report: dict) -> dict:
    keys = ("accuracy", "harmonic_mean_class_accuracy", "mae", "mse", "rmse", "r2", "count")
    out = {k: report[k] for k in keys if k in report}
    for avg in ("macro", "weighted"):
        for k, v in (report.get(avg) or {}).items():
            out[f"{avg}_{k}"] = v
    return out


def _diagnosis(train_report: dict, test_report: dict, history: dict, human_error: float | None) -> dict | None:
    """Train error from the fitted model on the training rows, dev error from the last validation epoch."""
    from deepflash.evaluation import diagnose

    if "accuracy" not in train_report or not history.get("val_accuracy"):
        return None
    return diagnose(1 - train_report["accuracy"], 1 - history["val_accuracy"][-1], 1 - test_report["accuracy"],
                    human_error)


def _evaluation_outputs(local_dir: str, keras_model, train_report: dict, test_report: dict, title: str,
                        human_error: float | None = None) -> tuple:
    """metrics, plots and the diagnosis of one fitted model."""
    from deepflash import plots

    history = keras_model.getHistory()
    plot_dir = os.path.join(local_dir, "plots")
    paths = [plots.learning_curves(history, os.path.join(plot_dir, "learning_curves.png"), title=f"{title}: learning curves")]
    if "confusion_matrix" in test_report:
        paths.append(plots.confusion_heatmap(test_report["confusion_matrix"], os.path.join(plot_dir, "confusion_matrix.png"),
                                             title=f"{title}: test confusion matrix"))
    diagnosis = _diagnosis(train_report, test_report, history, human_error)
    metrics = {"train": _summary(train_report), "test": _summary(test_report),
               "validation": {k: v[-1] for k, v in history.items() if k.startswith("val_") and v},
               "epochs_run": len(history.get("loss", []))}
    return metrics, paths, diagnosis


def _report_tables(metrics: dict, test_report: dict, diagnosis: dict | None) -> dict:
    tables: dict[str, Any] = {"Metrics": {"train": metrics["train"], "test": metrics["test"]}}
    if metrics.get("validation"):
        tables["Validation (last epoch)"] = metrics["validation"]
    if "per_class" in test_report:
        tables["Per class (test)"] = test_report["per_class"]
        tables["Most confused pairs (test)"] = test_report["most_confused"]
    if diagnosis:
        tables["Bias/variance diagnosis"] = {k: v for k, v in diagnosis.items() if k != "remedies"}
        tables["Remedies"] = {i + 1: r for i, r in enumerate(diagnosis["remedies"])}
    return tables


def pipeline_stages(estimator, data: dict) -> list:
    """The training Pipeline's stages: ``data.features`` as a list of columns is assembled into the
    estimator's features column first (so the saved model scores raw rows); ``data.features`` as
    one name and ``data.label`` set the estimator's columns."""
    from pyspark.ml.feature import VectorAssembler

    if data.get("label"):
        estimator.setLabelCol(data["label"])
    features = data.get("features")
    if isinstance(features, list):
        return [VectorAssembler(inputCols=features, outputCol=estimator.getFeaturesCol(), handleInvalid="error"),
                estimator]
    if features:
        estimator.setFeaturesCol(features)
    return [estimator]


# ------------------------------------------------------------------------------------ jobs

def train(config: dict, output: str, overwrite: bool = False) -> dict:
    """Fits the configured estimator; writes model/, metrics.json, plots/, report.html; logs to MLflow."""
    from pyspark.ml import Pipeline

    from deepflash import KerasEstimator
    from deepflash.report import write_report

    estimator = KerasEstimator(**(config.get("model") or {}))
    spark, output, staging = _open_output(config, output, overwrite)
    with staging as out:
        tracked, tracking = _tracking(config, output, "deepflash-train")
        train_df, test_df = load_data(spark, config.get("data") or {})
        run = None
        if tracked:
            from deepflash.tracking import RunTracker

            run = RunTracker("train", {**(config.get("model") or {}), "data.source": (config.get("data") or {}).get("source", "digits")},
                             tags={"deepflash.job": "train", "deepflash.output": output})
        with run or contextlib.nullcontext():
            started = time.time()
            model = Pipeline(stages=pipeline_stages(estimator, config.get("data") or {})).fit(train_df)
            fit_seconds = time.time() - started
            keras_model = model.stages[-1]
            ev = config.get("evaluation") or {}
            test_report = evaluate(model, test_df, estimator, ev.get("beta", 1.0))
            train_report = evaluate(model, train_df, estimator, ev.get("beta", 1.0))
            metrics, paths, diagnosis = _evaluation_outputs(out.local, keras_model, train_report, test_report, "train",
                                                            ev.get("human_error"))
            metrics["fit_seconds"] = fit_seconds
            model.save(out.join("model"))
            _write_json(os.path.join(out.local, "metrics.json"),
                        {"metrics": metrics, "test_report": test_report, "diagnosis": diagnosis,
                         "history": keras_model.getHistory(), "config": config})
            write_report(os.path.join(out.local, "report.html"), "deepflash train", config=config,
                         tables=_report_tables(metrics, test_report, diagnosis), plots=paths,
                         notes=[f"Fit in {fit_seconds:.1f}s; output {output}"])
            if run is not None:
                run.log_history(keras_model.getHistory())
                run.log_metrics({"train": metrics["train"], "test": metrics["test"], "fit_seconds": fit_seconds})
                run.log_files(paths, "plots")
                run.log_files([os.path.join(out.local, "metrics.json"), os.path.join(out.local, "report.html")])
                metrics["model_uri"] = run.log_pipeline_model(model, tracking.get("registered_model"),
                                                              estimator.getFeaturesCol())
                metrics["mlflow_run_id"] = run.run_id
                _write_json(os.path.join(out.local, "run.json"), {"mlflow_run_id": run.run_id,
                                                            "model_uri": metrics["model_uri"]})
    log.info("test metrics: %s", json.dumps(metrics["test"]))
    log.info("wrote the model, metrics, plots and report to %s", output)
    print(json.dumps({"output": output, "test": metrics["test"], "fit_seconds": round(fit_seconds, 1)}, indent=2))
    return metrics


def tune(config: dict, output: str, overwrite: bool = False) -> dict:
    """Runs the configured search (HyperoptSearch, or OptunaSearch for ``search.engine: optuna``); writes model/ (the search model), trials.csv, metrics,
    plots and report; the search is an MLflow parent run with a nested run per trial."""
    from pyspark.ml import Pipeline

    from deepflash import KerasEstimator, plots
    from deepflash.config import search_class
    from deepflash.report import write_report

    if not (config.get("search") or {}).get("space"):
        raise ConfigError("search.space: required for `tune`, e.g. {learningRate: {loguniform: [1e-4, 1e-1]}}")
    estimator = KerasEstimator(**(config.get("model") or {}))
    settings = dict(config["search"])
    search = search_class(settings.pop("engine", "hyperopt"))(estimator=estimator, **settings)
    search._check()
    spark, output, staging = _open_output(config, output, overwrite)
    with staging as out:
        tracked, tracking = _tracking(config, output, "deepflash-tune")
        search.setTrack(bool(tracked))
        train_df, test_df = load_data(spark, config.get("data") or {})
        started = time.time()
        model = Pipeline(stages=pipeline_stages(estimator, config.get("data") or {})[:-1] + [search]).fit(train_df)
        found = model.stages[-1]
        search_seconds = time.time() - started
        found.trials.to_csv(os.path.join(out.local, "trials.csv"), index=False)
        metric, mode = search.getMetric(), search.getMode()
        plot_dir = os.path.join(out.local, "plots")
        paths = [plots.search_progress(found.trials, os.path.join(plot_dir, "search_progress.png"), mode=mode,
                                       title=f"Search progress ({metric})")]
        searched = [p for p in config["search"]["space"] if p in found.trials.columns]
        if (found.trials["status"] == "ok").sum() >= 2 and searched:
            paths.append(plots.parallel_coordinates(found.trials, searched, os.path.join(plot_dir, "parallel_coordinates.png")))
        metrics: dict[str, Any] = {"search_seconds": search_seconds, "best_params": found.bestParams,
                                   "trials": int(len(found.trials)),
                                   "trials_ok": int((found.trials["status"] == "ok").sum()),
                                   "best_metric": float(found.trials["metric"].max() if mode == "max"
                                                        else found.trials["metric"].min())}
        test_report = diagnosis = None
        if found.bestModel is not None:
            ev = config.get("evaluation") or {}
            test_report = evaluate(model, test_df, estimator, ev.get("beta", 1.0))
            train_report = evaluate(model, train_df, estimator, ev.get("beta", 1.0))
            best_metrics, best_paths, diagnosis = _evaluation_outputs(out.local, found.bestModel, train_report, test_report,
                                                                      "best model", ev.get("human_error"))
            metrics.update(best_metrics)
            paths += best_paths
        model.save(out.join("model"))
        _write_json(os.path.join(out.local, "metrics.json"), {"metrics": metrics, "test_report": test_report,
                                                        "diagnosis": diagnosis, "config": config})
        tables: dict[str, Any] = {"Search": {k: v for k, v in metrics.items() if k in (
            "search_seconds", "trials", "trials_ok", "best_metric")}, "Best params": found.bestParams}
        if test_report is not None:
            tables.update(_report_tables(metrics, test_report, diagnosis))
        tables["Trials"] = found.trials.drop(columns=["error"], errors="ignore")
        write_report(os.path.join(out.local, "report.html"), "deepflash tune", config=config, tables=tables, plots=paths)
        if tracked and found.mlflowRunId:
            from deepflash.tracking import RunTracker

            with RunTracker.resume(found.mlflowRunId) as run:
                if test_report is not None:
                    run.log_metrics({"train": metrics["train"], "test": metrics["test"]})
                run.log_files(paths, "plots")
                run.log_files([os.path.join(out.local, "trials.csv"), os.path.join(out.local, "report.html")])
                if found.bestModel is not None:
                    from pyspark.ml import PipelineModel

                    metrics["model_uri"] = run.log_pipeline_model(PipelineModel(model.stages[:-1] + [found.bestModel]),
                                                                  tracking.get("registered_model"),
                                                                  estimator.getFeaturesCol())
    log.info("search done: best %s %.4f with %s", metric, metrics["best_metric"], json.dumps(found.bestParams))
    print(json.dumps({"output": output, "best_metric": metrics["best_metric"], "test": metrics.get("test")}, indent=2))
    return metrics


def predict(config: dict, model_path: str, input_path: str | None, table: str | None, output: str,
            overwrite: bool = False) -> int:
    """Scores a Parquet path or a table with a saved PipelineModel; writes Parquet atomically."""
    from pyspark.ml import PipelineModel

    from deepflash import fs

    if bool(input_path) == bool(table):
        raise ValueError("give exactly one of --input (a Parquet path) or --table")
    spark, output, staging = _open_output(config, output, overwrite)
    model_uri = fs.qualify(model_path)
    if not fs.exists(fs.join(model_uri, "metadata")):
        raise FileNotFoundError(f"--model {model_path}: no saved model at {model_uri} "
                                "(expected <train output>/model)")
    with staging as out:
        model = PipelineModel.load(model_uri)
        df = spark.read.parquet(input_path) if input_path else spark.table(table)
        # The staging directory itself becomes the Parquet dataset (it is ours and empty).
        model.transform(df).write.mode("overwrite").parquet(out.uri)
        rows = spark.read.parquet(out.uri).count()
    log.info("scored %d rows into %s", rows, output)
    print(json.dumps({"output": output, "rows": rows}))
    return rows


def study(config: dict, output: str, overwrite: bool = False) -> list:
    """The optimizer study: one Spark task per run; the table (CSV, Markdown), figures and report."""
    from deepflash import KerasEstimator
    from deepflash.report import write_report
    from deepflash.study import figures, results_table, run_study, to_markdown

    model_conf = {k: v for k, v in (config.get("model") or {}).items()}
    model_conf.setdefault("backend", "local")
    estimator = KerasEstimator(**model_conf)
    spark, output, staging = _open_output(config, output, overwrite)
    with staging as out:
        tracked, _ = _tracking(config, output, "deepflash-study")
        train_df, test_df = load_data(spark, config.get("data") or {})
        stages = pipeline_stages(estimator, config.get("data") or {})
        if len(stages) > 1:  # assemble raw feature columns once, up front
            train_df, test_df = stages[0].transform(train_df), stages[0].transform(test_df)
        started = time.time()
        results = run_study(spark, estimator, train_df, test_df, config.get("study") or {})
        seconds = time.time() - started
        table = results_table(results)
        table.to_csv(os.path.join(out.local, "results.csv"), index=False)
        markdown = to_markdown(table.drop(columns=["error"]) if table["error"].isna().all() else table)
        with open(os.path.join(out.local, "results.md"), "w") as f:
            f.write(markdown + "\n")
        _write_json(os.path.join(out.local, "results.json"), {"seconds": seconds, "runs": results, "config": config})
        paths = figures(results, os.path.join(out.local, "plots"))
        write_report(os.path.join(out.local, "report.html"), "deepflash optimizer study", config=config,
                     tables={"Results": table}, plots=paths, notes=[f"{len(results)} runs in {seconds:.0f}s"])
        if tracked:
            from deepflash.tracking import RunTracker

            with RunTracker("study", {"runs": len(results)}, tags={"deepflash.job": "study"}) as run:
                for r in results:
                    if r["status"] == "ok":
                        run.mlflow.log_metric(f"test_accuracy.{r['run']:02d}", r["test_accuracy"])
                run.log_files(paths, "plots")
                run.log_files([os.path.join(out.local, n) for n in ("results.csv", "results.md", "report.html")])
    print(markdown)
    failed = [r for r in results if r["status"] != "ok"]
    if failed:
        log.warning("%d of %d study runs failed; the first: %s", len(failed), len(results), failed[0]["error"])
    return results


# -------------------------------------------------------------------------------------- main

def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s deepflash %(message)s", "%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


def _common(p: argparse.ArgumentParser, config_required: bool = True) -> None:
    p.add_argument("--config", required=config_required, help="YAML config, e.g. conf/default.yaml")
    p.add_argument("--output", help="output directory (default: output.dir of the config)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. model.epochs=5 (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deepflash", description="Keras on Spark: configured jobs")
    sub = parser.add_subparsers(dest="command", required=True)
    _common(sub.add_parser("train", help="fit the configured model; save model, metrics, plots and report"))
    _common(sub.add_parser("tune", help="hyperparameter search with the config's `search` section"))
    p = sub.add_parser("predict", help="score a Parquet path or table with a saved model")
    _common(p, config_required=False)
    p.add_argument("--model", required=True, help="a saved PipelineModel, e.g. <train output>/model")
    p.add_argument("--input", help="Parquet path to score")
    p.add_argument("--table", help="table to score")
    _common(sub.add_parser("study", help="the optimizer / learning-rate / loss / batch-size study"))
    sub.add_parser("bench", help="the benchmark (arguments: deepflash bench -- --help)", add_help=False)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "bench":
        from deepflash.benchmark import main as bench_main

        return bench_main([a for a in argv[1:] if a != "--"])
    args = parser.parse_args(argv)
    _setup_logging()
    try:
        config = load_config(args.config, args.set) if args.config else {}
    except ConfigError as e:
        parser.exit(2, f"deepflash {args.command}: config error: {e}\n")
    if args.command == "predict" and not args.output:
        parser.exit(2, "deepflash predict: --output is required\n")
    output = args.output or (config.get("output") or {}).get("dir") or f"output/{args.command}"
    if args.command == "train":
        train(config, output, overwrite=args.overwrite)
    elif args.command == "tune":
        tune(config, output, overwrite=args.overwrite)
    elif args.command == "predict":
        predict(config, args.model, args.input, args.table, output, overwrite=args.overwrite)
    elif args.command == "study":
        study(config, output, overwrite=args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(main())
