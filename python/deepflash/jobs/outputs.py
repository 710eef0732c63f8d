"""What a job writes and where: the atomic output directory, JSON files inside it, MLflow set-up,
and the metrics, plots and report tables of a fitted model.

Every job opens its output with :func:`open_output` before any data is read: an existing output
without ``--overwrite`` is refused before any Spark job or write, and everything is written into a
temporary sibling that is renamed into place at the end (``deepflash.io.atomic.atomic_dir``).

Example:
    spark, uri, staging = open_output(config, "output/train", overwrite=False)
    with staging as out:
        write_json(os.path.join(out.local, "metrics.json"), {"accuracy": 0.97})
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from deepflash.jobs.sources import spark_session

log = logging.getLogger("deepflash")


def open_output(config: dict, output: str, overwrite: bool):
    """(spark, qualified output URI, atomic staging context) for a job.

    Spark starts first so that ``output`` is resolved as Spark resolves paths (``fs.defaultFS``);
    an existing output without ``--overwrite`` is refused before any job or file write.

    Args:
        config: the validated job config (its ``spark`` section starts the session).
        output: the output directory, a path or URI.
        overwrite: replace an existing output.
    """
    from deepflash.io import atomic, fs

    spark = spark_session(config)
    uri = fs.qualify(output, spark)
    atomic.check_writable_target(uri, overwrite)
    return spark, uri, atomic.atomic_dir(uri, overwrite)


def write_json(path: str, data: Any) -> None:
    """Writes ``data`` as indented JSON to a local path inside a job's staging directory."""
    with open(path, "w") as f:
        json.dump(data, f, indent=2, default=str)


@dataclass(frozen=True)
class Tracking:
    """Whether a job logs to MLflow, and the registered model name its model goes under (if any)."""

    enabled: bool
    registered_model: str | None = None


def output_root(output: str) -> str:
    """Local directory for the default MLflow store: beside a local output, else ./output."""
    from deepflash.io import fs

    return os.path.dirname(fs.local_path(output)) if fs.is_local(output) else os.path.abspath("output")


def start_tracking(config: dict, output: str, default_experiment: str) -> Tracking:
    """Points MLflow at the configured store (default: ``<output root>/mlruns.db``) unless tracking is off.

    Args:
        config: the validated job config (its ``tracking`` section).
        output: the job's qualified output URI.
        default_experiment: the experiment name when ``tracking.experiment`` is unset.
    """
    tracking = config.get("tracking") or {}
    if not tracking.get("enabled", True):
        return Tracking(False)
    from deepflash.reporting.tracking import configure

    experiment = tracking.get("experiment", default_experiment)
    uri, _ = configure(tracking.get("uri"), experiment, output_root(output))
    log.info("tracking to MLflow at %s, experiment %s", uri, experiment)
    return Tracking(True, tracking.get("registered_model"))


# ------------------------------------------------------------------------------- evaluation

def evaluate(model, df, estimator, beta: float = 1.0) -> dict:
    """Metrics of ``model`` on ``df`` (classification or regression) from Spark aggregations.

    Args:
        model: a fitted PipelineModel.
        df: the rows to score.
        estimator: the KerasEstimator it was fitted from (task and label column).
        beta: the F-beta weight for classification.
    """
    from deepflash.reporting.metrics import classification_report, regression_report

    predictions = model.transform(df)
    label = estimator.getLabelCol()
    if estimator.getTask() == "classification":
        return classification_report(predictions, label, "prediction", beta=beta)
    return regression_report(predictions, label, "prediction")


def summary(report: dict) -> dict:
    """The scalar metrics of an evaluation report, with macro/weighted averages flattened."""
    keys = ("accuracy", "harmonic_mean_class_accuracy", "mae", "mse", "rmse", "r2", "count")
    out = {k: report[k] for k in keys if k in report}
    for avg in ("macro", "weighted"):
        for k, v in (report.get(avg) or {}).items():
            out[f"{avg}_{k}"] = v
    return out


def _diagnosis(train_report: dict, test_report: dict, history: dict, human_error: float | None) -> dict | None:
    """Train error from the fitted model on the training rows, dev error from the last validation epoch."""
    from deepflash.reporting.metrics import diagnose

    if "accuracy" not in train_report or not history.get("val_accuracy"):
        return None
    return diagnose(1 - train_report["accuracy"], 1 - history["val_accuracy"][-1], 1 - test_report["accuracy"],
                    human_error)


def evaluation_outputs(local_dir: str, keras_model, train_report: dict, test_report: dict, title: str,
                       human_error: float | None = None) -> tuple:
    """(metrics, plot paths, diagnosis) of one fitted model; the plots go to ``local_dir/plots``.

    Args:
        local_dir: the staging directory's local path.
        keras_model: the fitted KerasModel (its training history).
        train_report: ``evaluate`` on the training rows.
        test_report: ``evaluate`` on the test rows.
        title: the plots' title prefix.
        human_error: the assumed human-level error for the bias/variance diagnosis.
    """
    from deepflash.reporting import plots

    history = keras_model.getHistory()
    plot_dir = os.path.join(local_dir, "plots")
    paths = [plots.learning_curves(history, os.path.join(plot_dir, "learning_curves.png"),
                                   title=f"{title}: learning curves")]
    if "confusion_matrix" in test_report:
        paths.append(plots.confusion_heatmap(test_report["confusion_matrix"],
                                             os.path.join(plot_dir, "confusion_matrix.png"),
                                             title=f"{title}: test confusion matrix"))
    diagnosis = _diagnosis(train_report, test_report, history, human_error)
    metrics = {"train": summary(train_report), "test": summary(test_report),
               "validation": {k: v[-1] for k, v in history.items() if k.startswith("val_") and v},
               "epochs_run": len(history.get("loss", []))}
    return metrics, paths, diagnosis


def report_tables(metrics: dict, test_report: dict, diagnosis: dict | None) -> dict:
    """The HTML report's tables for a fitted model: metrics, validation, per-class and the diagnosis."""
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
