"""MLflow tracking: training runs (params, per-epoch metrics, history, plots, the fitted
PipelineModel as an MLflow model and its network as a pyfunc model, optional registration) and
searches (a parent run per search, a nested run per trial).

Jobs call :func:`configure` first: an explicit URI wins, then ``MLFLOW_TRACKING_URI``, then a local
SQLite database ``sqlite:///<output root>/mlruns.db`` with artifacts in ``<output root>/mlartifacts``.
Library code (``HyperoptSearch``) uses whatever MLflow is configured with.

Tracking never stops the work it tracks: the first MLflow call that fails (a stopped server, a full
disk) logs one warning and turns its tracker off, and the tracker's :attr:`failure` says what failed;
the job decides what that means once its outputs are in place.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deepflash.tuning.trial import TrialResult

log = logging.getLogger("deepflash")


def end_status(error: BaseException | None) -> str:
    """The MLflow status a run ends with: FINISHED, KILLED on Ctrl-C, FAILED on any other error."""
    if error is None:
        return "FINISHED"
    return "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"


def _close(mlflow, run_id: str, status: str) -> None:
    """Ends ``run_id`` with ``status``: popped from the active runs when it is the active one, so
    no run is left open, and terminated through the client otherwise (e.g. another thread's)."""
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        mlflow.end_run(status)
    else:
        mlflow.tracking.MlflowClient().set_terminated(run_id, status)


def _tail(text: str, limit: int) -> str:
    """The end of ``text``: a traceback's last lines name the error."""
    return text if len(text) <= limit else "..." + text[-(limit - 3):]


@dataclass(frozen=True)
class TrackingFailure:
    """The MLflow call that failed: what the tracker was doing, and the error's type and message.

    Example:
        >>> TrackingFailure.of("log_model", ConnectionError("refused")).as_dict()
        {'during': 'log_model', 'type': 'ConnectionError', 'message': 'refused'}
    """

    during: str
    type: str
    message: str

    @classmethod
    def of(cls, during: str, error: BaseException) -> TrackingFailure:
        return cls(during, type(error).__name__, _tail(str(error), 2000))

    def as_dict(self) -> dict[str, str]:
        return {"during": self.during, "type": self.type, "message": self.message}

    def __str__(self) -> str:
        return f"{self.type} during {self.during}: {self.message}"


class _FailSafe:
    """Runs a tracker's MLflow calls until the first one fails: that one logs a warning and is kept
    as :attr:`failure`; every later call is skipped (a stopped server would make each of them wait
    out MLflow's HTTP retries again)."""

    def __init__(self, what: str):
        self.what = what
        self.failure: TrackingFailure | None = None

    def call(self, during: str, fn: Callable, *args, **kwargs):
        if self.failure is not None:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # KeyboardInterrupt still stops the job
            self.failure = TrackingFailure.of(during, e)
            log.warning("MLflow tracking failed (%s); no more tracking for this %s, which carries on",
                        self.failure, self.what)
            return None


def _fail_safe(during: str):
    """Runs the decorated tracker method through its :class:`_FailSafe`: None when tracking is off."""
    def wrap(method):
        @functools.wraps(method)
        def call(self, *args, **kwargs):
            return self._safe.call(during, method, self, *args, **kwargs)
        return call
    return wrap


_ONE_ATTEMPT = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


@contextlib.contextmanager
def _one_attempt() -> Iterator[None]:
    """MLflow's HTTP calls without retries and with a short timeout, while the block runs: a run is
    closed once more after a failure (so none stays active in this process), and that close must not
    wait out the retries a second time. MLflow reads these variables on every request."""
    saved = {k: os.environ.get(k) for k in _ONE_ATTEMPT}
    os.environ.update(_ONE_ATTEMPT)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _close_after_failure(mlflow, run_id: str) -> None:
    """Ends ``run_id`` FAILED in one attempt; MLflow pops it from the active runs even when the
    server does not answer."""
    with _one_attempt():
        try:
            _close(mlflow, run_id, "FAILED")
        except Exception as e:
            log.debug("could not end MLflow run %s after the tracking failure: %s", run_id, e)


class SearchTracker:
    """Logs one search: ``start`` opens the parent run, ``trial`` adds a nested run, ``end`` closes it.

    Example:
        >>> tracker = SearchTracker()
        >>> tracker.start("search-tpe", {"maxEvals": 20})
        >>> tracker.trial(TrialResult(TrialStatus.OK, number=0, metric=0.9, history={...}, params={...}))
        >>> tracker.end(best_result)            # FINISHED; end(None, error) ends it FAILED or KILLED
    """

    def __init__(self, enabled: bool = True):
        self.mlflow = None
        self.parent_id: str | None = None
        self._safe = _FailSafe("search")
        if enabled:
            try:
                import mlflow

                self.mlflow = mlflow
            except ImportError:
                log.info("mlflow is not installed: the search is not tracked")

    @property
    def failure(self) -> TrackingFailure | None:
        """The MLflow call that failed and turned this tracker off, if one did."""
        return self._safe.failure

    @_fail_safe("start_run")
    def start(self, name: str, params: dict) -> None:
        if self.mlflow is None:
            return
        run = self.mlflow.start_run(run_name=name, nested=self.mlflow.active_run() is not None)
        self.parent_id = run.info.run_id
        self.mlflow.log_params({k: _short(v) for k, v in params.items()})

    @_fail_safe("log_trial")
    def trial(self, result: TrialResult, name: str | None = None) -> None:
        """One nested run for a numbered trial (named ``name``, ``trial-<number>`` by default): its
        params, its per-epoch history as metric steps, its status (tag ``deepflash.status``: ``ok``,
        ``failed`` or ``pruned``), and for a failed trial its error (tag ``deepflash.error``) and
        traceback (``deepflash.traceback``)."""
        if self.mlflow is None or self.parent_id is None:
            return
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

        from deepflash.tuning.trial import TrialStatus

        client = self.mlflow.tracking.MlflowClient()
        experiment_id = client.get_run(self.parent_id).info.experiment_id
        run = client.create_run(experiment_id, run_name=name or f"trial-{result.number}",
                                tags={"mlflow.parentRunId": self.parent_id, "deepflash.trial": str(result.number),
                                      "deepflash.status": result.status.value})
        now = int(time.time() * 1000)
        metrics = [Metric(key, float(v), now, step) for key, values in result.history.items()
                   for step, v in enumerate(values)]
        # A pruned trial ran as asked until the pruner stopped it: FINISHED, tagged deepflash.status=pruned.
        finished = result.status in (TrialStatus.OK, TrialStatus.PRUNED)
        if finished and result.metric is not None:
            metrics.append(Metric("search_metric", float(result.metric), now, 0))
        metrics += [Metric(f"objective_{k}", float(v), now, 0) for k, v in result.objectives.items()]
        params = [Param(k, _short(v)) for k, v in result.params.items()]
        tags = []
        if result.error:
            tags.append(RunTag("deepflash.error", _tail(result.error, MAX_TAG_VAL_LENGTH)))
        if result.traceback:
            tags.append(RunTag("deepflash.traceback", _tail(result.traceback, MAX_TAG_VAL_LENGTH)))
        client.log_batch(run.info.run_id, metrics=metrics, params=params, tags=tags)
        client.set_terminated(run.info.run_id, "FINISHED" if finished else "FAILED")

    @_fail_safe("log_param")
    def note(self, key: str, value) -> None:
        """One more param on the parent run (e.g. the refine stage's space)."""
        if self.mlflow is None or self.parent_id is None:
            return
        self.mlflow.tracking.MlflowClient().log_param(self.parent_id, key, _short(value))

    def end(self, best: TrialResult | None, error: BaseException | None = None) -> None:
        """Closes the parent run: FINISHED with the ``best`` trial's metric and params, or, given the
        ``error`` that stopped the search, FAILED (KILLED for Ctrl-C); FAILED after a tracking failure."""
        if self.mlflow is None or self.parent_id is None:
            return
        run_id, self.parent_id = self.parent_id, None
        if self.failure is None:
            self._safe.call("end_run", self._finish, run_id, best, error)
        if self.failure is not None:
            _close_after_failure(self.mlflow, run_id)

    def _finish(self, run_id: str, best: TrialResult | None, error: BaseException | None) -> None:
        if best and error is None:
            client = self.mlflow.tracking.MlflowClient()
            client.log_metric(run_id, "best_metric", float(best.metric))
            client.set_tag(run_id, "deepflash.best_params", _short(dict(best.params)))
        _close(self.mlflow, run_id, end_status(error))


def _short(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]


def default_tracking_uri(output_root: str) -> str:
    return f"sqlite:///{os.path.abspath(output_root)}/mlruns.db"


def configure(uri: str | None, experiment: str, output_root: str) -> tuple[str, str]:
    """Points MLflow at ``uri`` (or MLFLOW_TRACKING_URI, or the local default) and the experiment.

    Returns (tracking URI, experiment id). A new experiment on a local SQLite store keeps its
    artifacts next to the database, not in the working directory.
    """
    import mlflow

    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(output_root)
    if uri.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(uri[len("sqlite:///"):]) or ".", exist_ok=True)
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        location = None
        if uri.startswith("sqlite:///"):
            location = "file://" + os.path.join(os.path.dirname(uri[len("sqlite:///"):]), "mlartifacts")
        experiment_id = mlflow.create_experiment(experiment, artifact_location=location)
    else:
        experiment_id = found.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return uri, experiment_id


def flatten(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """{"test": {"accuracy": 0.9}} -> {"test.accuracy": 0.9}; non-numbers are dropped."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


class RunTracker:
    """One MLflow run for a training job. Use as a context manager: the run ends FINISHED, FAILED
    when the job raises, KILLED on Ctrl-C, and is never left open. No method raises for an MLflow
    failure: the first one turns the tracker off (see :attr:`failure`) and later calls return None.

    Example:
        >>> with RunTracker("train", {"epochs": 5}) as run:
        ...     run.log_history(model.getHistory())
        >>> run.failure                                   # None, or what failed (a TrackingFailure)
    """

    def __init__(self, run_name: str | None, params: Mapping[str, Any] | None = None,
                 tags: Mapping[str, str] | None = None, run_id: str | None = None):
        import mlflow

        self.mlflow = mlflow
        self.run_id: str | None = run_id
        self._open = False
        self._safe = _FailSafe("job")
        self._safe.call("start_run", self._start, run_name, params, tags, run_id)

    def _start(self, run_name, params, tags, run_id) -> None:
        nested = self.mlflow.active_run() is not None
        if run_id:
            run = self.mlflow.start_run(run_id=run_id, nested=nested)
        else:
            run = self.mlflow.start_run(run_name=run_name, tags=dict(tags or {}), nested=nested)
        self.run_id, self._open = run.info.run_id, True
        if params:
            self.mlflow.log_params({k: _short(v)[:500] for k, v in params.items()})

    @classmethod
    def resume(cls, run_id: str) -> RunTracker:
        """Re-opens a finished run (e.g. a search's parent run) to add metrics and artifacts."""
        return cls(None, run_id=run_id)

    @property
    def failure(self) -> TrackingFailure | None:
        """The MLflow call that failed and turned this tracker off, if one did."""
        return self._safe.failure

    def end(self, error: BaseException | None = None) -> None:
        """Ends the run: FINISHED, or FAILED / KILLED for the ``error`` that stopped the job, or FAILED
        after a tracking failure."""
        if not self._open:
            return
        self._open = False
        self._safe.call("end_run", _close, self.mlflow, self.run_id, end_status(error))
        if self.failure is not None:
            _close_after_failure(self.mlflow, self.run_id)

    def __enter__(self) -> RunTracker:
        return self

    def __exit__(self, kind, value, tb) -> None:
        self.end(value if kind else None)

    @_fail_safe("log_history")
    def log_history(self, history: Mapping[str, Sequence[float]]) -> None:
        """Per-epoch metrics as steps, and the whole history as ``history.json``."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, step) for k, values in history.items() for step, v in enumerate(values)]
        self.mlflow.tracking.MlflowClient().log_batch(self.run_id, metrics=metrics)
        self.mlflow.log_dict({k: list(v) for k, v in history.items()}, "history.json")

    @_fail_safe("log_metrics")
    def log_metrics(self, metrics: Mapping[str, Any]) -> None:
        self.mlflow.log_metrics(flatten(metrics))

    @_fail_safe("log_artifact")
    def log_files(self, paths: Sequence[str], artifact_path: str | None = None) -> None:
        for path in paths:
            self.mlflow.log_artifact(path, artifact_path)

    @_fail_safe("log_model")
    def log_pipeline_model(self, model, registered_model_name: str | None = None,
                           features_col: str = "features") -> str | None:
        """The fitted PipelineModel as an MLflow ``spark`` model (scores with ``mlflow.pyfunc.spark_udf``
        on a features Vector or array column); registered under ``registered_model_name`` if given.
        Returns its model URI (None when tracking is off)."""
        import mlflow.spark
        from mlflow.models import ModelSignature
        from mlflow.types.schema import ColSpec, Schema, SparkMLVector

        # A model whose first stage reads the features Vector scores a features column (Vector or
        # array); a pipeline that assembles raw columns first is logged without a signature.
        first = model.stages[0] if getattr(model, "stages", None) else model
        signature = None
        if first.hasParam("featuresCol") and first.getOrDefault("featuresCol") == features_col:
            signature = ModelSignature(inputs=Schema([ColSpec(SparkMLVector(), features_col)]),
                                       outputs=Schema([ColSpec("double", "prediction")]))
        info = mlflow.spark.log_model(model, "model", registered_model_name=registered_model_name,
                                      signature=signature)
        return info.model_uri

    @_fail_safe("log_network_model")
    def log_network_model(self, model, rows) -> str | None:
        """The PipelineModel's network as an MLflow ``pyfunc`` model named ``network``, beside the
        Spark model (:func:`deepflash.serving.pyfunc.log_pyfunc`; ``mlflow models serve`` and Databricks
        Model Serving score it without Spark). It scores the features after the pipeline's feature
        stages; its input example is the first rows of ``rows`` (a Spark DataFrame of raw rows)
        through those stages. Returns its model URI (None when tracking is off)."""
        from deepflash.serving.pyfunc import log_pyfunc, network_input_rows

        return log_pyfunc(model, "network", input_example=network_input_rows(model, rows)).model_uri
