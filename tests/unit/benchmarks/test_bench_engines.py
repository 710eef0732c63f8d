"""The search-engines benchmark's pieces without Spark: the budget curve, the search each engine
name builds, the table and the plot."""
from __future__ import annotations

import pandas as pd

from benchmarks.engines import ENGINES, budget_curve, engines_lines, engines_plot, make_search
from deepflash import HyperoptSearch, KerasEstimator, OptunaSearch


def test_the_budget_curve_counts_every_epoch_but_only_ok_trials_as_best():
    trials = pd.DataFrame({"trial": [2, 0, 1, 3], "status": ["ok", "ok", "pruned", "failed"],
                           "metric": [0.7, 0.6, 0.9, float("nan")], "epochs_run": [6, 6, 1, 0]})
    spent, curve = budget_curve(trials)
    assert spent == [6, 7, 13, 13]
    assert curve == [0.6, 0.6, 0.7, 0.7]   # the pruned trial's 0.9 is not a finished model's score


def test_each_engine_name_builds_its_search():
    est = KerasEstimator()
    built = {name: make_search(name, est, 24, 1, {"learningRate": {"loguniform": [1e-4, 1e-1]}}) for name in ENGINES}
    assert isinstance(built["hyperopt-tpe"], HyperoptSearch) and built["hyperopt-tpe"].getAlgo() == "tpe"
    assert [(built[n].getSampler(), built[n].getPruner()) for n in ENGINES[1:]] == [
        ("tpe", "none"), ("tpe", "asha"), ("gp", "none")]
    assert all(isinstance(built[n], OptunaSearch) and built[n].getMaxEvals() == 24 for n in ENGINES[1:])


def test_table_goal_and_plot(tmp_path):
    runs = [{"engine": e, "seed": s, "seconds": 10.0 + s, "best": b + 0.01 * s, "trial_epochs": ep, "pruned": p,
             "spent": [ep / 2, ep], "curve": [b - 0.1, b + 0.01 * s]}
            for e, b, ep, p in (("hyperopt-tpe", 0.85, 144, 0), ("optuna-tpe-asha", 0.85, 60, 14)) for s in (0, 1)]
    summary = {e: {k: {"mean": sum(r[k] for r in runs if r["engine"] == e) / 2, "std": 0.005}
                   for k in ("best", "trial_epochs", "seconds", "pruned")} for e in ("hyperopt-tpe", "optuna-tpe-asha")}
    result = {"runs": runs, "summary": summary, "rows": 10000, "epochs": 6, "trials": 24, "seeds": 2,
              "goal": {"accuracy_gap": 0.0, "tolerance": 0.005, "epochs_ratio": 60 / 144, "met": True}}
    text = "\n".join(engines_lines(result))
    assert "| optuna-tpe-asha | 0.8550 ± 0.0050 | 60 ± 0 | 14.0 |" in text and "ratio 0.42" in text and "met" in text
    path = engines_plot(result, str(tmp_path / "engines.png"))
    assert (tmp_path / "engines.png").stat().st_size > 10_000 and path.endswith("engines.png")
