"""`deepflash sample` end to end through the package's main, on the shipped sine config."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepflash.evolution import mae_random_sampling
from deepflash.jobs.main import main
from deepflash.ml.timeseries import window_arrays

CONF = str(Path(__file__).resolve().parents[3] / "conf" / "sine_mae_sampling.json")


@pytest.mark.connect
def test_sample_job_writes_the_listing(spark, tmp_path):
    """In the connect pass, with ``--remote`` on the suite's local Connect server."""
    from deepflash.spark.session import is_connect

    remote = ["--remote", "sc://localhost:15002"] if is_connect(spark) else []
    out = tmp_path / "sampling"
    assert main(["sample", "--config", CONF, "--output", str(out), "--set", "sampling.samples=40", *remote]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sampling"]  # the staging sibling is gone
    listing = json.loads((out / "sampling.json").read_text())
    assert listing["look_back"] == 2 and listing["architecture"] == [1, 2, 2, 1]
    assert set(listing["metrics"]) == {"log_p", "p", "mean", "samples", "std"}
    assert listing["metrics"]["samples"] == 40 and listing["init"] == "normal"
    # The same draws on the driver give the same figures.
    series = np.sin(2 * np.pi * np.arange(1000) / 100)
    local = mae_random_sampling(*window_arrays(series, 2), [2, 2], samples=40, seed=0,
                                threshold=listing["threshold"])
    assert listing["metrics"]["mean"] == pytest.approx(local.mean, rel=1e-6)
    assert listing["metrics"]["std"] == pytest.approx(local.std, rel=1e-5)
    assert listing["metrics"]["log_p"] == pytest.approx(local.log_p, rel=1e-5)
    assert listing["threshold"] == pytest.approx(0.5 * np.mean(np.abs(series - series.mean())))
    # An existing output is kept without --overwrite.
    before = (out / "sampling.json").read_text()
    with pytest.raises(FileExistsError, match="exists; pass --overwrite"):
        main(["sample", "--config", CONF, "--output", str(out), "--set", "sampling.seed=1", *remote])
    assert (out / "sampling.json").read_text() == before
