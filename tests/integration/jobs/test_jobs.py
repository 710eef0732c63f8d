"""The jobs end to end: spark-submit train, predict, tune and a tiny study; their plots, reports
and MLflow runs; the report rendered in headless Chromium; the Databricks notebook. The train job
reads a JSON version of conf/default.yaml, so JSON configs are run end to end."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deepflash.jobs import predict as predict_job
from deepflash.jobs import study as study_job
from deepflash.jobs import train as train_job
from deepflash.jobs import tune as tune_job

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


def png_size(path) -> tuple[int, int]:
    """(width, height) from a PNG header; fails if the file is not a PNG."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert len(data) > 2000, f"{path} is nearly empty ({len(data)} bytes)"
    return struct.unpack(">II", data[16:24])


# The modern profile has no Horovod: there the default job trains with the local backend.
LOCAL_WITHOUT_HOROVOD = [] if importlib.util.find_spec("horovod") else ["--set", "model.backend=local",
                                                                         "--set", "model.numProc=1"]


@pytest.fixture(scope="module")
def train_output(tmp_path_factory):
    """`spark-submit jobs/train.py --config default.json` (conf/default.yaml as tab-indented JSON:
    Horovod, 2 processes), 4 epochs."""
    out = tmp_path_factory.mktemp("jobs") / "train"
    config = out.parent / "default.json"
    config.write_text(json.dumps(yaml.safe_load((ROOT / "conf" / "default.yaml").read_text()), indent="\t"))
    submit = Path(sys.executable).parent / "spark-submit"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    done = subprocess.run([str(submit), "--master", "local[2]", "--driver-memory", "2g", "jobs/train.py",
                           "--config", str(config), "--output", str(out), "--set", "model.epochs=4",
                           "--set", "tracking.registered_model=deepflash-test-digits", *LOCAL_WITHOUT_HOROVOD],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return out, done


def test_train_job_writes_model_metrics_plots_report_and_mlflow_run(spark, train_output):
    import mlflow
    from mlflow.tracking import MlflowClient

    from deepflash import KerasModel

    out, done = train_output
    assert (out / "model" / "metadata").is_dir() and (out / "model" / "stages").is_dir()
    saved = json.loads((out / "metrics.json").read_text())
    metrics = saved["metrics"]
    assert metrics["test"]["accuracy"] >= 0.85 and metrics["epochs_run"] == 4
    assert {"accuracy", "macro_f1", "weighted_precision", "harmonic_mean_class_accuracy"} <= set(metrics["test"])
    assert len(saved["test_report"]["confusion_matrix"]) == 10
    assert saved["diagnosis"]["focus"] in ("bias", "variance", "data_mismatch", "none")
    for name in ("learning_curves.png", "confusion_matrix.png"):
        assert png_size(out / "plots" / name)[0] >= 600
    assert (out / "report.html").stat().st_size > 20000
    assert not list(out.parent.glob("train.tmp-*")), "a temporary output directory was left behind"
    run_json = json.loads((out / "run.json").read_text())
    assert set(run_json) == {"mlflow_run_id", "model_uri", "network_uri"}
    run_id = run_json["mlflow_run_id"]
    run = MlflowClient().get_run(run_id)  # a real run in the tracking store the job logged to
    assert run.info.status == "FINISHED" and mlflow.active_run() is None
    # the model_uri is this run's model, and it loads as the fitted pipeline
    assert mlflow.models.get_model_info(run_json["model_uri"]).run_id == run_id
    loaded = mlflow.spark.load_model(run_json["model_uri"])
    assert isinstance(loaded.stages[-1], KerasModel) and loaded.stages[-1].getInputDim() == 64
    assert run.data.params["optimizer"] == "adam"
    assert run.data.params["numProc"] == ("1" if LOCAL_WITHOUT_HOROVOD else "2")
    assert run.data.metrics["test.accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert len(MlflowClient().get_metric_history(run_id, "val_accuracy")) == 4
    artifacts = {a.path for a in MlflowClient().list_artifacts(run_id)}
    assert {"model", "plots", "report.html", "metrics.json", "history.json"} <= artifacts
    # Beside the Spark model, the network as a pyfunc model (served without Spark). The Spark flavor
    # writes its files into the run's artifacts; MLflow 3 keeps a pyfunc's with the logged model,
    # which names the run as its source (runs:/<run id>/network resolves to it).
    logged = MlflowClient().search_logged_models([run.info.experiment_id], f"source_run_id = '{run_id}'")
    assert [m.name for m in logged] == ["network"]
    network = mlflow.models.get_model_info(run_json["network_uri"])
    assert network.run_id == run_id and set(network.flavors) == {"python_function"}
    assert "spark" in mlflow.models.get_model_info(run_json["model_uri"]).flavors
    assert network.signature.inputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 64)
    # Progress per epoch, on the driver's stderr. Spark 4.3's spark-submit merges the Python driver's
    # stderr into its own stdout (even sys.__stderr__ lands there), so look at both.
    assert "epoch 4/4" in done.stderr + done.stdout
    versions = MlflowClient().search_model_versions("name = 'deepflash-test-digits'")
    assert [v.run_id for v in versions] == [run_id]


# pyspark's in-process Connect server (`builder.remote("local[2]")`, the suite's session in the
# connect pass) listens on Spark Connect's default port.
LOCAL_CONNECT_URL = "sc://localhost:15002"


@pytest.mark.connect
@pytest.mark.both_profiles(reason="the jobs save and score a Keras 2 or a Keras 3 network")
def test_train_and_predict_jobs_run_in_process_on_the_suite_session(spark, digits, tmp_path):
    """`deepflash train` then `deepflash predict` through jobs.main, in this process; in the
    connect pass with `--remote` on the local Connect server, so the jobs run with no SparkContext."""
    from deepflash.jobs import main as jobs_main
    from deepflash.spark.session import is_connect

    remote = ["--remote", LOCAL_CONNECT_URL] if is_connect(spark) else []
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"source": "digits", "test_fraction": 0.2, "seed": 7},
        "model": {"layers": "simple", "optimizer": "adam", "learningRate": 0.005, "epochs": 5, "backend": "local",
                  "numProc": 1, "seed": 3, "storePath": str(tmp_path / "store")},
        "tracking": {"enabled": False}, "spark": {"master": "local[2]"}}))
    out = tmp_path / "train"
    assert jobs_main.main(["train", "--config", str(config), "--output", str(out), *remote]) == 0
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["test"]["accuracy"] >= 0.8 and metrics["epochs_run"] == 5
    assert (out / "model" / "metadata").is_dir() and (out / "report.html").stat().st_size > 20000
    _, test = digits
    rows = tmp_path / "rows.parquet"
    test.select("features").write.parquet(str(rows))
    scored = tmp_path / "scored"
    assert jobs_main.main(["predict", "--model", str(out / "model"), "--input", str(rows),
                           "--output", str(scored), *remote]) == 0
    predicted = spark.read.parquet(str(scored))
    assert predicted.count() == test.count() and "prediction" in predicted.columns


def test_existing_output_is_kept_without_overwrite(train_output):
    out, _ = train_output
    before = (out / "metrics.json").read_text()
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        train_job.run({"model": {"backend": "local"}}, str(out))
    assert (out / "metrics.json").read_text() == before


def test_config_errors_exit_before_spark_with_the_key_path(tmp_path):
    submit = Path(sys.executable).parent / "spark-submit"
    done = subprocess.run([sys.executable, "jobs/train.py", "--config", "conf/default.yaml", "--output",
                           str(tmp_path / "x"), "--set", "model.optimizer=adamm"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "config error: model.optimizer: `optimizer` == 'adamm', must be one of" in done.stderr
    assert not (tmp_path / "x").exists() and submit.exists()


def test_mlflow_model_scores_with_spark_udf(spark, train_output, digits):
    import mlflow
    import pandas as pd
    from pyspark.ml import PipelineModel
    from pyspark.ml.functions import vector_to_array

    out, _ = train_output
    model_uri = json.loads((out / "run.json").read_text())["model_uri"]
    _, test = digits
    test = test.limit(40)
    udf = mlflow.pyfunc.spark_udf(spark, model_uri, result_type="double")
    scored = test.withColumn("mlflow_prediction", udf(vector_to_array("features")))
    expected = PipelineModel.load(str(out / "model")).transform(test)
    got = [r.mlflow_prediction for r in scored.select("mlflow_prediction").collect()]
    want = [r.prediction for r in expected.select("prediction").collect()]
    assert len(got) == 40 and got == want
    # the pyfunc network, outside Spark, on the same rows' features
    run_id = json.loads((out / "run.json").read_text())["mlflow_run_id"]
    features = [r.x for r in test.select(vector_to_array("features").alias("x")).collect()]
    served = mlflow.pyfunc.load_model(f"runs:/{run_id}/network").predict(pd.DataFrame({"features": features}))
    assert served["prediction"].tolist() == want


def test_predict_scores_parquet_with_the_saved_model(spark, train_output, digits, tmp_path):
    _, test = digits
    source = str(tmp_path / "in.parquet")
    test.write.parquet(source)
    target = tmp_path / "scored"
    rows = predict_job.run({}, str(train_output[0] / "model"), source, None, str(target))
    scored = spark.read.parquet(str(target))
    assert rows == test.count() == scored.count()
    assert {"prediction", "probability", "label"} <= set(scored.columns)
    from helpers import accuracy

    assert accuracy(scored) >= 0.85
    with pytest.raises(FileExistsError):
        predict_job.run({}, str(train_output[0] / "model"), source, None, str(target))
    with pytest.raises(FileNotFoundError, match="no saved model at file:"):
        predict_job.run({}, str(tmp_path / "nope"), source, None, str(tmp_path / "o2"))


@pytest.fixture(scope="module")
def tune_output(tmp_path_factory):
    from deepflash.jobs.config import validate

    out = tmp_path_factory.mktemp("tune") / "tune"
    config = validate({
        "data": {"source": "digits", "seed": 7},
        "model": {"backend": "local", "epochs": 6, "batchSize": 32, "seed": 1},
        "search": {"algo": "random", "maxEvals": 4, "parallelism": 1, "metric": "val_accuracy", "mode": "max",
                   "space": {"learningRate": {"loguniform": [1e-3, 3e-2]},
                             "optimizer": {"choice": ["adam", "nadam"]},
                             "batchSize": {"choice": [16, 64]}}},
        "tracking": {"experiment": "deepflash-test-tune"},
    })
    metrics = tune_job.run(config, str(out))
    return out, metrics


def test_tune_job_writes_trials_plots_report_and_logs_to_the_search_run(tune_output):
    from mlflow.tracking import MlflowClient

    out, metrics = tune_output
    import pandas as pd

    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 4 and {"latency_ms", "num_params", "learningRate"} <= set(trials.columns)
    assert (trials["latency_ms"] > 0).all() and (trials["num_params"] > 1000).all()
    assert metrics["test"]["accuracy"] >= 0.9
    for name in ("search_progress.png", "parallel_coordinates.png", "learning_curves.png", "confusion_matrix.png"):
        assert png_size(out / "plots" / name) > (0, 0)
    runs = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name("deepflash-test-tune").experiment_id],
        filter_string="tags.mlflow.runName = 'search-random'")
    assert len(runs) == 1 and "test.accuracy" in runs[0].data.metrics
    assert {"report.html", "model"} <= {a.path for a in MlflowClient().list_artifacts(runs[0].info.run_id)}
    logged = MlflowClient().search_logged_models([runs[0].info.experiment_id],
                                                 f"source_run_id = '{runs[0].info.run_id}'")
    assert [m.name for m in logged] == ["network"]
    assert metrics["network_uri"] == f"models:/{next(m.model_id for m in logged if m.name == 'network')}"


def test_tune_job_with_optuna_over_two_metrics(tmp_path):
    """search.engine: optuna end to end: NSGA-II over accuracy and latency, the Pareto plot, the
    satisficing choice as the saved search model's best model."""
    import pandas as pd

    from deepflash.jobs.config import validate
    from deepflash.tuning.optuna.search import OptunaSearchModel

    config = validate({
        "data": {"source": "digits", "seed": 7},
        "model": {"backend": "local", "epochs": 2, "batchSize": 32, "seed": 1},
        "search": {"engine": "optuna", "sampler": "nsga2", "maxEvals": 4, "metric": ["val_accuracy", "latency_ms"],
                   "mode": ["max", "min"], "satisficing": {"num_params": "<= 5000"},
                   "space": {"learningRate": {"loguniform": [1e-3, 3e-2]},
                             "layers": {"architecture": {"depth": [1, 1], "units": [16, 256]}}}},
        "tracking": {"enabled": False},
    })
    metrics = tune_job.run(config, str(tmp_path / "tune"))
    trials = pd.read_csv(tmp_path / "tune" / "trials.csv")
    assert len(trials) == 4 and {"val_accuracy", "latency_ms", "pareto"} <= set(trials.columns)
    assert metrics["pareto_front"] == int(trials["pareto"].sum()) >= 1
    assert png_size(tmp_path / "tune" / "plots" / "pareto_front.png") == (800, 500)
    found = OptunaSearchModel.load(str(tmp_path / "tune" / "model" / "stages" /
                                       sorted(os.listdir(tmp_path / "tune" / "model" / "stages"))[-1]))
    chosen = trials[trials["num_params"] <= 5000].sort_values("val_accuracy").iloc[-1]
    assert found.bestParams["learningRate"] == pytest.approx(chosen["learningRate"])
    assert found.bestModel is not None and metrics["test"]["accuracy"] > 0.5


def test_every_plot_renders_from_real_run_data(train_output, tune_output, tmp_path):
    import pandas as pd

    from deepflash.reporting import plots

    history = json.loads((train_output[0] / "metrics.json").read_text())["history"]
    matrix = json.loads((train_output[0] / "metrics.json").read_text())["test_report"]["confusion_matrix"]
    trials = pd.read_csv(tune_output[0] / "trials.csv")
    runs = [{"name": f"trial {r.trial}", "seconds": r.seconds, "test_accuracy": r.metric, "optimizer": r.optimizer}
            for r in trials.itertuples()]
    paths = [
        plots.learning_curves(history, str(tmp_path / "a.png")),
        plots.overlay({"train job": history, "again": {k: v[::-1] for k, v in history.items()}}, "val_loss",
                      str(tmp_path / "b.png")),
        plots.time_vs_accuracy(runs, str(tmp_path / "c.png"), group="optimizer"),
        plots.search_progress(trials, str(tmp_path / "e.png"), mode="max"),
        plots.parallel_coordinates(trials, ["learningRate", "optimizer", "batchSize"], str(tmp_path / "f.png")),
    ]
    for path in paths:
        assert png_size(path) == (800, 500)
    assert png_size(plots.confusion_heatmap(matrix, str(tmp_path / "d.png"))) == (700, 600)
    with pytest.raises(ValueError, match="needs at least a 'loss' series"):
        plots.learning_curves({}, str(tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()


def test_study_job_runs_one_task_per_run_and_draws_its_figures(tmp_path):
    from deepflash.jobs.config import load_config

    config = load_config(str(ROOT / "conf" / "study_optimizers.yaml"), [
        "data.source=digits", "study.presets=[simple]", "study.optimizers=[adam, sgd]", "study.epochs=1",
        "study.learning_rates=[0.1]", "study.losses=[mse, categorical_crossentropy]", "study.batch_sizes=[64]",
        "tracking.experiment=deepflash-test-study"])
    out = tmp_path / "study"
    results = study_job.run(config, str(out))
    assert len(results) == 2 + 2 + 1
    assert all(r["status"] == "ok" for r in results), [r.get("error") for r in results]
    assert all(0 <= r["test_accuracy"] <= 1 and r["train_seconds"] > 0 for r in results)
    table = (out / "results.md").read_text()
    assert table.startswith("| run | group | preset | optimizer |") and table.count("\n") == 2 + len(results)
    assert (out / "results.csv").read_text().count("\n") == 1 + len(results)
    for name in ("optimizers_simple_val_loss.png", "optimizers_simple_val_accuracy.png", "time_vs_accuracy.png",
                 "learning_rate_vs_loss.png", "batch_size.png"):
        assert png_size(out / "plots" / name)[0] > 0
    assert (out / "report.html").exists()


def test_report_renders_every_image_in_headless_chromium(train_output, tmp_path):
    """Opens report.html in Debian's chromium; a probe script reports each image's naturalWidth."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium is not installed: apt-get install chromium (see README prerequisites)"
    page = (train_output[0] / "report.html").read_text()
    probe = ("<script>window.addEventListener('load', () => { const w = [...document.images]"
             ".map(i => i.complete ? i.naturalWidth : -1); document.title = 'WIDTHS:' + w.join(','); });</script>")
    copy = tmp_path / "report.html"
    copy.write_text(page.replace("</body>", probe + "</body>"))
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                           "--dump-dom", copy.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert "<h1>deepflash train</h1>" in dom
    widths = [int(w) for w in dom.split("<title>WIDTHS:")[1].split("</title>")[0].split(",")]
    assert len(widths) == 2 and all(w > 0 for w in widths), widths


def test_databricks_notebook_compiles_and_its_imports_resolve():
    import ast
    import importlib
    import importlib.util

    source = (ROOT / "notebooks" / "databricks_quickstart.py").read_text()
    assert source.startswith("# Databricks notebook source")
    tree = ast.parse(source)
    compile(tree, "databricks_quickstart.py", "exec")
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module.startswith("deepflash"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name) or importlib.util.find_spec(f"{node.module}.{alias.name}"), \
                    f"{node.module} has no {alias.name}"
                names.append(alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
    assert {"KerasEstimator", "OptunaSearch"} <= set(names)
    # Current runtimes have no Horovod and no Hyperopt: the wheel goes in with %pip, training uses barrier.
    assert "# MAGIC %pip install /Volumes/" in source and "deepflash-0.1.0-py3-none-any.whl" in source
    assert 'backend="barrier"' in source and "horovod" not in source.split("# COMMAND")[-1].lower()
    assert "HyperoptSearch" not in source


def test_train_and_predict_on_raw_parquet_columns(spark, digits_columns, tmp_path):
    """data.features as a column list: the saved Pipeline assembles them, so predict scores raw rows."""
    from deepflash.jobs.config import validate
    from helpers import accuracy

    train, test = digits_columns
    source = str(tmp_path / "digits.parquet")
    train.union(test).write.parquet(source)
    columns = [f"px{i}" for i in range(64)]
    config = validate({"data": {"source": "parquet", "path": source, "features": columns, "label": "label",
                                "test_fraction": 0.2, "seed": 3},
                       "model": {"backend": "local", "epochs": 8, "batchSize": 32, "seed": 2},
                       "tracking": {"enabled": False}})
    metrics = train_job.run(config, str(tmp_path / "out"))
    assert metrics["test"]["accuracy"] >= 0.9
    assert not (tmp_path / "run.json").exists() and not (tmp_path / "mlruns.db").exists()
    raw = str(tmp_path / "raw.parquet")
    test.select(*columns, "label").write.parquet(raw)
    predict_job.run({}, str(tmp_path / "out" / "model"), raw, None, str(tmp_path / "scored"))
    assert accuracy(spark.read.parquet(str(tmp_path / "scored"))) >= 0.9
    with pytest.raises(Exception, match="px99"):
        train_job.run(validate({**config, "data": {**config["data"], "features": columns + ["px99"]}}),
                  str(tmp_path / "out2"))
    assert not (tmp_path / "out2").exists() and not list(tmp_path.glob("out2.tmp-*"))
