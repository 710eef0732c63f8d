"""`deepflash evolve` end to end on conf/sine_evolution.json, shrunk: its outputs, the Keras config,
the saved PipelineModel, the MLflow runs (one per search, one nested per generation), and the
refusal to overwrite."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepflash.jobs import evolve as evolve_job
from deepflash.jobs.config import load_config
from deepflash.jobs.main import main

ROOT = Path(__file__).resolve().parents[3]
SMALL = ["data.steps=300", "evolution.populationSize=4", "evolution.generations=1", "evolution.searchEpochs=3",
         "evolution.maxUnits=6", "evolution.maxLookBack=5", "model.epochs=20"]


@pytest.fixture(scope="module")
def evolved(tmp_path_factory):
    out = tmp_path_factory.mktemp("evolve") / "out"
    config = load_config(str(ROOT / "conf" / "sine_evolution.json"), SMALL + [
        "tracking.enabled=true", f"tracking.uri=sqlite:///{out.parent}/mlruns.db",
        "tracking.experiment=deepflash-test-evolve"])
    best = evolve_job.run(config, str(out))
    return out, best


@pytest.mark.slow
def test_evolve_job_writes_best_model_generations_plot_and_report(spark, evolved):
    import tensorflow as tf
    from pyspark.ml import PipelineModel

    out, best = evolved
    saved = json.loads((out / "best.json").read_text())
    assert saved == json.loads(json.dumps(best))
    assert {"fitness", "layers", "look_back", "config"} <= set(saved)
    assert saved["layers"][0] == 1 and saved["layers"][-1] == 1 and 1 <= saved["look_back"] <= 5
    loaded = tf.keras.models.model_from_json((out / "model.json").read_text())
    assert loaded.input_shape == (None, saved["look_back"]) and loaded.output_shape == (None, 1)
    assert json.loads((out / "model.json").read_text()) == saved["config"]
    generations = pd.read_csv(out / "generations.csv")
    assert generations["generation"].tolist() == [0, 1]
    assert generations["best_so_far"].iloc[-1] == pytest.approx(saved["fitness"])
    assert (out / "generations.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Generations" in (out / "report.html").read_text()
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["test_rows"] == 60 and metrics["test_mae"] < metrics["persistence_mae"]
    # The saved PipelineModel scores the raw series: windows first, then the network.
    model = PipelineModel.load(str(out / "model"))
    t = np.arange(400, 460)
    raw = spark.createDataFrame(pd.DataFrame({"t": t, "value": np.sin(2 * np.pi * t / 25)}))
    scored = model.transform(raw).toPandas()
    assert len(scored) == 60 - saved["look_back"]
    assert np.mean(np.abs(scored["prediction"] - scored["label"])) < 0.3


@pytest.mark.slow
def test_evolve_job_logs_one_parent_run_with_a_run_per_generation(evolved):
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment_by_name("deepflash-test-evolve").experiment_id
    parents = client.search_runs([experiment], filter_string="tags.mlflow.runName = 'evolution-trained'")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert "test.test_mae" in parents[0].data.metrics or "test_mae" in str(parents[0].data.metrics)
    children = client.search_runs([experiment],
                                  filter_string=f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'")
    assert sorted(r.info.run_name for r in children) == ["generation-0", "generation-1"]
    assert all("best_so_far" in r.data.metrics for r in children)


@pytest.mark.slow
def test_evolve_job_refuses_an_existing_output_and_bad_config(evolved, capsys):
    out, _ = evolved
    before = (out / "best.json").read_text()
    with pytest.raises(Exception, match="exists"):
        evolve_job.run(load_config(str(ROOT / "conf" / "sine_evolution.json"), SMALL), str(out))
    assert (out / "best.json").read_text() == before
    with pytest.raises(SystemExit) as exit_info:
        main(["evolve", "--config", str(ROOT / "conf" / "sine_evolution.json"), "--set", "evolution.minLayers=3"])
    assert exit_info.value.code == 2
    assert "evolution.minLayers: `minLayers` == 3, must be <= `maxLayers` == 2" in capsys.readouterr().err


def test_evolve_job_needs_a_series_source_and_says_so_before_spark(tmp_path):
    from deepflash.jobs.config import ConfigError

    config = load_config(str(ROOT / "conf" / "sine_evolution.json"), ["data.source=digits"])
    with pytest.raises(ConfigError, match=r"data.source: `evolve` searches a generated series, expected 'sine'"):
        evolve_job.run(config, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
