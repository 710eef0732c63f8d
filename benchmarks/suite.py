"""Benchmark: the same MLP on Fashion-MNIST with plain Keras and with KerasEstimator, side by side.

    gradle bench                      # or: .venv/bin/spark-submit --master local[2] jobs/benchmark.py
    gradle bench -Pargs="--rows 6000 --epochs 1 --infer-rows 10000"   # a quick smoke run
    gradle bench -Pargs="--engines --skip local,hvd1,hvd2,inference,search,algos,best,stream"
                                      # only the search engines (benchmarks.engines)
    gradle bench -Pprofile=modern -Pargs="--frameworks --skip local,bar1,bar2,inference,connect,search,..."
                                      # the Keras frameworks (benchmarks.frameworks)
    gradle bench -Pprofile=modern -Pargs="--scaling --skip local,bar1,bar2,inference,connect,search,..."
                                      # data-parallel scaling on the test cluster (benchmarks.scaling; root)

Prints a Markdown table and writes ``<output>/benchmark.json``. All timings come from one process
in one run, so the ratios are measured side by side on the same (possibly busy) machine.

Over 400 lines: the runs share one Spark session, one data preparation and the one report table
that compares them; the inference, search-engine, streaming, cascade and evolution benchmarks have
modules of their own.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time

import numpy as np

LAYERS = [{"type": "dense", "units": u, "activation": "relu"} for u in (256, 128, 64)]


def _accuracy(df) -> float:
    from pyspark.sql import functions as F

    return float(df.agg(F.avg((F.col("prediction") == F.col("label")).cast("double"))).first()[0])


def plain_keras(x, y, x_test, y_test, args) -> dict:
    """(a): model.fit on in-memory numpy, the yardstick."""
    import tensorflow as tf

    from deepflash.networks import build_model, make_optimizer

    model = build_model(LAYERS, x.shape[1], "multiclass", 10, seed=args.seed)
    model.compile(optimizer=make_optimizer("adam", 1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    tf.keras.utils.set_random_seed(args.seed)
    started = time.time()
    model.fit(x, y.astype(np.int32), batch_size=args.batch_size, epochs=args.epochs, shuffle=True, verbose=0)
    seconds = time.time() - started
    acc = float((model.predict(x_test, batch_size=4096, verbose=0).argmax(axis=1) == y_test).mean())
    return {"name": "(a) plain Keras model.fit", "seconds": seconds, "test_accuracy": acc, "model": model}


def estimator_runs(spark, train_df, test_df, rows: int, args, backend: str, num_proc: int, store: str) -> list:
    """(b)-(d): a first fit that writes the Parquet, then a second fit that reuses it."""
    from deepflash import KerasEstimator

    est = KerasEstimator(layers=LAYERS, optimizer="adam", learningRate=1e-3, batchSize=args.batch_size,
                         epochs=args.epochs, validationSplit=0.0, backend=backend, numProc=num_proc,
                         seed=args.seed, storePath=store)
    out = []
    for attempt in ("first fit", "second fit"):
        started = time.time()
        model = est.fit(train_df)
        seconds = time.time() - started
        info = model.fitInfo
        data = info.data
        out.append({
            "name": f"{backend} numProc={num_proc}, {attempt}", "seconds": seconds,
            "train_seconds": info.fit_seconds, "read_seconds": info.read_seconds, "plan_seconds": info.plan_seconds,
            # FitData.seconds is the whole materialization (the write, its check, the commit), not the write alone.
            "materialize_seconds": data.seconds,
            "materialize_mb_s": data.bytes / 1e6 / data.seconds if data.seconds else None,
            "reused": data.reused, "test_accuracy": _accuracy(model.transform(test_df)), "model": model,
        })
    return out


def _has_horovod() -> bool:
    try:
        import horovod.tensorflow.keras  # noqa: F401
    except ImportError:
        return False
    return True


SEARCH_SPACE = {
    "layers": {"architecture": {"depth": [1, 3], "units": [64, 128, 256], "activation": ["relu"],
                                "dropout": [0.0, 0.4], "batchnorm": [False]}},
    "optimizer": {"choice": ["adam", "adamax", "nadam"]},
    "learningRate": {"loguniform": [3e-4, 3e-2]},
    "batchSize": {"choice": [64, 128, 256]},
}


def search_parallelism(train_df, args, store: str) -> dict:
    """The same 8 random-search trials with parallelism=2 (one Spark job per trial) and parallelism=1 (in the
    driver)."""
    from deepflash import HyperoptSearch, KerasEstimator

    est = KerasEstimator(backend="local", epochs=args.search_epochs, validationSplit=0.1, seed=args.seed,
                         storePath=store)
    out = {}
    est.fit(train_df.limit(1000))  # warm-up: TF import and graph tracing in the driver
    for parallelism in (2, 1):
        search = HyperoptSearch(estimator=est, space=SEARCH_SPACE, algo="random", maxEvals=8, parallelism=parallelism,
                                metric="val_accuracy", mode="max", seed=args.seed, refit=False, track=False)
        started = time.time()
        found = search.fit(train_df)
        out[parallelism] = {"seconds": time.time() - started,
                            "trials_phase_seconds": float(found.timing["trials_seconds"]),
                            "trial_seconds": float(found.trials["seconds"].sum()),
                            "best_val_accuracy": float(found.trials["metric"].max()),
                            "ok": int((found.trials["status"] == "ok").sum())}
    out["ratio"] = out[2]["seconds"] / out[1]["seconds"]
    # The trials alone, without the search's fixed start (validation, materializing the rows) and end.
    out["trials_ratio"] = out[2]["trials_phase_seconds"] / out[1]["trials_phase_seconds"]
    # Slot-seconds not spent inside a trial's own training and scoring, per trial: over the whole
    # search, and over the trials phase alone.
    for p in (1, 2):
        out[p]["overhead_per_trial"] = (p * out[p]["seconds"] - out[p]["trial_seconds"]) / 8
        out[p]["trials_phase_overhead_per_trial"] = (p * out[p]["trials_phase_seconds"] - out[p]["trial_seconds"]) / 8
    return out


def goals_table(rows: list, baseline: float, infer: dict | None, search: dict | None,
                streaming: dict | None, connect: dict | None = None) -> list[dict]:
    """The speed goals of the benchmark, each measured in this run: ``{"goal", "value", "bound", "better",
    "met"}``. ``infer`` holds :func:`benchmarks.inference.inference_benchmark`'s figures; a goal whose
    figures are missing is left out."""
    by_name = {r["name"]: r for r in rows}
    local, hvd1 = by_name.get("local numProc=1, second fit"), by_name.get("horovod numProc=1, second fit")
    bar1 = by_name.get("barrier numProc=1, second fit")
    goals = []
    if local:
        goals.append({"goal": "local second fit / plain Keras", "value": local["seconds"] / baseline,
                      "bound": 1.10, "better": "lower"})
        goals.append({"goal": "local second fit: overhead outside the epochs (s)",
                      "value": local["seconds"] - local["train_seconds"], "bound": 1.0, "better": "lower"})
    if bar1:
        # The plan (validation pass, finding the materialized data) is every backend's; what is left is
        # the barrier stage's own start: the rank process, its Keras import, the read.
        goals.append({"goal": "barrier 1-process second fit: start outside the epochs and the plan (s)",
                      "value": bar1["seconds"] - bar1["train_seconds"] - bar1["plan_seconds"], "bound": 4.0,
                      "better": "lower"})
    if hvd1:
        goals.append({"goal": "Horovod 1-process fixed cost outside the epochs (s)",
                      "value": hvd1["seconds"] - hvd1["train_seconds"], "bound": 8.0, "better": "lower"})
    if hvd1 and local:
        goals.append({"goal": "Horovod epoch time / local epoch time",
                      "value": hvd1["train_seconds"] / local["train_seconds"], "bound": 1.15, "better": "lower"})
    infer = infer or {}
    for key, goal, bound in (("ratio", "transform / model.predict", 1.5),
                             ("predict_batch_udf_ratio", "transform / predict_batch_udf", 1.0),
                             ("floor_ratio", "transform / (transfer floor + predict)", 1.1),
                             ("cold_minus_warm", "cold first transform - warm transform (s)", 2.0),
                             # the array<float> path is worth keeping only if it is faster
                             ("array_ratio", "array<float> transform / Vector transform", 1.0)):
        if key in infer:
            goals.append({"goal": goal, "value": infer[key], "bound": bound, "better": "lower"})
    if connect and "ratio" in connect:
        goals.append({"goal": "transform on Spark Connect / classic", "value": connect["ratio"], "bound": 1.2,
                      "better": "lower"})
    if streaming and "stream_vs_memory_throughput" in streaming:
        goals.append({"goal": "streaming throughput / in-memory", "value": streaming["stream_vs_memory_throughput"],
                      "bound": 0.9, "better": "higher"})
    if search:
        goals.append({"goal": "8 trials, parallelism 2 / parallelism 1", "value": search["ratio"], "bound": 1.1,
                      "better": "lower"})
        goals.append({"goal": "overhead per trial outside training (s), parallelism 2",
                      "value": search[2]["overhead_per_trial"], "bound": 1.0, "better": "lower"})
        if "trials_ratio" in search:
            # The same two measures over the trials phase alone: the search's fixed start and end
            # (validation, materialization, the refit) are not charged to the trials.
            goals.append({"goal": "8 trials, parallelism 2 / parallelism 1, trials phase only",
                          "value": search["trials_ratio"], "bound": 1.1, "better": "lower"})
            goals.append({"goal": "overhead per trial outside training (s), parallelism 2, trials phase only",
                          "value": search[2]["trials_phase_overhead_per_trial"], "bound": 1.0, "better": "lower"})
    for g in goals:
        g["met"] = g["value"] <= g["bound"] if g["better"] == "lower" else g["value"] >= g["bound"]
    return goals


ALGO_SPACE = {
    "layers": {"architecture": {"depth": [1, 3], "units": [32, 64, 128, 256, 512],
                                "activation": ["relu", "tanh", "sigmoid"],
                                "dropout": [0.0, 0.5], "batchnorm": [True, False]}},
    "optimizer": {"choice": ["sgd", "rmsprop", "adagrad", "adadelta", "adam", "adamax", "nadam"]},
    "learningRate": {"loguniform": [1e-4, 1.0]},
    "batchSize": {"choice": [32, 64, 128, 256]},
}


def best_so_far(trials, mode: str = "max") -> list:
    """The best metric after each trial, in trial order (failed trials keep the previous best)."""
    best, out = None, []
    for value in trials.sort_values("trial")["metric"]:
        if value == value and (best is None or (value > best if mode == "max" else value < best)):
            best = value
        out.append(np.nan if best is None else best)
    return out


def search_algorithms(train_df, args, store: str) -> dict:
    """TPE against random on one space: the best val_accuracy after 10, 20 and 40 trials, per seed."""
    from deepflash import HyperoptSearch, KerasEstimator

    est = KerasEstimator(backend="local", epochs=args.algo_epochs, validationSplit=0.2, storePath=store)
    df = train_df.limit(args.algo_rows) if args.algo_rows else train_df
    checkpoints = args.algo_trials
    curves = {"tpe": [], "random": []}
    for seed in range(args.algo_seeds):
        for algo in ("tpe", "random"):
            search = HyperoptSearch(estimator=est.copy().setSeed(seed), space=ALGO_SPACE, algo=algo,
                                    maxEvals=max(checkpoints), parallelism=1, metric="val_accuracy", mode="max",
                                    seed=seed, refit=False, track=False)
            started = time.time()
            found = search.fit(df)
            curve = best_so_far(found.trials)
            curves[algo].append(curve)
            logging.getLogger("deepflash").info("algo %s seed %d: %s in %.0fs", algo, seed,
                                                {n: round(curve[n - 1], 4) for n in checkpoints},
                                                time.time() - started)
    summary = {algo: {n: {"mean": float(np.mean([c[n - 1] for c in cs])), "std": float(np.std([c[n - 1] for c in cs])),
                          "per_seed": [float(c[n - 1]) for c in cs]} for n in checkpoints}
               for algo, cs in curves.items()}
    return {"summary": summary, "curves": curves, "checkpoints": list(checkpoints), "rows": args.algo_rows,
            "epochs": args.algo_epochs,
            "seeds": args.algo_seeds}


BEST_SPACE = {
    "layers": {"architecture": {"depth": [2, 3], "units": [256, 512, 1024], "activation": ["relu"],
                                "dropout": [0.1, 0.5], "batchnorm": [True, False]}},
    "optimizer": {"choice": ["adam", "adamax", "nadam"]},
    "learningRate": {"loguniform": [5e-4, 3e-3]},
    "batchSize": {"choice": [64, 128, 256]},
}


def best_model(train_df, test_df, args, store: str) -> dict:
    """A TPE search on the full training set, then a refit of the best params with more epochs."""
    from deepflash import HyperoptSearch, KerasEstimator

    est = KerasEstimator(backend="local", epochs=args.best_search_epochs, validationSplit=0.1, seed=args.seed,
                         storePath=store)
    started = time.time()
    found = HyperoptSearch(estimator=est, space=BEST_SPACE, algo="tpe", maxEvals=args.best_trials, parallelism=1,
                           metric="val_accuracy", mode="max", seed=args.seed, refit=False, track=False).fit(train_df)
    search_s = time.time() - started
    params = found.bestParams
    # The refit trains longer: early stopping on val_accuracy (best weights restored) and the
    # learning rate halved after 3 epochs without progress.
    refit = est.copy()._set(**params).setEpochs(args.best_epochs).setEarlyStoppingPatience(10) \
        .setEarlyStoppingMonitor("val_accuracy").setReduceLrPatience(3).setReduceLrFactor(0.5)
    started = time.time()
    model = refit.fit(train_df)
    refit_s = time.time() - started
    return {"trials": args.best_trials, "search_epochs": args.best_search_epochs, "search_seconds": search_s,
            "best_val_accuracy": float(found.trials["metric"].max()), "params": params,
            "refit_epochs_max": args.best_epochs, "refit_epochs_run": len(model.getHistory()["loss"]),
            "refit_seconds": refit_s, "test_accuracy": _accuracy(model.transform(test_df))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST IDX directory")
    parser.add_argument("--rows", type=int, default=0,
                        help="use only this many training rows (0 = all 60k); the best-model run always uses all")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", default="",
                        help="comma list of runs to skip: local,hvd1,hvd2,bar1,bar2,inference,connect,search,algos,"
                             "best,stream,cascade,verify; cold leaves out inference's fresh-session transform")
    parser.add_argument("--infer-rows", type=int, default=0,
                        help="inference and connect: the first rows of train and test together (0 = all 70k)")
    parser.add_argument("--connect-repeats", type=int, default=5,
                        help="transform on classic against Connect: timed transforms per session (median)")
    parser.add_argument("--search-epochs", type=int, default=2, help="epochs per trial in the search comparison")
    parser.add_argument("--algo-rows", type=int, default=10000, help="TPE against random: training rows (0 = all)")
    parser.add_argument("--algo-epochs", type=int, default=2, help="TPE against random: epochs per trial")
    parser.add_argument("--algo-seeds", type=int, default=3, help="TPE against random: seeds")
    parser.add_argument("--algo-trials", type=lambda t: tuple(int(n) for n in t.split(",")), default=(10, 20, 40),
                        help="TPE against random: report the best after these trial counts (the last = trials run)")
    parser.add_argument("--best-trials", type=int, default=12, help="best model: TPE trials on all rows")
    parser.add_argument("--best-search-epochs", type=int, default=6, help="best model: epochs per trial")
    parser.add_argument("--best-epochs", type=int, default=60, help="best model: refit epochs (early stopping)")
    parser.add_argument("--stream-gb", type=float, default=3.0,
                        help="memory bound: GB of generated float32 features to train on")
    parser.add_argument("--stream-epochs", type=int, default=1, help="memory bound: epochs")
    parser.add_argument("--stream-modes", default="stream,memory", help="memory bound: read modes to run")
    parser.add_argument("--cascade-rows", type=int, default=0,
                        help="cascade against standard: training rows (0 = all 60k)")
    parser.add_argument("--cascade-epochs", type=int, default=12, help="cascade against standard: total epochs")
    parser.add_argument("--cascade-lr", type=float, default=1e-3, help="cascade against standard: Adam's rate")
    parser.add_argument("--frameworks", action="store_true",
                        help="add the Keras frameworks comparison (benchmarks.frameworks; modern profile, with "
                             "PyTorch and JAX)")
    parser.add_argument("--scaling", action="store_true",
                        help="add data-parallel scaling, numProc 1 and 2 on PyTorch, on the two-worker test cluster "
                             "(benchmarks.scaling; modern profile, root and unshare)")
    parser.add_argument("--scaling-rows", type=int, help="scaling: training rows of the MLP (its default)")
    parser.add_argument("--scaling-cnn-rows", type=int, help="scaling: training rows of the CNN (its default)")
    parser.add_argument("--scaling-epochs", type=int, help="scaling: epochs per fit, the first uncounted (its default)")
    parser.add_argument("--engines", action="store_true",
                        help="add the search-engine comparison (benchmarks.engines; about an hour at its defaults)")
    parser.add_argument("--engines-list", default="hyperopt-tpe,optuna-tpe,optuna-tpe-asha,optuna-gp",
                        help="search engines: engines to compare")
    parser.add_argument("--engines-rows", type=int, default=10000, help="search engines: training rows (0 = all)")
    parser.add_argument("--engines-epochs", type=int, default=6, help="search engines: epochs per trial")
    parser.add_argument("--engines-trials", type=int, default=24, help="search engines: trials per search")
    parser.add_argument("--engines-seeds", type=int, default=3, help="search engines: seeds")
    parser.add_argument("--output", default="output/bench")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("deepflash").setLevel(logging.INFO)

    from pyspark.sql import SparkSession

    from deepflash.data import datasets

    if not os.path.isdir(args.data):
        raise SystemExit(f"Fashion-MNIST not found in {args.data}: apt-get install dataset-fashion-mnist")
    x_full, y_full = datasets.load_idx_numpy(args.data, "train")
    x_test, y_test = datasets.load_idx_numpy(args.data, "test")
    x, y = (x_full[:args.rows], y_full[:args.rows]) if args.rows else (x_full, y_full)
    skip = set(filter(None, args.skip.split(",")))

    spark = SparkSession.builder.appName("deepflash-benchmark").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    parts = max(8, spark.sparkContext.defaultParallelism)
    train_df = datasets.from_numpy(spark, x, y, num_partitions=parts).cache()
    test_df = datasets.from_numpy(spark, x_test, y_test, num_partitions=parts).cache()
    train_df.count(), test_df.count()

    rows = [plain_keras(x, y, x_test, y_test, args)]
    baseline = rows[0]["seconds"]
    store = tempfile.mkdtemp(prefix="deepflash-bench-store-")
    try:
        for key, backend, n in (("local", "local", 1), ("hvd1", "horovod", 1), ("hvd2", "horovod", 2),
                                ("bar1", "barrier", 1), ("bar2", "barrier", 2)):
            if backend == "horovod" and not _has_horovod():
                logging.getLogger("deepflash").warning("benchmark: no Horovod in this profile, %s skipped", key)
                continue
            if key not in skip:
                # Each configuration gets its own store so that its first fit really writes the Parquet.
                rows += estimator_runs(spark, train_df, test_df, len(x), args, backend, n, os.path.join(store, key))
        infer = connect = None
        fitted = next((r["model"] for r in rows[1:]), None)
        if fitted is not None and not {"inference", "connect"} <= skip:
            from benchmarks.inference import inference_benchmark, inference_frame, inference_rows

            all_x, all_y = inference_rows(x_full, y_full, x_test, y_test, args.infer_rows)
            all_df = inference_frame(spark, all_x, all_y, parts)
            if "inference" not in skip:
                infer = inference_benchmark(fitted, all_df, all_x, os.path.join(store, "inference"), args.data, parts,
                                            cold="cold" not in skip)
            if "connect" not in skip:
                from benchmarks.connect import connect_benchmark

                connect = connect_benchmark(fitted, all_df, spark.sparkContext.master, args.connect_repeats,
                                            os.path.join(store, "connect"))
        search = algos = best = streaming = cascade = engines = written = frameworks = scaling = None
        if args.frameworks:
            from benchmarks.frameworks import frameworks_benchmark

            every_row = train_df.union(test_df).cache()
            frameworks = frameworks_benchmark(spark, train_df, test_df, every_row, args,
                                              os.path.join(store, "frameworks"))
        if args.scaling:
            from benchmarks.scaling import scaling_benchmark

            scaling = scaling_benchmark(args.data, rows=args.scaling_rows, cnn_rows=args.scaling_cnn_rows,
                                        epochs=args.scaling_epochs, batch_size=args.batch_size, seed=args.seed)
        if "verify" not in skip:
            from benchmarks.written_check import written_check_benchmark

            written = [written_check_benchmark(train_df, os.path.join(store, "verify"), "Fashion-MNIST")]
        if "cascade" not in skip:
            from benchmarks.cascade import cascade_benchmark

            cascade_df = datasets.from_numpy(spark, x_full[:args.cascade_rows] if args.cascade_rows else x_full,
                                             y_full[:args.cascade_rows] if args.cascade_rows else y_full,
                                             num_partitions=parts)
            cascade = cascade_benchmark(cascade_df, test_df, args, os.path.join(store, "cascade"))
        if args.engines:
            from benchmarks.engines import engines_benchmark

            engines = engines_benchmark(train_df, args, os.path.join(store, "engines"), ALGO_SPACE)
        if "stream" not in skip:
            from benchmarks.streaming import streaming_benchmark

            streaming = streaming_benchmark(spark, args, os.path.join(store, "stream"))
        if "search" not in skip:
            search = search_parallelism(train_df, args, os.path.join(store, "search"))
        if "algos" not in skip:
            algos = search_algorithms(train_df, args, os.path.join(store, "algos"))
        if "best" not in skip:
            # always on all 60k rows: the goal is stated for the full training set
            full_df = datasets.from_numpy(spark, x_full, y_full, num_partitions=parts) if args.rows else train_df
            best = best_model(full_df, test_df, args, os.path.join(store, "best"))
    finally:
        shutil.rmtree(store, ignore_errors=True)

    n = len(x)
    lines = [f"Fashion-MNIST, {n} training rows, 784-256-128-64-10 MLP, batch {args.batch_size}, "
             f"{args.epochs} epochs, Spark {spark.sparkContext.master}",
             "",
             "| run | wall s | samples/s | ratio to (a) | plan s | read s | train s | wall - plan - train s "
             "| materialize s (MB/s) | test acc |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        write = "-" if r.get("materialize_seconds") in (None, 0) else \
            f"{r['materialize_seconds']:.1f} ({r['materialize_mb_s']:.1f})"
        if r.get("reused"):
            write = "reused"
        train = r.get("train_seconds", r["seconds"])
        outside = r["seconds"] - train - r.get("plan_seconds", 0)
        lines.append(f"| {r['name']} | {r['seconds']:.1f} | {n * args.epochs / r['seconds']:.0f} | "
                     f"{r['seconds'] / baseline:.2f} | {r.get('plan_seconds', 0):.1f} | "
                     f"{r.get('read_seconds', 0):.1f} | {train:.1f} | "
                     f"{'-' if 'train_seconds' not in r else f'{outside:.1f}'} | {write} | {r['test_accuracy']:.4f} |")
    if written:
        from benchmarks.written_check import report_lines as written_lines

        lines += written_lines(written)
    if infer:
        from benchmarks.inference import report_lines as inference_lines

        lines += inference_lines(infer)
    if connect:
        from benchmarks.connect import report_lines as connect_lines

        lines += connect_lines(connect)
    if search:
        lines += ["", f"Search, 8 random trials of {args.search_epochs} epochs: parallelism=2 "
                      f"{search[2]['seconds']:.1f}s (best val_accuracy {search[2]['best_val_accuracy']:.4f}), "
                      f"parallelism=1 {search[1]['seconds']:.1f}s (best {search[1]['best_val_accuracy']:.4f}), "
                      f"ratio {search['ratio']:.2f} (goal <= 1.1); the trials phase alone: "
                      f"{search[2]['trials_phase_seconds']:.1f}s against {search[1]['trials_phase_seconds']:.1f}s, "
                      f"ratio {search['trials_ratio']:.2f}"]
    if algos:
        lines += ["", f"TPE against random: best val_accuracy after n trials, mean ± std over {algos['seeds']} seeds "
                      f"({algos['rows'] or 'all'} rows, {algos['epochs']} epochs per trial)", "",
                  "| algo | " + " | ".join(f"after {n}" for n in algos["checkpoints"]) + " |",
                  "|---" * (1 + len(algos["checkpoints"])) + "|"]
        for algo, by_n in algos["summary"].items():
            lines.append(f"| {algo} | " + " | ".join(f"{by_n[n]['mean']:.4f} ± {by_n[n]['std']:.4f}"
                                                    for n in algos["checkpoints"]) + " |")
    if best:
        lines += ["", f"Best model: TPE, {best['trials']} trials x {best['search_epochs']} epochs on all rows "
                      f"({best['search_seconds']:.0f}s, best val_accuracy {best['best_val_accuracy']:.4f}), refit "
                      f"{best['refit_epochs_run']}/{best['refit_epochs_max']} epochs ({best['refit_seconds']:.0f}s): "
                      f"test accuracy {best['test_accuracy']:.4f} (goal >= 0.90); params {json.dumps(best['params'])}"]
    if streaming:
        lines += ["", f"Memory bound: {streaming['gigabytes']:.2f} GB of float32 features ({streaming['rows']} rows x "
                      f"{streaming['dim']}, {streaming['stored_mb']:.0f} MB of Parquet, materialized in "
                      f"{streaming['materialize_seconds']:.0f}s), one process, {args.stream_epochs} epoch(s)", "",
                  "| readMode | peak RSS MB | seconds | train rows/s | val accuracy |", "|---|---|---|---|---|"]
        for r in streaming["runs"]:
            if "error" in r:
                lines.append(f"| {r['mode']} | failed: {r['error'].splitlines()[-1]} | | | |")
            else:
                lines.append(f"| {r['mode']} | {r['peak_rss_mb']:.0f} | {r['seconds']:.1f} | "
                             f"{r['rows_per_second']:.0f} | {r['val_accuracy']:.4f} |")
        if "stream_vs_memory_throughput" in streaming:
            lines.append(f"\nstreaming throughput / in-memory: {streaming['stream_vs_memory_throughput']:.2f} "
                         "(goal >= 0.9)")
    if cascade:
        from benchmarks.cascade import report_lines

        lines += [""] + report_lines(cascade, args.cascade_rows or len(x_full))
    if engines:
        from benchmarks.engines import engines_lines

        lines += engines_lines(engines)
    if frameworks:
        from benchmarks.frameworks import frameworks_lines

        lines += frameworks_lines(frameworks, len(x), args.epochs)
    if scaling:
        from benchmarks.scaling import scaling_lines

        lines += scaling_lines(scaling)
    goals = goals_table(rows, baseline, infer, search, streaming, connect) if rows else []
    if goals:
        lines += ["", "| goal | measured | bound | met |", "|---|---|---|---|"]
        lines += [f"| {g['goal']} | {g['value']:.2f} | {'<=' if g['better'] == 'lower' else '>='} {g['bound']:g} | "
                  f"{'yes' if g['met'] else 'no'} |" for g in goals]
    second = [r for r in rows if r["name"].endswith("second fit")]
    if second:
        lines.append("")
        for r in second:
            lines.append(f"second fit against (a), {r['name']}: wall {r['seconds'] / baseline:.2f}x (a), "
                         f"train only {r['train_seconds'] / baseline:.2f}x (a), fixed cost outside the epochs "
                         f"{r['seconds'] - r['train_seconds']:.1f}s: plan (validation pass, materialization "
                         f"found) {r['plan_seconds']:.1f}s, read {r['read_seconds']:.1f}s, the rest "
                         f"{r['seconds'] - r['train_seconds'] - r['plan_seconds'] - r['read_seconds']:.1f}s")
    report = "\n".join(lines)
    print(report)
    from deepflash.io import fs

    os.makedirs(args.output, exist_ok=True)
    fs.write_bytes(fs.qualify(os.path.join(args.output, "benchmark.md")), (report + "\n").encode("utf-8"))
    from deepflash.reporting import plots

    if goals:
        plots.goal_bars(goals, os.path.join(args.output, "goals.png"))
    if algos:
        mean_curves = {algo: {"best val_accuracy": list(np.nanmean(np.array(curves), axis=0))}
                       for algo, curves in algos["curves"].items()}
        plots.overlay(mean_curves, "best val_accuracy", os.path.join(args.output, "tpe_vs_random.png"),
                      title=f"Best validation accuracy so far, mean of {algos['seeds']} seeds", xlabel="trial")
    if cascade:
        from benchmarks.cascade import write_plots

        write_plots(cascade, args.output)
    if engines:
        from benchmarks.engines import engines_plot

        engines_plot(engines, os.path.join(args.output, "search_engines.png"))
    result = {"rows": [{k: v for k, v in r.items() if k != "model"} for r in rows], "inference": infer,
              "connect": connect, "goals": goals,
              "cascade": cascade, "engines": engines, "frameworks": frameworks, "scaling": scaling,
              "search": search,
              "algos": algos, "best": best, "streaming": streaming, "args": vars(args), "report": report}
    fs.write_bytes(fs.qualify(os.path.join(args.output, "benchmark.json")),
                   json.dumps(result, indent=2, default=str).encode("utf-8"))
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
