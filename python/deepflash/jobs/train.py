"""``deepflash train``: fits the configured estimator; writes model/, metrics.json, plots/, report.html
and, with tracking on, an MLflow run with the logged Spark model (``model``) and its network as a
pyfunc model (``network``) for serving without Spark.

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
from deepflash.jobs.outputs import evaluate, evaluation_outputs, open_output, report_tables, start_tracking, write_json
from deepflash.jobs.sources import load_data, pipeline_stages

log = logging.getLogger("deepflash")


def run(config: dict, output: str, overwrite: bool = False) -> dict:
    """Fits the configured estimator and writes its outputs atomically; returns the metrics.

    Args:
        config: a validated config (``deepflash.jobs.config.load_config`` or ``validate``).
        output: the output directory.
        overwrite: replace an existing output.
    """
    from pyspark.ml import Pipeline

    from deepflash import KerasEstimator
    from deepflash.reporting.report import write_report

    estimator = KerasEstimator(**(config.get("model") or {}))
    spark, output, staging = open_output(config, output, overwrite)
    with staging as out:
        tracking = start_tracking(config, output, "deepflash-train")
        train_df, test_df = load_data(spark, config.get("data") or {})
        tracker = None
        if tracking.enabled:
            from deepflash.reporting.tracking import RunTracker

            source = (config.get("data") or {}).get("source", "digits")
            tracker = RunTracker("train", {**(config.get("model") or {}), "data.source": source},
                                 tags={"deepflash.job": "train", "deepflash.output": output})
        with tracker or contextlib.nullcontext():
            started = time.time()
            model = Pipeline(stages=pipeline_stages(estimator, config.get("data") or {})).fit(train_df)
            fit_seconds = time.time() - started
            keras_model = model.stages[-1]
            ev = config.get("evaluation") or {}
            test_report = evaluate(model, test_df, estimator, ev.get("beta", 1.0))
            train_report = evaluate(model, train_df, estimator, ev.get("beta", 1.0))
            metrics, paths, diagnosis = evaluation_outputs(out.local, keras_model, train_report, test_report, "train",
                                                           ev.get("human_error"))
            metrics["fit_seconds"] = fit_seconds
            model.save(out.join("model"))
            write_json(os.path.join(out.local, "metrics.json"),
                       {"metrics": metrics, "test_report": test_report, "diagnosis": diagnosis,
                        "history": keras_model.getHistory(), "config": config})
            write_report(os.path.join(out.local, "report.html"), "deepflash train", config=config,
                         tables=report_tables(metrics, test_report, diagnosis), plots=paths,
                         notes=[f"Fit in {fit_seconds:.1f}s; output {output}"])
            if tracker is not None:
                tracker.log_history(keras_model.getHistory())
                tracker.log_metrics({"train": metrics["train"], "test": metrics["test"], "fit_seconds": fit_seconds})
                tracker.log_files(paths, "plots")
                tracker.log_files([os.path.join(out.local, "metrics.json"), os.path.join(out.local, "report.html")])
                metrics["model_uri"] = tracker.log_pipeline_model(model, tracking.registered_model,
                                                              estimator.getFeaturesCol())
                metrics["network_uri"] = tracker.log_network_model(model, test_df)
                metrics["mlflow_run_id"] = tracker.run_id
                write_json(os.path.join(out.local, "run.json"), {"mlflow_run_id": tracker.run_id,
                                                                 "model_uri": metrics["model_uri"],
                                                                 "network_uri": metrics["network_uri"]})
    log.info("test metrics: %s", json.dumps(metrics["test"]))
    log.info("wrote the model, metrics, plots and report to %s", output)
    print(json.dumps({"output": output, "test": metrics["test"], "fit_seconds": round(fit_seconds, 1)}, indent=2))
    return metrics


JOB = Job("train", "fit the configured model; save model, metrics, plots and report",
          lambda call: run(call.config, call.output, overwrite=call.overwrite))
