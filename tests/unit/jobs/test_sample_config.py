"""The `sample` job's config: the `sampling` section, the `sine` data source, and errors that exit
with status 2 before Spark starts; no Spark."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepflash.jobs.config import ConfigError, load_config
from deepflash.jobs.main import main
from deepflash.jobs.sources import load_series

CONF = str(Path(__file__).resolve().parents[3] / "conf" / "sine_mae_sampling.json")


def test_the_shipped_config_is_the_published_listing():
    config = load_config(CONF)
    assert config["sampling"]["look_back"] == 2 and config["sampling"]["architecture"] == [1, 2, 2, 1]
    series = load_series(config["data"])
    assert series.shape == (1000,)
    np.testing.assert_allclose(series, np.sin(2 * np.pi * np.arange(1000) / 100))


def test_sine_noise_is_seeded():
    a = load_series({"source": "sine", "steps": 50, "noise": 0.1, "seed": 3})
    b = load_series({"source": "sine", "steps": 50, "noise": 0.1, "seed": 3})
    assert np.array_equal(a, b) and not np.allclose(a, np.sin(2 * np.pi * np.arange(50) / 100))


@pytest.mark.parametrize("override, match", [
    ("sampling.architecture=[1, 2]", r"sampling.architecture: expected units per layer .* found \[1, 2\]"),
    ("sampling.architecture=[1, 2, 2]", r"sampling.architecture: .*1 output unit"),
    ("sampling.architecture=[1, 0, 1]", r"sampling.architecture\[1\]: expected an integer >= 1, found 0"),
    ("sampling.architecture=[2, 2, 1]", r"sampling.architecture: starts with the input's units, 1 for the sine"),
    ("sampling.look_back=0", r"sampling.look_back: expected an integer >= 1, found 0"),
    ("sampling.init=xavier", r"sampling.init: 'xavier' is not one of glorot_uniform, normal"),
    ("sampling.samples=0", r"sampling.samples: expected an integer >= 1"),
    ("sampling.threshold=-1", r"sampling.threshold: expected a number > 0"),
    ("sampling.draws=5", r"sampling.draws: unknown key"),
    ("data.steps=1", r"data.steps: expected an integer >= 2"),
    ("data.noise=-0.1", r"data.noise: expected a number >= 0"),
])
def test_bad_sampling_config_names_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(CONF, [override])


def _exits_2_before_spark(args, capsys, message, out):
    from pyspark import SparkContext

    # Run alone, no SparkContext may appear; after the integration tests (one session for the whole
    # run) the job must not run a Spark job on it.
    active = SparkContext._active_spark_context
    jobs_before = None if active is None else set(active.statusTracker().getJobIdsForGroup())
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert f"deepflash sample: config error: {message}" in capsys.readouterr().err
    assert not out.exists()
    if active is None:
        assert SparkContext._active_spark_context is None
    else:
        assert set(active.statusTracker().getJobIdsForGroup()) == jobs_before


@pytest.mark.parametrize("override, message", [
    ("sampling.look_back=1000", "sampling.look_back: 1000 leaves no window in a series of 1000 steps"),
    ("data.source=digits", "data.source: a time-series job needs a series; expected 'sine', found 'digits'"),
])
def test_job_errors_exit_2_before_spark(tmp_path, capsys, override, message):
    out = tmp_path / "out"
    _exits_2_before_spark(["sample", "--config", CONF, "--output", str(out), "--set", override], capsys, message, out)


def test_missing_architecture_exits_2_before_spark(tmp_path, capsys):
    config = json.loads(Path(CONF).read_text())
    del config["sampling"]["architecture"]
    path = tmp_path / "no_architecture.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "out"
    _exits_2_before_spark(["sample", "--config", str(path), "--output", str(out)], capsys,
                          "sampling.architecture: required", out)
