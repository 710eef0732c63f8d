"""``deepflash tune``: the config's ``search`` section (HyperoptSearch, or OptunaSearch for
``search.engine: optuna``); writes model/ (the search model), trials.csv, metrics.json, plots and a
report; the search is an MLflow parent run with a nested run per trial, and the best model is logged
to it as a Spark model (``model``) and its network as a pyfunc model (``network``). A tracking failure
(during the search or after it) leaves the outputs in place and is recorded in metrics.json
(``tracking_error``).

Example:
    deepflash tune --config conf/fashion_mnist_search.yaml --set search.maxEvals=8
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from deepflash.jobs.base import Job
from deepflash.jobs.config import ConfigError
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
    """Runs the configured search and writes its outputs atomically; returns the search metrics.

    The outputs are in place before the best model is logged to the search's run; an MLflow failure
    never removes them (see :func:`deepflash.jobs.outputs.settle_tracking`).

    Args:
        config: a validated config with a ``search.space``.
        output: the output directory.
        overwrite: replace an existing output.
    """
    from pyspark.ml import Pipeline

    from deepflash import KerasEstimator, plots
    from deepflash.jobs.config import search_class
    from deepflash.reporting.report import write_report

    if not (config.get("search") or {}).get("space"):
        raise ConfigError("search.space: required for `tune`, e.g. {learningRate: {loguniform: [1e-4, 1e-1]}}")
    estimator = KerasEstimator(**(config.get("model") or {}))
    settings = dict(config["search"])
    search = search_class(settings.pop("engine", "hyperopt"))(estimator=estimator, **settings)
    search.validateParams()
    spark, output, staging = open_output(config, output, overwrite)
    tracking = start_tracking(config, output, "deepflash-tune")
    search.setTrack(tracking.active)
    with staging as out:
        train_df, test_df = load_data(spark, config.get("data") or {})
        started = time.time()
        model = Pipeline(stages=pipeline_stages(estimator, config.get("data") or {})[:-1] + [search]).fit(train_df)
        found = model.stages[-1]
        search_seconds = time.time() - started
        found.trials.to_csv(os.path.join(out.local, "trials.csv"), index=False)
        metric, mode = search.metricList()[0], search.modeList()[0]
        plot_dir = os.path.join(out.local, "plots")
        with phase("drew the search plots"):
            paths = [plots.search_progress(found.trials, os.path.join(plot_dir, "search_progress.png"), mode=mode,
                                           title=f"Search progress ({metric})")]
            searched = [p for p in config["search"]["space"] if p in found.trials.columns]
            if (found.trials["status"] == "ok").sum() >= 2 and searched:
                paths.append(plots.parallel_coordinates(found.trials, searched,
                                                        os.path.join(plot_dir, "parallel_coordinates.png")))
            if len(search.metricList()) == 2:
                paths.append(found.plotParetoFront(os.path.join(plot_dir, "pareto_front.png")))
        metrics: dict[str, Any] = {"search_seconds": search_seconds, "best_params": found.bestParams,
                                   "trials": int(len(found.trials)),
                                   "trials_ok": int((found.trials["status"] == "ok").sum()),
                                   "best_metric": float(found.trials["metric"].max() if mode == "max"
                                                        else found.trials["metric"].min())}
        if len(search.metricList()) > 1:
            metrics["pareto_front"] = int(len(found.paretoFront))
        test_report = diagnosis = None
        if found.bestModel is not None:
            test_report, best_metrics, best_paths, diagnosis = evaluate_fitted(
                model, found.bestModel, estimator, train_df, test_df, out.local, "best model",
                config.get("evaluation") or {})
            metrics.update(best_metrics)
            paths += best_paths
        with phase("saved the model"):
            model.save(out.join("model"))
        with phase("wrote metrics.json and report.html"):
            write_json(os.path.join(out.local, "metrics.json"), {"metrics": metrics, "test_report": test_report,
                                                                 "diagnosis": diagnosis, "config": config})
            tables: dict[str, Any] = {"Search": {k: v for k, v in metrics.items() if k in (
                "search_seconds", "trials", "trials_ok", "best_metric")}, "Best params": found.bestParams}
            if test_report is not None:
                tables.update(report_tables(metrics, test_report, diagnosis))
            tables["Trials"] = found.trials.drop(columns=["error"], errors="ignore")
            write_report(os.path.join(out.local, "report.html"), "deepflash tune", config=config, tables=tables,
                         plots=paths)
        plot_names = [os.path.relpath(p, out.local) for p in paths]
    failure = found.trackingFailure
    if tracking.active and failure is None and found.mlflowRunId:
        from deepflash.reporting.tracking import RunTracker

        with RunTracker.resume(found.mlflowRunId) as tracker:
            # A failed MLflow call warns and turns the tracker off: then no "logged" line.
            with phase("logged the metrics, plots, trials and report to MLflow",
                       ok=lambda: tracker.failure is None):
                if test_report is not None:
                    tracker.log_metrics({"train": metrics["train"], "test": metrics["test"]})
                with local_files(output, [*plot_names, "trials.csv", "report.html"]) as files:
                    tracker.log_files(files[:len(plot_names)], "plots")
                    tracker.log_files(files[len(plot_names):])
            if found.bestModel is not None:
                from pyspark.ml import PipelineModel

                best = PipelineModel(model.stages[:-1] + [found.bestModel])
                with phase("logged the best model to MLflow", ok=lambda: tracker.failure is None):
                    metrics["model_uri"] = tracker.log_pipeline_model(best, tracking.registered_model,
                                                                      estimator.getFeaturesCol())
                metrics["network_uri"] = tracker.log_network_model(best, test_df)  # its own line says its seconds
        failure = tracker.failure
    log.info("search done: best %s %.4f with %s", metric, metrics["best_metric"], json.dumps(found.bestParams))
    print(json.dumps({"output": output, "best_metric": metrics["best_metric"], "test": metrics.get("test")}, indent=2))
    settle_tracking(tracking, failure, output, "metrics.json", metrics)
    return metrics


JOB = Job("tune", "hyperparameter search with the config's `search` section",
          lambda call: run(call.config, call.output, overwrite=call.overwrite))
