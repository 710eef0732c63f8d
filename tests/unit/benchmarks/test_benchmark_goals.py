"""The benchmark's goals table and its plot, from measured rows (no Spark)."""
from __future__ import annotations

import os

from benchmarks.suite import goals_table
from deepflash.reporting.plots import goal_bars


def _rows():
    return [{"name": "(a) plain Keras model.fit", "seconds": 10.0},
            {"name": "local numProc=1, second fit", "seconds": 10.5, "train_seconds": 10.0},
            {"name": "horovod numProc=1, second fit", "seconds": 21.0, "train_seconds": 12.0}]


def test_goals_are_computed_from_the_runs_and_judged_against_their_bounds(tmp_path):
    search = {"ratio": 1.3, 1: {"overhead_per_trial": 0.4}, 2: {"overhead_per_trial": 2.5}}
    goals = {g["goal"]: g for g in goals_table(_rows(), 10.0, {"ratio": 1.4}, search,
                                                {"stream_vs_memory_throughput": 0.82})}
    assert goals["local second fit / plain Keras"]["value"] == 1.05 and goals["local second fit / plain Keras"]["met"]
    fixed = goals["Horovod 1-process fixed cost outside the epochs (s)"]
    assert fixed["value"] == 9.0 and not fixed["met"]
    assert goals["Horovod epoch time / local epoch time"]["value"] == 1.2
    assert goals["transform / model.predict"]["met"]
    assert not goals["streaming throughput / in-memory"]["met"]  # higher is better there
    assert not goals["8 trials, parallelism 2 / parallelism 1"]["met"]
    assert "8 trials, parallelism 2 / parallelism 1, trials phase only" not in goals  # not measured: left out
    search.update(trials_ratio=1.05)
    search[2]["trials_phase_overhead_per_trial"] = 0.8
    phase = {g["goal"]: g for g in goals_table(_rows(), 10.0, None, search, None)}
    assert phase["8 trials, parallelism 2 / parallelism 1, trials phase only"]["met"]
    assert phase["overhead per trial outside training (s), parallelism 2, trials phase only"]["value"] == 0.8
    path = goal_bars(list(goals.values()), str(tmp_path / "goals.png"))
    assert os.path.getsize(path) > 10_000


def test_missing_runs_leave_their_goals_out():
    goals = goals_table(_rows()[:2], 10.0, None, None, None)
    assert [g["goal"] for g in goals] == ["local second fit / plain Keras",
                                          "local second fit: overhead outside the epochs (s)"]
