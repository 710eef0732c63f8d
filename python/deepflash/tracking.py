"""MLflow tracking for searches: a parent run per search, a nested run per trial.

A small hook for now (issue 4 grows it into the full tracking module). It uses whatever tracking
URI MLflow is configured with (``MLFLOW_TRACKING_URI`` or ``mlflow.set_tracking_uri``); without
one, MLflow logs to its local default store. Without MLflow installed, nothing is logged.
"""
from __future__ import annotations

import json
import logging
import time

log = logging.getLogger("deepflash")


class SearchTracker:
    """Logs one search: ``start`` opens the parent run, ``trial`` adds a nested run, ``end`` closes."""

    def __init__(self, enabled: bool = True):
        self.mlflow = None
        self.parent_id: str | None = None
        if enabled:
            try:
                import mlflow

                self.mlflow = mlflow
            except ImportError:
                log.info("mlflow is not installed: the search is not tracked")

    def start(self, name: str, params: dict) -> None:
        if self.mlflow is None:
            return
        run = self.mlflow.start_run(run_name=name, nested=self.mlflow.active_run() is not None)
        self.parent_id = run.info.run_id
        self.mlflow.log_params({k: _short(v) for k, v in params.items()})

    def trial(self, tid: int, result: dict) -> None:
        """One nested run: the trial's params, its per-epoch history as metric steps, status and error."""
        if self.mlflow is None or self.parent_id is None:
            return
        from mlflow.entities import Metric, Param, RunTag

        client = self.mlflow.tracking.MlflowClient()
        experiment_id = client.get_run(self.parent_id).info.experiment_id
        run = client.create_run(experiment_id, run_name=f"trial-{tid}",
                                tags={"mlflow.parentRunId": self.parent_id, "deepflash.trial": str(tid),
                                      "deepflash.status": result.get("status", "?")})
        now = int(time.time() * 1000)
        metrics = [Metric(key, float(v), now, step) for key, values in (result.get("history") or {}).items()
                   for step, v in enumerate(values)]
        if result.get("status") == "ok":
            metrics.append(Metric("search_metric", float(result["metric"]), now, 0))
        params = [Param(k, _short(v)) for k, v in (result.get("params") or {}).items()]
        tags = [RunTag("deepflash.error", result["error"][:5000])] if result.get("error") else []
        client.log_batch(run.info.run_id, metrics=metrics, params=params, tags=tags)
        client.set_terminated(run.info.run_id, "FINISHED" if result.get("status") == "ok" else "FAILED")

    def end(self, best: dict | None) -> None:
        if self.mlflow is None or self.parent_id is None:
            return
        if best:
            self.mlflow.log_metric("best_metric", float(best["metric"]))
            self.mlflow.set_tag("deepflash.best_params", _short(best["params"]))
        self.mlflow.end_run()
        self.parent_id = None


def _short(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]
