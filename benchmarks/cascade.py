"""Benchmark part: cascade (layer-wise) against standard training of the ``deep`` preset on
Fashion-MNIST, with the same total epochs, side by side in one process.

Both fits use the local backend, Adam at ``--cascade-lr``, batch ``--batch-size``, 10% validation
and the same plateau rule (the rate times 0.1 after 2 epochs without a better ``val_loss``); the
cascade splits ``--cascade-epochs`` over the preset's 4 layers by ``cascadeGrowth`` 1.5 and freezes
earlier layers. Reports each fit's seconds and test accuracy, and writes the validation curves.

    .venv/bin/spark-submit --master local[2] jobs/benchmark.py --epochs 1 \\
        --skip local,hvd1,hvd2,inference,search,algos,best,stream --cascade-rows 20000
"""
from __future__ import annotations

import os
import time


def _accuracy(df) -> float:
    from pyspark.sql import functions as F

    return float(df.agg(F.avg((F.col("prediction") == F.col("label")).cast("double"))).first()[0])


def cascade_benchmark(train_df, test_df, args, store: str) -> dict:
    """Fits ``deep`` both ways on ``train_df`` and scores ``test_df``.

    Returns:
        ``{"rows": [...], "epochs": E, "stage_epochs": [...], "histories": {...}}``; each row has
        ``mode``, ``seconds`` (the whole fit), ``train_seconds`` and ``test_accuracy``.
    """
    from deepflash import KerasEstimator
    from deepflash.networks.cascade_plan import resolve_cascade

    base = dict(layers="deep", optimizer="adam", learningRate=args.cascade_lr, batchSize=args.batch_size,
                epochs=args.cascade_epochs, validationSplit=0.1, reduceLrPatience=2, reduceLrFactor=0.1,
                backend="local", seed=args.seed, storePath=store)
    runs, histories = [], {}
    # The data is materialized once, before either timed fit.
    KerasEstimator(**{**base, "epochs": 1}).plan(train_df)
    for mode in ("standard", "cascade"):
        est = KerasEstimator(**base, trainingMode=mode, cascadeGrowth=1.5)
        started = time.time()
        model = est.fit(train_df)
        seconds = time.time() - started
        history = model.getHistory()
        histories[mode] = history
        runs.append({"mode": mode, "seconds": seconds, "train_seconds": model.fitInfo.fit_seconds,
                     "test_accuracy": _accuracy(model.transform(test_df)),
                     "best_val_accuracy": max(history.get("val_accuracy") or [float("nan")]),
                     "final_lr": history["lr"][-1]})
    plan = resolve_cascade(KerasEstimator(**base, trainingMode="cascade").paramValues())
    return {"rows": runs, "epochs": args.cascade_epochs, "stage_epochs": list(plan.epochs), "histories": histories}


def report_lines(result: dict, rows: int) -> list[str]:
    """Markdown lines for the benchmark report."""
    lines = [f"Cascade against standard training: `deep` (784-512-256-128-64-10), {rows} training rows, "
             f"{result['epochs']} epochs in all (cascade stages {result['stage_epochs']}, earlier layers frozen)", "",
             "| training | test accuracy | best val accuracy | fit s | train s |", "|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['mode']} | {r['test_accuracy']:.4f} | {r['best_val_accuracy']:.4f} | "
                     f"{r['seconds']:.1f} | {r['train_seconds']:.1f} |")
    standard, cascade = result["rows"]
    lines.append(f"\ncascade / standard: train time {cascade['train_seconds'] / standard['train_seconds']:.2f}x, "
                 f"test accuracy {cascade['test_accuracy'] - standard['test_accuracy']:+.4f}")
    return lines


def write_plots(result: dict, output: str) -> list[str]:
    from deepflash.reporting import plots

    return [plots.overlay(result["histories"], "val_accuracy", os.path.join(output, "cascade_vs_standard.png"),
                          title="Validation accuracy per epoch: cascade against standard"),
            plots.learning_curves(result["histories"]["cascade"], os.path.join(output, "cascade_curves.png"),
                                  title="Cascade learning curves (dotted: stage starts)")]
