"""``deepflash.jobs.main``: the job registry, its parser, and every job reading a JSON config
(without Spark: the jobs' ``run`` is replaced by a recorder)."""
from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from deepflash.jobs import main as jobs_main
from deepflash.jobs.config import load_config

CONFIGURED = [job.name for job in jobs_main.JOBS if job.run is not None]


@pytest.fixture()
def recorded(monkeypatch):
    """Every job's ``run`` replaced by one that records its Invocation."""
    calls = []
    monkeypatch.setattr(jobs_main, "JOBS", tuple(
        dataclasses.replace(job, run=calls.append) if job.run is not None else job for job in jobs_main.JOBS))
    return calls


@pytest.fixture()
def json_config(tmp_path):
    path = tmp_path / "default.json"
    path.write_text(json.dumps(yaml.safe_load(open("conf/default.yaml")), indent="\t"))
    return str(path)


def test_the_parser_has_one_subcommand_per_registered_job(capsys):
    names = [job.name for job in jobs_main.JOBS]
    assert {"train", "tune", "predict", "study", "sample", "evolve"} <= set(names) and len(set(names)) == len(names)
    assert "bench" not in names  # the benchmarks live outside the package: jobs/benchmark.py runs them
    with pytest.raises(SystemExit) as done:
        jobs_main.build_parser().parse_args(["--help"])
    assert done.value.code == 0
    listed = " ".join(capsys.readouterr().out.split())  # argparse wraps the help lines
    assert all(job.name in listed and job.help in listed for job in jobs_main.JOBS)


@pytest.mark.parametrize("name", CONFIGURED)
def test_every_job_runs_from_a_json_config_with_overrides(recorded, json_config, tmp_path, name):
    extra = ["--model", str(tmp_path / "model"), "--input", str(tmp_path / "in.parquet")] if name == "predict" else []
    argv = [name, "--config", json_config, "--set", "model.learningRate=1e-3", "--set", "model.epochs=3",
            "--output", str(tmp_path / "out"), *extra]
    assert jobs_main.main(argv) == 0
    [call] = recorded
    assert call.command == name and call.output == str(tmp_path / "out") and not call.overwrite
    assert call.config == load_config("conf/default.yaml", ["model.learningRate=1e-3", "model.epochs=3"])
    assert call.config["model"]["learningRate"] == 0.001
    if name == "predict":
        assert call.args.model == str(tmp_path / "model")


@pytest.mark.parametrize("name", CONFIGURED)
def test_json_config_errors_exit_2_naming_the_key_before_the_job(recorded, json_config, tmp_path, capsys, name):
    extra = ["--model", str(tmp_path / "model")] if name == "predict" else []
    with pytest.raises(SystemExit) as done:
        jobs_main.main([name, "--config", json_config, "--set", "model.optimizer=adamm",
                        "--output", str(tmp_path / "out"), *extra])
    assert done.value.code == 2 and recorded == []
    assert f"deepflash {name}: config error: model.optimizer: `optimizer` == 'adamm', must be one of" \
        in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_output_defaults_to_the_config_then_the_command(recorded, json_config):
    jobs_main.main(["train", "--config", json_config])
    jobs_main.main(["study", "--config", json_config, "--set", "output={}"])
    assert [c.output for c in recorded] == ["output/default", "output/study"]


def test_predict_needs_an_output(recorded, capsys):
    with pytest.raises(SystemExit) as done:
        jobs_main.main(["predict", "--model", "m", "--input", "x"])
    assert done.value.code == 2 and "--output is required" in capsys.readouterr().err and recorded == []


def test_remote_sets_spark_remote_over_the_config(recorded, json_config):
    jobs_main.main(["train", "--config", json_config, "--remote", "sc://localhost:15002"])
    jobs_main.main(["predict", "--model", "m", "--input", "x", "--output", "o", "--remote", "local[2]"])
    [train, predict] = recorded
    assert train.config["spark"] == {**load_config(json_config)["spark"], "remote": "sc://localhost:15002"}
    assert predict.config == {"spark": {"remote": "local[2]"}}


def test_a_bad_remote_exits_2_naming_the_option_before_the_job(recorded, json_config, capsys):
    with pytest.raises(SystemExit) as done:
        jobs_main.main(["train", "--config", json_config, "--remote", "localhost:15002"])
    assert done.value.code == 2 and recorded == []
    assert "deepflash train: config error: --remote: expected a Spark Connect URL, sc://host:port" \
        in capsys.readouterr().err


def test_spark_session_builds_a_connect_session_for_spark_remote(monkeypatch):
    """The builder gets the URL (and not the config's master); the classic-only log level is not set."""
    from pyspark.sql import SparkSession

    from deepflash.jobs import sources

    calls = []

    class Builder:
        def appName(self, name):
            return self

        def remote(self, url):
            calls.append(("remote", url))
            return self

        def master(self, master):
            calls.append(("master", master))
            return self

        def config(self, key, value):
            calls.append(("config", key, value))
            return self

        def getOrCreate(self):
            return type("SparkSession", (), {"__module__": "pyspark.sql.connect.session"})()

    monkeypatch.setattr(SparkSession, "builder", Builder())
    session = sources.spark_session({"spark": {"master": "local[2]", "remote": "sc://localhost:15002",
                                               "conf": {"spark.sql.shuffle.partitions": 4}}})
    assert calls == [("remote", "sc://localhost:15002"), ("config", "spark.sql.shuffle.partitions", "4")]
    assert not hasattr(session, "sparkContext")
