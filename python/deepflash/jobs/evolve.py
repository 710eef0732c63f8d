"""``deepflash evolve``: evolutionary architecture search on a series (the config's ``evolution``
section: EvolutionarySearch Params; ``model``: the KerasEstimator that trains the evaluations' and
the final network). Writes best.json, model.json (Keras config), model/ (a PipelineModel:
LookBackWindow, then the trained network, so it scores the raw series), generations.csv,
generations.png, metrics.json and report.html, atomically; the search is an MLflow parent run
with a nested run per generation. A tracking failure leaves the outputs in place and is recorded in
metrics.json (``tracking_error``).

Example:
    deepflash evolve --config conf/sine_evolution.json --output output/evolve
"""
from __future__ import annotations

import json
import logging
import os
import time

import numpy as np
import pandas as pd

from deepflash.jobs.base import Job
from deepflash.jobs.config import ConfigError
from deepflash.jobs.console import phase
from deepflash.jobs.outputs import local_files, open_output, settle_tracking, start_tracking, write_json

log = logging.getLogger("deepflash")


def _test_errors(model, rows: pd.DataFrame, spark, first_test: int, look_back: int) -> dict:
    """Test MAE of the saved PipelineModel and of persistence (the window's last value) on the
    windows whose targets lie at or after step ``first_test``."""
    frame = spark.createDataFrame(rows.iloc[first_test - look_back:])
    stages = model.stages
    features, label = stages[0].getOutputCol(), stages[0].getLabelCol()
    scored = model.transform(frame).select(features, label, "prediction").toPandas()
    last = np.array([v.toArray()[-1] for v in scored[features]])
    truth = scored[label].to_numpy()
    return {"test_rows": int(len(scored)),
            "test_mae": float(np.mean(np.abs(scored["prediction"].to_numpy() - truth))),
            "persistence_mae": float(np.mean(np.abs(last - truth)))}


def run(config: dict, output: str, overwrite: bool = False) -> dict:
    """Runs the configured search and writes its outputs atomically; returns best.json's content.

    Args:
        config: a validated config with an ``evolution`` section and a series ``data`` source.
        output: the output directory.
        overwrite: replace an existing output.
    """
    from pyspark.ml import PipelineModel

    from deepflash import EvolutionarySearch, KerasEstimator, plots
    from deepflash.jobs.sources import load_series
    from deepflash.ml.timeseries import LookBackWindow
    from deepflash.reporting.report import write_report

    settings = dict(config.get("evolution") or {})
    if not settings:
        raise ConfigError("evolution: required for `evolve`, e.g. {problem: trained, populationSize: 6}")
    data = config.get("data") or {}
    if data.get("source") != "sine":
        raise ConfigError(f"data.source: `evolve` searches a generated series, expected 'sine', found "
                          f"{data.get('source')!r}")
    estimator = KerasEstimator(**{"task": "regression", **(config.get("model") or {})})
    search = EvolutionarySearch(estimator=estimator, **{"orderBy": "t", "valueCols": ["value"], **settings})
    search.validateParams()
    if len(search.getValueCols()) != 1:
        raise ConfigError(f"evolution.valueCols: the generated series has one value column, found "
                          f"{search.getValueCols()}")
    test_fraction = float(data.get("test_fraction", 0.2))
    spark, output, staging = open_output(config, output, overwrite)
    tracking = start_tracking(config, output, "deepflash-evolve")
    search.setTrack(tracking.active)
    with staging as out:
        # The series is generated on the driver; the search collects a series there anyway.
        values = load_series(data)
        rows = pd.DataFrame({search.getOrderBy(): np.arange(len(values)), search.getValueCols()[0]: values})
        steps = len(rows)
        first_test = steps - int(round(steps * test_fraction))
        train_df = spark.createDataFrame(rows.iloc[:first_test])
        started = time.time()
        found = search.fit(train_df)
        seconds = time.time() - started
        arch = found.architecture()
        model_json = found.modelJson()
        # The saved model scores the raw series: LookBackWindow cuts the windows it was trained on.
        window = LookBackWindow(inputCols=search.getValueCols(), outputCol=estimator.getFeaturesCol(),
                                labelCol=estimator.getLabelCol(), lookBack=arch.look_back,
                                orderBy=search.getOrderBy())
        pipeline = PipelineModel(stages=[window, found.bestModel])
        test = {}
        if first_test < steps:
            with phase("scored the test windows"):
                test = _test_errors(pipeline, rows, spark, first_test, arch.look_back)
        best = {"fitness": found.getBestFitness(), "fitness_name": found.getFitnessName(),
                "layers": list(arch.layers), "look_back": arch.look_back, "layer_type": arch.layer_type,
                "activation": arch.activation, "config": json.loads(model_json)}
        write_json(os.path.join(out.local, "best.json"), best)
        with open(os.path.join(out.local, "model.json"), "w") as f:
            f.write(model_json)
        with phase("saved the model"):
            pipeline.save(out.join("model"))
        found.trials.to_csv(os.path.join(out.local, "generations.csv"), index=False)
        with phase("drew the generations plot"):
            plot = plots.generations(found.trials.to_dict(orient="records"),
                                     os.path.join(out.local, "generations.png"), fitness=found.getFitnessName(),
                                     title=f"Evolutionary search ({search.getProblem()})")
        metrics = {"search_seconds": seconds, "evaluations": int(found.trials["evaluated"].sum()), **test}
        with phase("wrote metrics.json and report.html"):
            write_json(os.path.join(out.local, "metrics.json"), {"metrics": metrics, "best": best, "config": config})
            write_report(os.path.join(out.local, "report.html"), "deepflash evolve", config=config,
                         tables={"Best architecture": {k: v for k, v in best.items() if k != "config"},
                                 "Test": metrics, "Generations": found.trials},
                         plots=[plot])
    failure = found.trackingFailure
    if tracking.active and failure is None and found.mlflowRunId:
        from deepflash.reporting.tracking import RunTracker

        # A failed MLflow call warns and turns the tracker off: then no "logged" line.
        with RunTracker.resume(found.mlflowRunId) as tracker, \
                phase("logged the test errors, plot and files to MLflow", ok=lambda: tracker.failure is None), \
                local_files(output, ["generations.png", "best.json", "model.json", "generations.csv",
                                     "report.html"]) as files:
            tracker.log_metrics({"test": test})
            tracker.log_files(files[:1], "plots")
            tracker.log_files(files[1:])
        failure = tracker.failure
    print(json.dumps({"output": output, "fitness": best["fitness"], "layers": best["layers"],
                      "look_back": best["look_back"], **test}, indent=2))
    settle_tracking(tracking, failure, output, "metrics.json", best)
    return best


JOB = Job("evolve", "evolutionary architecture search with the config's `evolution` section",
          lambda call: run(call.config, call.output, overwrite=call.overwrite))
