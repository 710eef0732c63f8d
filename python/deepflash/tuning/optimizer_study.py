"""The optimizer study: the published MNIST comparison, run again on Spark, one task per run.

Three groups of runs, each a single-process Keras fit on the Parquet materialized once:
    optimizers   every optimizer on every preset ("simple", "deep") at one batch size, cross-entropy,
                 each optimizer at its usual default learning rate;
    lr_loss      learning rates x losses (MAE, MSE, CCE) on one preset and optimizer;
    batch_size   batch sizes on the same preset and optimizer.
Each run reports its history, training seconds, best validation loss and test accuracy.

Worker side: :func:`run_one` gets plain dicts (no DataFrame, no estimator) and reads its data
from the store.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import as_completed

from deepflash.data.plan import FitPlan

log = logging.getLogger("deepflash")

# The learning rate each optimizer is usually run with (Keras defaults; Adadelta's original 1.0).
DEFAULT_LR = {"sgd": 0.01, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.01, "adadelta": 1.0,
              "rmsprop": 0.001, "adam": 0.001, "adamax": 0.002, "nadam": 0.002}
DEFAULTS = {
    "presets": ["simple", "deep"],
    "optimizers": ["sgd", "adagrad", "adadelta", "rmsprop", "adam", "adamax", "nadam"],
    "batch_size": 128,
    "learning_rates": [0.1, 0.01, 0.001],
    "losses": ["mae", "mse", "categorical_crossentropy"],
    "batch_sizes": [16, 64, 256],
    "learning_rate_preset": "simple",
    "epochs": 10,
    "parallelism": 0,  # 0: as many tasks at once as Spark offers
}


def plan_runs(study: dict) -> list[dict]:
    """The list of runs: {"group", "name", "preset", "optimizer", "learningRate", "loss", "batchSize"}."""
    s = {**DEFAULTS, **(study or {})}
    runs = []
    for preset in s["presets"]:
        for opt in s["optimizers"]:
            runs.append({"group": "optimizers", "preset": preset, "optimizer": opt,
                         "learningRate": DEFAULT_LR.get(opt, 0.01), "loss": "categorical_crossentropy",
                         "batchSize": s["batch_size"]})
    panel = s["learning_rate_preset"]
    for lr in s["learning_rates"]:
        for loss in s["losses"]:
            runs.append({"group": "lr_loss", "preset": panel, "optimizer": "sgd", "learningRate": float(lr),
                         "loss": loss, "batchSize": s["batch_size"]})
    for bs in s["batch_sizes"]:
        runs.append({"group": "batch_size", "preset": panel, "optimizer": "sgd", "learningRate": 0.01,
                     "loss": "categorical_crossentropy", "batchSize": int(bs)})
    for i, r in enumerate(runs):
        r["run"] = i
        r["name"] = (f"{r['group']}:{r['preset']}/{r['optimizer']}/lr={r['learningRate']:g}/{r['loss']}"
                     f"/bs={r['batchSize']}")
        r["epochs"] = int(s["epochs"])
    return runs


def run_one(run: dict, base_values: dict, plan: FitPlan, test_url: str) -> dict:
    """Trains one study run and scores it on the test Parquet. Never raises: errors are results."""
    started = time.time()
    out = {k: run[k] for k in ("run", "group", "name", "preset", "optimizer", "learningRate", "loss", "batchSize",
                               "epochs")}
    try:
        import numpy as np

        from deepflash.data.readers import get_reader
        from deepflash.networks.presets import resolve_layers
        from deepflash.worker.loop import train_network

        values = {**base_values, "layers": resolve_layers(run["preset"]), "optimizer": run["optimizer"],
                  "learningRate": run["learningRate"], "loss": run["loss"], "batchSize": run["batchSize"],
                  "epochs": run["epochs"]}
        trained = train_network(values, plan, log_prefix=f"[{run['name']}] ")
        model = trained.model
        test = get_reader(plan.reader).load(test_url)
        predicted = model.predict(test.features, batch_size=4096, verbose=0).argmax(axis=1)
        history = trained.history
        val_loss = [v for v in history.get("val_loss", []) if np.isfinite(v)]
        out.update(status="ok", history=history, train_seconds=trained.fit_seconds,
                   test_accuracy=float((predicted == test.labels.astype(int)).mean()),
                   best_val_loss=float(min(val_loss)) if val_loss else float("nan"),
                   final_val_accuracy=(float(history["val_accuracy"][-1]) if history.get("val_accuracy")
                                       else float("nan")),
                   num_params=int(model.count_params()))
    except Exception as e:  # one failed run must not lose the others
        out.update(status="failed", error=f"{type(e).__name__}: {e}", history={})
    out["seconds"] = time.time() - started
    return out


def run_study(spark, estimator, train_df, test_df, study: dict) -> list[dict]:
    """Materializes the data once, then runs every study run as one Spark task."""
    from deepflash.spark.slots import count_slots
    from deepflash.spark.tags import tagged_jobs
    from deepflash.spark.tasks import run_tasks
    from deepflash.tuning.base import trial_threads

    runs = plan_runs(study)
    s = {**DEFAULTS, **(study or {})}
    plan = estimator.plan(train_df, numProc=1)
    test_plan = estimator.copy().setValidationSplit(0.0).setEarlyStoppingPatience(0).setReduceLrPatience(0) \
        .plan(test_df, numProc=1)
    slots = s["parallelism"] or count_slots(spark).total
    plan = plan.replace(threads=trial_threads(spark, slots))
    base_values = estimator.paramValues()
    test_url = test_plan.train_url
    log.info("study: %d runs of %d epochs, %d at a time, %d train / %d val / %d test rows", len(runs), s["epochs"],
             min(slots, len(runs)), plan.train_rows, plan.val_rows, test_plan.train_rows)

    def task(run):
        return run_one(run, base_values, plan, test_url)

    started = time.time()
    results = []
    best = None
    # One Spark job of one task per run; `slots` threads keep that many runs going at once. Their
    # jobs carry the block's tag (each thread adds it), so an error or Ctrl-C interrupts the rest.
    with tagged_jobs(spark, "optimizer-study", interrupt=True) as tag, \
            tag.pool(min(slots, len(runs)), "deepflash-study") as pool:
        for result in as_completed([pool.submit(lambda run=run: run_tasks(spark, task, [run])[0]) for run in runs]):
            r = result.result()
            results.append(r)
            if r["status"] == "ok" and (best is None or r["test_accuracy"] > best["test_accuracy"]):
                best = r
            this = f"test accuracy {r['test_accuracy']:.4f}" if r["status"] == "ok" else f"failed ({r['error'][:100]})"
            log.info("study run %d/%d %s: %s in %.0fs; best so far %s, %.0fs elapsed", len(results), len(runs),
                     r["name"], this, r["seconds"],
                     f"{best['name']} {best['test_accuracy']:.4f}" if best else "n/a", time.time() - started)
    results.sort(key=lambda r: r["run"])
    return results


def results_table(results: list[dict]):
    import pandas as pd

    columns = ["run", "group", "preset", "optimizer", "learningRate", "loss", "batchSize", "epochs", "status",
               "test_accuracy", "best_val_loss", "train_seconds", "num_params", "error"]
    return pd.DataFrame([{c: r.get(c) for c in columns} for r in results], columns=columns)


def to_markdown(table) -> str:
    columns = list(table.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in table.iterrows():
        cells = []
        for c in columns:
            v = row[c]
            cells.append(f"{v:.4f}" if isinstance(v, float) and c != "learningRate" else
                         ("" if v is None else str(v)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figures(results: list[dict], directory: str) -> list[str]:
    """The paper's figures: per-optimizer loss and accuracy per epoch (one pair per preset), time
    against test accuracy, the learning-rate x loss panel and the batch-size panel."""
    import os

    from deepflash.reporting import plots

    ok = [r for r in results if r["status"] == "ok"]
    paths = []
    for preset in sorted({r["preset"] for r in ok if r["group"] == "optimizers"}):
        histories = {r["optimizer"]: r["history"] for r in ok if r["group"] == "optimizers" and r["preset"] == preset}
        for metric in ("val_loss", "val_accuracy"):
            paths.append(plots.overlay(histories, metric, os.path.join(directory, f"optimizers_{preset}_{metric}.png"),
                                       title=f"{metric} per epoch by optimizer ({preset} model)"))
    opt_runs = [r for r in ok if r["group"] == "optimizers"]
    if opt_runs:
        paths.append(plots.time_vs_accuracy(
            [{"seconds": r["train_seconds"], "test_accuracy": r["test_accuracy"], "name": r["optimizer"],
              "preset": r["preset"]} for r in opt_runs], os.path.join(directory, "time_vs_accuracy.png"),
            group="preset", title="Training time against test accuracy, per optimizer"))
    lr_runs = [r for r in ok if r["group"] == "lr_loss"]
    if lr_runs:
        paths.append(plots.panels(lr_runs, "learningRate", "loss", "accuracy",
                                  os.path.join(directory, "learning_rate_vs_loss.png"),
                                  title="Accuracy per epoch by learning rate (rows) and loss (columns)"))
    bs_runs = [r for r in ok if r["group"] == "batch_size"]
    if bs_runs:
        paths.append(plots.overlay({f"batch {r['batchSize']}": r["history"] for r in bs_runs}, "val_accuracy",
                                   os.path.join(directory, "batch_size.png"),
                                   title="Validation accuracy per epoch by batch size"))
    return paths
