"""``deepflash train``: fits the configured estimator; writes model/, metrics.json, plots/, report.html
and, with tracking on, an MLflow run with the logged Spark model (``model``) and its network as a
pyfunc model (``network``) for serving without Spark, and run.json naming them. A tracking failure
leaves the outputs in place and is recorded in metrics.json (``tracking_error``).

Example:
    deepflash train --config conf/default.yaml --set model.epochs=5 --output /tmp/digits
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import time

from deepflash.jobs.base import Job
from deepflash.jobs.console import phase
from deepflash.jobs.outputs import (
    evaluate_fitted,
    local_files,
    open_output,
    report_tables,
    settle_tracking,
    start_tracking,
    write_json,
)
from deepflash.jobs.sources import load_data, pipeline_stages

log = logging.getLogger("deepflash")


def run(config: dict, output: str, overwrite: bool = False) -> dict:
    """Fits the configured estimator and writes its outputs atomically; returns the metrics.

    The outputs are in place before the run's metrics, files and models are logged, and an MLflow
    failure never removes them: it is recorded in metrics.json as ``tracking_error`` and, with
    ``tracking.required`` (the default), raises :class:`~deepflash.jobs.base.TrackingFailedError`
    once everything is written.

    Args:
        config: a validated config (``deepflash.jobs.config.load_config`` or ``validate``).
        output: the output directory.
        overwrite: replace an existing output.
    """
    from pyspark.ml import Pipeline

    from deepflash import KerasEstimator
    from deepflash.io import fs
    from deepflash.reporting.report import write_report

    estimator = KerasEstimator(**(config.get("model") or {}))
    spark, output, staging = open_output(config, output, overwrite)
    tracking = start_tracking(config, output, "deepflash-train")
    source = (config.get("data") or {}).get("source", "digits")
    tracker = tracking.start_run("train", {**(config.get("model") or {}), "data.source": source},
                                 tags={"deepflash.job": "train", "deepflash.output": output})
    # The run spans the fit (it ends FAILED if the fit raises); the outputs never depend on it.
    with tracker or contextlib.nullcontext():
        with staging as out:
            train_df, test_df = load_data(spark, config.get("data") or {})
            started = time.time()
            model = Pipeline(stages=pipeline_stages(estimator, config.get("data") or {})).fit(train_df)
            fit_seconds = time.time() - started
            keras_model = model.stages[-1]
            test_report, metrics, paths, diagnosis = evaluate_fitted(
                model, keras_model, estimator, train_df, test_df, out.local, "train", config.get("evaluation") or {})
            metrics["fit_seconds"] = fit_seconds
            with phase("saved the model"):
                model.save(out.join("model"))
            with phase("wrote metrics.json and report.html"):
                write_json(os.path.join(out.local, "metrics.json"),
                           {"metrics": metrics, "test_report": test_report, "diagnosis": diagnosis,
                            "history": keras_model.getHistory(), "config": config})
                write_report(os.path.join(out.local, "report.html"), "deepflash train", config=config,
                             tables=report_tables(metrics, test_report, diagnosis), plots=paths,
                             notes=[f"Fit in {fit_seconds:.1f}s; output {output}"])
            plot_names = [os.path.relpath(p, out.local) for p in paths]
        log.info("wrote the model, metrics, plots and report to %s", output)
        if tracker is not None:
            # A failed MLflow call warns and turns the tracker off: then no "logged" line.
            with phase("logged the history, metrics, plots and report to MLflow",
                       ok=lambda: tracker.failure is None), \
                    local_files(output, [*plot_names, "metrics.json", "report.html"]) as files:
                tracker.log_history(keras_model.getHistory())
                tracker.log_metrics({"train": metrics["train"], "test": metrics["test"], "fit_seconds": fit_seconds})
                tracker.log_files(files[:len(plot_names)], "plots")
                tracker.log_files(files[len(plot_names):])
            with phase("logged the Spark model to MLflow", ok=lambda: tracker.failure is None):
                metrics["model_uri"] = tracker.log_pipeline_model(model, tracking.registered_model,
                                                                  estimator.getFeaturesCol())
            metrics["network_uri"] = tracker.log_network_model(model, test_df)  # its own line says its seconds
            metrics["mlflow_run_id"] = tracker.run_id
    if tracker is not None and tracker.failure is None:
        fs.write_bytes(fs.join(output, "run.json"), json.dumps(
            {"mlflow_run_id": tracker.run_id, "model_uri": metrics["model_uri"],
             "network_uri": metrics["network_uri"]}, indent=2).encode())
    log.info("test metrics: %s", json.dumps(metrics["test"]))
    print(json.dumps({"output": output, "test": metrics["test"], "fit_seconds": round(fit_seconds, 1)}, indent=2))
    settle_tracking(tracking, tracker.failure if tracker is not None else None, output, "metrics.json", metrics)
    return metrics


JOB = Job("train", "fit the configured model; save model, metrics, plots and report",
          lambda call: run(call.config, call.output, overwrite=call.overwrite))
