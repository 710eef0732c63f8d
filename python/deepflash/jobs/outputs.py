"""What a job writes and where: the atomic output directory, JSON files inside it, MLflow set-up,
and the metrics, plots and report tables of a fitted model.

Every job opens its output with :func:`open_output` before any data is read: an existing output
without ``--overwrite`` is refused before any Spark job or write, and everything is written into a
temporary sibling that is renamed into place at the end (``deepflash.io.atomic.atomic_dir``).
Tracking comes after that rename and never undoes it: a failed MLflow call is recorded in the
job's JSON document as ``tracking_error`` by :func:`settle_tracking`.

Example:
    spark, uri, staging = open_output(config, "output/train", overwrite=False)
    with staging as out:
        write_json(os.path.join(out.local, "metrics.json"), {"accuracy": 0.97})
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deepflash.jobs.base import TrackingFailedError
from deepflash.jobs.console import phase
from deepflash.jobs.sources import spark_session

if TYPE_CHECKING:
    from deepflash.reporting.tracking import RunTracker, TrackingFailure

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
    """Whether a job logs to MLflow, the registered model name its model goes under (if any),
    whether a tracking failure fails the job, and the failure of the set-up itself (if it failed)."""

    enabled: bool
    registered_model: str | None = None
    required: bool = True
    failure: TrackingFailure | None = None

    @property
    def active(self) -> bool:
        """Tracking is on and its set-up reached MLflow."""
        return self.enabled and self.failure is None

    def start_run(self, name: str, params: dict, tags: dict) -> RunTracker | None:
        """A new :class:`~deepflash.reporting.tracking.RunTracker` when :attr:`active`, else None."""
        if not self.active:
            return None
        from deepflash.reporting.tracking import RunTracker

        return RunTracker(name, params, tags=tags)


def output_root(output: str) -> str:
    """Local directory for the default MLflow store: beside a local output, else ./output."""
    from deepflash.io import fs

    return os.path.dirname(fs.local_path(output)) if fs.is_local(output) else os.path.abspath("output")


def start_tracking(config: dict, output: str, default_experiment: str) -> Tracking:
    """Points MLflow at the configured store (default: ``<output root>/mlruns.db``) unless tracking is off.

    An unreachable store does not stop the job: it logs a warning and the returned
    :class:`Tracking` carries the failure (and is not :attr:`~Tracking.active`).

    Args:
        config: the validated job config (its ``tracking`` section).
        output: the job's qualified output URI.
        default_experiment: the experiment name when ``tracking.experiment`` is unset.
    """
    tracking = config.get("tracking") or {}
    if not tracking.get("enabled", True):
        return Tracking(False)
    from deepflash.reporting.tracking import TrackingFailure, configure

    settings = {"registered_model": tracking.get("registered_model"), "required": tracking.get("required", True)}
    experiment = tracking.get("experiment", default_experiment)
    try:
        uri, _ = configure(tracking.get("uri"), experiment, output_root(output))
    except Exception as e:
        failure = TrackingFailure.of("configure", e)
        log.warning("MLflow tracking failed (%s); the job runs untracked", failure)
        return Tracking(True, failure=failure, **settings)
    log.info("tracking to MLflow at %s, experiment %s", uri, experiment)
    return Tracking(True, **settings)


@contextlib.contextmanager
def local_files(output: str, names: Sequence[str]) -> Iterator[list[str]]:
    """Local paths of the files ``names`` (relative to the output directory ``output``), for MLflow's
    artifact calls: the files themselves on a local output, copies in a temporary directory otherwise."""
    from deepflash.io import fs

    if fs.is_local(output):
        yield [os.path.join(fs.local_path(output), name) for name in names]
        return
    with tempfile.TemporaryDirectory(prefix="deepflash-artifacts-") as tmp:
        paths = []
        for name in names:
            path = os.path.join(tmp, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(fs.read_bytes(fs.join(output, name)))
            paths.append(path)
        yield paths


def settle_tracking(tracking: Tracking, failure: TrackingFailure | None, output: str, document: str,
                    result: Any = None) -> None:
    """After a job's outputs are in place: records a tracking failure (the set-up's, else ``failure``)
    as ``tracking_error`` in the JSON ``document`` of the output, then raises
    :class:`~deepflash.jobs.base.TrackingFailedError` when ``tracking.required`` (the default), or
    logs a warning and lets the job succeed.

    Args:
        tracking: the job's :func:`start_tracking`.
        failure: the first failure of the job's trackers after the set-up, if any.
        output: the job's output URI.
        document: the JSON file the failure is recorded in, e.g. ``metrics.json``.
        result: what the job returns, carried by the error.
    """
    from deepflash.io import fs

    failure = tracking.failure or failure
    if failure is None:
        return
    path = fs.join(output, document)
    data = json.loads(fs.read_bytes(path))
    data["tracking_error"] = failure.as_dict()
    fs.write_bytes(path, json.dumps(data, indent=2, default=str).encode())
    where = fs.local_path(output) if fs.is_local(output) else output
    message = (f"the outputs are in place at {where}, but tracking to MLflow failed ({failure}); "
               f"{document} records it as tracking_error")
    if tracking.required:
        raise TrackingFailedError(f"{message}. Set tracking.required: false to let the job succeed untracked",
                                  result)
    log.warning("%s; tracking.required is false, so the job succeeds", message)


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


def evaluate_fitted(model, keras_model, estimator, train_df, test_df, local_dir: str, title: str,
                    evaluation: dict) -> tuple:
    """(test report, metrics, plot paths, diagnosis) of a fitted pipeline: :func:`evaluate` on the
    test rows and on the training rows, then :func:`evaluation_outputs`, each one timed line on
    the console (``evaluated the test split in 3.2s``).

    Args:
        model: the fitted PipelineModel.
        keras_model: its fitted KerasModel (the training history).
        estimator: the KerasEstimator it was fitted from.
        train_df: the training rows.
        test_df: the test rows.
        local_dir: the staging directory's local path (the plots go to ``plots/`` in it).
        title: the plots' title prefix.
        evaluation: the config's ``evaluation`` section (``beta``, ``human_error``).
    """
    beta = evaluation.get("beta", 1.0)
    with phase("evaluated the test split"):
        test_report = evaluate(model, test_df, estimator, beta)
    with phase("evaluated the training split"):
        train_report = evaluate(model, train_df, estimator, beta)
    with phase("drew the plots"):
        metrics, paths, diagnosis = evaluation_outputs(local_dir, keras_model, train_report, test_report, title,
                                                       evaluation.get("human_error"))
    return test_report, metrics, paths, diagnosis


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
