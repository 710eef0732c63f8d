"""sample_architectures: one Spark task per candidate architecture, on local[2]."""
from __future__ import annotations

import numpy as np
import pytest

from deepflash.evolution import mae_random_sampling, mean_predictor_mae, sample_architectures
from deepflash.ml.timeseries import window_arrays


def test_one_task_per_candidate_matches_the_local_function(spark):
    series = np.sin(2 * np.pi * np.arange(400) / 50)
    candidates = [(2, [2, 2]), (5, [4])]
    sc = spark.sparkContext
    sc.setJobGroup("mae-sampling-test", "sample_architectures")
    try:
        results = sample_architectures(spark, series, candidates, samples=30, seed=4)
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    tracker = sc.statusTracker()
    (job,) = tracker.getJobIdsForGroup("mae-sampling-test")
    assert [tracker.getStageInfo(s).numTasks for s in tracker.getJobInfo(job).stageIds] == [2]
    threshold = 0.5 * mean_predictor_mae(series)
    assert [(r.look_back, r.architecture) for r in results] == [(2, (1, 2, 2, 1)), (5, (1, 4, 1))]
    for (look_back, hidden), result in zip(candidates, results, strict=True):
        assert result.threshold == pytest.approx(threshold) and result.samples == 30
        local = mae_random_sampling(*window_arrays(series, look_back), hidden, samples=30, seed=4,
                                    threshold=threshold)
        assert result.maes == pytest.approx(local.maes, rel=1e-5)
        assert result.log_p == pytest.approx(local.log_p, rel=1e-5)
