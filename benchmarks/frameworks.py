"""Benchmark part: the benchmark's Fashion-MNIST MLP on each Keras framework (TensorFlow, PyTorch,
JAX), side by side in one run, on the modern profile (``--frameworks``).

Per framework:
- plain Keras on that framework: ``model.fit`` and ``model.predict`` on in-memory numpy, in a fresh
  Python started with ``KERAS_BACKEND`` (one process runs one framework);
- deepflash ``backend="local"`` on that framework (a child process when it is not the driver's),
  on data the first run materialized, so every fit here reuses it;
- deepflash ``backend="barrier"`` with 1 and 2 processes;
- ``transform`` of the local fit's model against that framework's own ``predict``. The executors'
  Python workers score on the framework they run (TensorFlow here: Spark reuses them), so this
  row shows what moving the model to the scoring framework costs.

    python -m benchmarks.frameworks --plain torch --data DIR --epochs 5 --out FILE   # one plain half
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAMEWORKS = ("tensorflow", "torch", "jax")


def plain_half(args) -> dict:
    """Runs in a fresh process whose Keras runs on ``args.plain``: fit, predict, accuracy."""
    import keras

    from benchmarks.suite import LAYERS
    from deepflash.data import datasets
    from deepflash.networks import build_model, make_optimizer

    assert keras.backend.backend() == args.plain, keras.backend.backend()
    x, y = datasets.load_idx_numpy(args.data, "train")
    x_test, y_test = datasets.load_idx_numpy(args.data, "test")
    if args.rows:
        x, y = x[:args.rows], y[:args.rows]
    model = build_model(LAYERS, x.shape[1], "multiclass", 10, seed=args.seed)
    model.compile(optimizer=make_optimizer("adam", 1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    keras.utils.set_random_seed(args.seed)
    started = time.time()
    model.fit(x, y.astype(np.int32), batch_size=args.batch_size, epochs=args.epochs, shuffle=True, verbose=0)
    fit_seconds = time.time() - started
    all_x = np.concatenate([x, x_test])
    model.predict(all_x[:1024], verbose=0)
    started = time.time()
    model.predict(all_x, batch_size=4096, verbose=0)
    predict_seconds = time.time() - started
    accuracy = float((model.predict(x_test, batch_size=4096, verbose=0).argmax(axis=1) == y_test).mean())
    return {"fit_seconds": fit_seconds, "predict_seconds": predict_seconds, "predict_rows": len(all_x),
            "test_accuracy": accuracy}


def _plain(framework: str, args) -> dict:
    with tempfile.TemporaryDirectory(prefix="deepflash-bench-") as d:
        out = os.path.join(d, "plain.json")
        env = {**os.environ, "KERAS_BACKEND": framework,
               "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
        subprocess.run([sys.executable, "-m", "benchmarks.frameworks", "--plain", framework, "--data", args.data,
                        "--rows", str(args.rows), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
                        "--seed", str(args.seed), "--out", out], check=True, env=env, cwd=ROOT, timeout=1800)
        with open(out) as f:
            return json.load(f)


def _fit(train_df, test_df, args, store: str, framework: str, backend: str, num_proc: int):
    from benchmarks.suite import LAYERS, _accuracy
    from deepflash import KerasEstimator

    est = KerasEstimator(layers=LAYERS, optimizer="adam", learningRate=1e-3, batchSize=args.batch_size,
                         epochs=args.epochs, validationSplit=0.0, backend=backend, numProc=num_proc, seed=args.seed,
                         storePath=store, kerasBackend=framework)
    started = time.time()
    model = est.fit(train_df)
    seconds = time.time() - started
    assert model.fitInfo.keras_backend == framework, model.fitInfo.keras_backend
    return model, {"seconds": seconds, "train_seconds": model.fitInfo.fit_seconds,
                   "test_accuracy": _accuracy(model.transform(test_df))}


def frameworks_benchmark(spark, train_df, test_df, all_df, args, store: str) -> dict:
    """Every row of the table, by framework; the first fit (TensorFlow, local) writes the data."""
    results: dict = {}
    _fit(train_df, test_df, args, store, "tensorflow", "local", 1)   # materializes the rows once
    for framework in FRAMEWORKS:
        row = {"plain": _plain(framework, args)}
        model, row["local"] = _fit(train_df, test_df, args, store, framework, "local", 1)
        for n in (1, 2):
            row[f"barrier{n}"] = _fit(train_df, test_df, args, store, framework, "barrier", n)[1]
        model.transform(all_df).write.format("noop").mode("overwrite").save()   # warm the workers
        started = time.time()
        model.transform(all_df).write.format("noop").mode("overwrite").save()
        row["transform_seconds"] = time.time() - started
        results[framework] = row
    return results


RUNS = ("plain", "local", "barrier1", "barrier2")


def mean_accuracy(row: dict) -> float:
    """A framework's test accuracy over its runs: one seeded run of this MLP moves by about half a
    point with its batch order and float rounding (TensorFlow's plain and local fits did), so the
    frameworks are compared on the mean of their four runs."""
    return float(np.mean([row[k]["test_accuracy"] for k in RUNS]))


def frameworks_lines(results: dict, rows: int, epochs: int) -> list[str]:
    """The Markdown tables of :func:`frameworks_benchmark`, with the accuracy goal."""
    lines = ["", f"Keras frameworks: the MLP on {rows} rows, {epochs} epochs (seconds)", "",
             "| framework | plain Keras fit | local fit | barrier 1 | barrier 2 | transform / predict |",
             "|---|---|---|---|---|---|"]
    for framework, r in results.items():
        ratio = r["transform_seconds"] / r["plain"]["predict_seconds"]
        lines.append(f"| {framework} | {r['plain']['fit_seconds']:.1f} | {r['local']['seconds']:.1f} "
                     f"({r['local']['train_seconds']:.1f} training) | {r['barrier1']['seconds']:.1f} | "
                     f"{r['barrier2']['seconds']:.1f} | {r['transform_seconds']:.2f} / "
                     f"{r['plain']['predict_seconds']:.2f} = {ratio:.1f}x |")
    base = mean_accuracy(results["tensorflow"])
    lines += ["", "Test accuracy (10k rows) of each run, and the mean's distance from TensorFlow's", "",
              "| framework | plain | local | barrier 1 | barrier 2 | mean | from TensorFlow (points) |",
              "|---|---|---|---|---|---|---|"]
    for framework, r in results.items():
        accuracies = " | ".join(f"{r[k]['test_accuracy']:.4f}" for k in RUNS)
        gap = 100 * (mean_accuracy(r) - base)
        lines.append(f"| {framework} | {accuracies} | {mean_accuracy(r):.4f} | {gap:+.2f} |")
    worst = max(abs(100 * (mean_accuracy(r) - base)) for r in results.values())
    lines.append(f"\nlargest gap of the mean accuracy to TensorFlow's: {worst:.2f} points (goal <= 0.5: "
                 f"{'met' if worst <= 0.5 else 'missed'})")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plain", choices=FRAMEWORKS, required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--rows", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    result = plain_half(args)
    with open(args.out, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
