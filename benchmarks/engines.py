"""Benchmark section (``--engines``): the search engines side by side on one space and trial budget.

Hyperopt TPE, Optuna TPE without pruning, Optuna TPE with ASHA (successive halving) and Optuna GP
search the same space with the same number of trials, per seed. For each: the best validation
accuracy after n trials (mean ± std over seeds), the trial-epochs run (pruned trials stop early),
and the wall time; and a plot of the best so far against the trial-epochs spent.

Off by default: at its full size (10k rows, 6 epochs, 24 trials, 3 seeds: 288 trial fits) it
takes about an hour on two cores. ``--engines-trials 12 --engines-epochs 3 --engines-seeds 1`` is
a quick look.
"""
from __future__ import annotations

import logging
import time

import numpy as np

log = logging.getLogger("deepflash")
ENGINES = ("hyperopt-tpe", "optuna-tpe", "optuna-tpe-asha", "optuna-gp")


def make_search(name: str, estimator, trials: int, seed: int, space: dict):
    """The search stage of one engine configuration, ranking by val_accuracy, without refit."""
    from deepflash import HyperoptSearch, OptunaSearch

    common = dict(estimator=estimator, space=space, maxEvals=trials, parallelism=1, metric="val_accuracy",
                  mode="max", seed=seed, refit=False, track=False)
    if name == "hyperopt-tpe":
        return HyperoptSearch(algo="tpe", **common)
    sampler, pruner = {"optuna-tpe": ("tpe", "none"), "optuna-tpe-asha": ("tpe", "asha"),
                       "optuna-gp": ("gp", "none")}[name]
    return OptunaSearch(sampler=sampler, pruner=pruner, **common)


def budget_curve(trials) -> tuple[list[float], list[float]]:
    """(trial-epochs spent, best val_accuracy of an ok trial so far) after each trial, in trial order."""
    t = trials.sort_values("trial")
    spent = np.cumsum(t["epochs_run"].fillna(0).to_numpy(dtype=float))
    best, curve = np.nan, []
    for status, value in zip(t["status"], t["metric"], strict=True):
        if status == "ok" and value == value and not (best >= value):
            best = float(value)
        curve.append(best)
    return [float(s) for s in spent], curve


def engines_benchmark(train_df, args, store: str, space: dict) -> dict:
    """Runs every engine in ``args.engines_list`` for ``args.engines_seeds`` seeds; returns runs and summary."""
    from deepflash import KerasEstimator

    df = train_df.limit(args.engines_rows) if args.engines_rows else train_df
    df = df.cache()
    df.count()
    names = [n for n in args.engines_list.split(",") if n]
    unknown = set(names) - set(ENGINES)
    if unknown:
        raise SystemExit(f"--engines-list: unknown {', '.join(sorted(unknown))}; choose from {', '.join(ENGINES)}")
    runs = []
    for seed in range(args.engines_seeds):
        est = KerasEstimator(backend="local", epochs=args.engines_epochs, validationSplit=0.2, seed=seed,
                             storePath=f"{store}/seed{seed}")
        for name in names:
            started = time.time()
            found = make_search(name, est, args.engines_trials, seed, space).fit(df)
            seconds = time.time() - started
            spent, curve = budget_curve(found.trials)
            status = found.trials["status"]
            runs.append({"engine": name, "seed": seed, "seconds": seconds, "best": curve[-1],
                         "trial_epochs": spent[-1], "pruned": int((status == "pruned").sum()),
                         "failed": int((status == "failed").sum()), "spent": spent, "curve": curve})
            log.info("engines: %s seed %d: best val_accuracy %.4f, %d trial-epochs, %d pruned, %.0fs", name, seed,
                     curve[-1], spent[-1], runs[-1]["pruned"], seconds)
    summary = {}
    for name in names:
        mine = [r for r in runs if r["engine"] == name]
        summary[name] = {key: {"mean": float(np.nanmean([r[key] for r in mine])),
                               "std": float(np.nanstd([r[key] for r in mine]))}
                         for key in ("best", "trial_epochs", "seconds", "pruned")}
    goal = None
    if "hyperopt-tpe" in summary and "optuna-tpe-asha" in summary:
        hyp, asha = summary["hyperopt-tpe"], summary["optuna-tpe-asha"]
        tolerance = max(hyp["best"]["std"], asha["best"]["std"])
        goal = {"accuracy_gap": asha["best"]["mean"] - hyp["best"]["mean"], "tolerance": tolerance,
                "epochs_ratio": asha["trial_epochs"]["mean"] / hyp["trial_epochs"]["mean"]}
        goal["met"] = goal["accuracy_gap"] >= -tolerance and goal["epochs_ratio"] <= 0.5
    return {"runs": runs, "summary": summary, "goal": goal, "rows": args.engines_rows, "epochs": args.engines_epochs,
            "trials": args.engines_trials, "seeds": args.engines_seeds}


def engines_lines(result: dict) -> list[str]:
    """The Markdown table (and the goal line) of :func:`engines_benchmark`."""
    seeds = result["seeds"]
    lines = ["", f"Search engines: {result['trials']} trials x {result['epochs']} epochs on "
                 f"{result['rows'] or 'all'} rows, mean ± std over {seeds} seed(s)", "",
             "| engine | best val_accuracy | trial-epochs | pruned trials | wall s |", "|---|---|---|---|---|"]
    for name, s in result["summary"].items():
        lines.append(f"| {name} | {s['best']['mean']:.4f} ± {s['best']['std']:.4f} | "
                     f"{s['trial_epochs']['mean']:.0f} ± {s['trial_epochs']['std']:.0f} | {s['pruned']['mean']:.1f} | "
                     f"{s['seconds']['mean']:.0f} ± {s['seconds']['std']:.0f} |")
    goal = result.get("goal")
    if goal:
        lines.append(f"\nASHA against Hyperopt TPE: accuracy {goal['accuracy_gap']:+.4f} (tolerance "
                     f"{goal['tolerance']:.4f}), trial-epochs ratio {goal['epochs_ratio']:.2f} (goal: within the "
                     f"tolerance with <= 0.5): {'met' if goal['met'] else 'not met'}")
    return lines


def engines_plot(result: dict, path: str) -> str:
    """Best val_accuracy so far against the trial-epochs spent, one line per engine and seed."""
    from deepflash.reporting import plots

    return plots.budget_curves({name: [(r["spent"], r["curve"]) for r in result["runs"] if r["engine"] == name]
                                for name in result["summary"]}, path, xlabel="trial-epochs spent",
                               ylabel="best val_accuracy so far",
                               title=f"Search engines, {result['trials']} trials, {result['seeds']} seed(s)")
