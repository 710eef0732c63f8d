"""Benchmark part: data-parallel scaling of ``kerasBackend="torch"`` on ``backend="barrier"``, and
a model of it for larger clusters (``--scaling``; the page is docs/scaling.md).

The same fit runs with ``numProc=1`` and ``numProc=2`` on the two-worker test cluster
(tests/cluster/conftest.py's :func:`start_cluster`: a standalone master, two workers with a
private ``/tmp`` each, one 1-core executor per worker, so one process per worker), for the
benchmark's MLP and the small CNN (``fashion_cnn``) on Fashion-MNIST. Every rank's batch is
``batchSize`` rows (weak scaling). From each fit's ``fitInfo`` (the epoch times and the
all-reduce figures that rank 0 measured) it reports a warm epoch (the mean of every epoch after
the first), the per-step compute and all-reduce times, the bytes all-reduced per step, the
throughput and the scaling efficiency ``throughput(2) / (2 * throughput(1))``; then the expected
efficiency at 4, 8 and 16 workers on 10 and 100 Gbit/s networks (:func:`model_lines`).

    .venv-modern/bin/python benchmarks/scaling.py              # needs root and unshare, as the cluster tests
    .venv-modern/bin/python benchmarks/scaling.py --from-json output/bench/scaling.json   # tables again
    gradle bench -Pprofile=modern -Pargs="--scaling --skip local,bar1,bar2,inference,connect,search,..."

Under ``--driver`` the script is the spark-submit driver that runs the fits on the cluster and
prints one ``RESULT {json}`` line, as the cluster scenarios do.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.suite import LAYERS  # noqa: E402

PROCS = (1, 2)
# The model's clusters: workers, and network bandwidths in Gbit/s.
MODEL_WORKERS = (4, 8, 16)
MODEL_GBITS = (10, 100)
# One hop's latency in the model (a TCP message between hosts of one data centre, Gloo's or NCCL's).
LATENCY_S = 50e-6
TARGET_EFFICIENCY = 0.9
# Epochs per fit: the first is not counted, the others give the warm epoch.
EPOCHS = 3


@dataclass(frozen=True)
class Preset:
    """A network the benchmark fits, and on how many training rows (fewer for the slower CNN)."""

    name: str
    layers: object
    input_shape: list | None
    rows: int
    description: str


PRESETS = {
    "mlp": Preset("mlp", LAYERS, None, 12_800, "the benchmark's 784-256-128-64-10 MLP"),
    "cnn": Preset("cnn", "fashion_cnn", [28, 28, 1], 2_560, "fashion_cnn: two conv-BN-pool blocks, dense 128"),
}


@dataclass(frozen=True)
class RunFigures:
    """One fit's per-step figures, from rank 0's ``fitInfo.epoch_seconds`` and ``fitInfo.allreduce``.

    Args:
        preset, procs, batch_size: what ran: ``procs`` processes of ``batch_size`` rows per step.
        steps_per_epoch: training steps in an epoch, the same on every rank.
        epoch_seconds: a warm epoch (:func:`warm_epoch_seconds`).
        allreduce_seconds, copy_seconds: per step, in the all-reduce call and in the copies around it
            (over every step of the fit).
        bytes_per_step: the gradient bytes all-reduced per step.
    """

    preset: str
    procs: int
    batch_size: int
    steps_per_epoch: int
    epoch_seconds: float
    allreduce_seconds: float
    copy_seconds: float
    bytes_per_step: float

    @property
    def step_seconds(self) -> float:
        return self.epoch_seconds / self.steps_per_epoch

    @property
    def compute_seconds(self) -> float:
        """A step without its all-reduce and copies: forward, backward, optimizer, input."""
        return max(self.step_seconds - self.allreduce_seconds - self.copy_seconds, 0.0)

    @property
    def samples_per_second(self) -> float:
        return self.procs * self.batch_size / self.step_seconds


def warm_epoch_seconds(epoch_seconds: list[float]) -> float:
    """The mean of the epochs after the first (which pays for the first steps' allocations and
    caches); the only epoch when there is one."""
    if not epoch_seconds:
        raise ValueError("no epoch times: the fit trained no epoch")
    warm = epoch_seconds[1:] or epoch_seconds
    return sum(warm) / len(warm)


def run_figures(run: dict) -> RunFigures:
    """The :class:`RunFigures` of one run of the driver's result (its ``fitInfo`` fields as JSON)."""
    allreduce, epochs = run["allreduce"], run["epoch_seconds"]
    steps = allreduce["steps"]
    return RunFigures(preset=run["preset"], procs=run["procs"], batch_size=run["batch_size"],
                      steps_per_epoch=steps // len(epochs), epoch_seconds=warm_epoch_seconds(epochs),
                      allreduce_seconds=allreduce["seconds"] / steps, copy_seconds=allreduce["copy_seconds"] / steps,
                      bytes_per_step=allreduce["bytes"] / steps)


def scaling_efficiency(one: RunFigures, many: RunFigures) -> float:
    """``throughput(N) / (N * throughput(1))``: 1.0 when N processes are N times as fast as one."""
    return many.samples_per_second / (many.procs * one.samples_per_second)


def ring_allreduce_seconds(bytes_per_step: float, workers: int, gbits: float, latency_s: float = LATENCY_S) -> float:
    """A ring all-reduce of ``bytes_per_step`` over ``workers``: each sends and receives
    ``2 (N-1)/N * B`` bytes at ``gbits`` Gbit/s, in ``2 (N-1)`` steps of ``latency_s`` each."""
    if workers <= 1:
        return 0.0
    hops = 2 * (workers - 1)
    return hops / workers * bytes_per_step * 8 / (gbits * 1e9) + hops * latency_s


def modeled_efficiency(compute_seconds: float, bytes_per_step: float, workers: int, gbits: float,
                       latency_s: float = LATENCY_S) -> float:
    """``t_c / (t_c + t_comm)``: the step computes, then all-reduces, with no overlap (deepflash's
    PyTorch route all-reduces once, after the backward pass)."""
    comm = ring_allreduce_seconds(bytes_per_step, workers, gbits, latency_s)
    return compute_seconds / (compute_seconds + comm)


def compute_for_efficiency(bytes_per_step: float, workers: int, gbits: float, efficiency: float = TARGET_EFFICIENCY,
                           latency_s: float = LATENCY_S) -> float:
    """The per-step compute time that reaches ``efficiency`` on that cluster: ``t_comm * e / (1 - e)``."""
    return ring_allreduce_seconds(bytes_per_step, workers, gbits, latency_s) * efficiency / (1 - efficiency)


def _by_preset(runs: list[RunFigures]) -> dict[str, dict[int, RunFigures]]:
    out: dict[str, dict[int, RunFigures]] = {}
    for r in runs:
        out.setdefault(r.preset, {})[r.procs] = r
    return out


def measured_lines(runs: list[RunFigures]) -> list[str]:
    """The measured table: one row per run, the efficiency on the 2-process rows."""
    lines = ["| preset | procs | steps/epoch | warm epoch s | step ms | compute ms | all-reduce ms | copy ms "
             "| MB/step | samples/s | efficiency |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for preset, by_procs in _by_preset(runs).items():
        one = by_procs.get(1)
        for procs, r in sorted(by_procs.items()):
            efficiency = "-" if procs == 1 or one is None else f"{scaling_efficiency(one, r):.2f}"
            lines.append(f"| {preset} | {procs} | {r.steps_per_epoch} | {r.epoch_seconds:.2f} | "
                         f"{1e3 * r.step_seconds:.1f} | {1e3 * r.compute_seconds:.1f} | "
                         f"{1e3 * r.allreduce_seconds:.2f} | {1e3 * r.copy_seconds:.2f} | "
                         f"{r.bytes_per_step / 1e6:.2f} | {r.samples_per_second:.0f} | {efficiency} |")
    return lines


def model_lines(runs: list[RunFigures], workers: tuple[int, ...] = MODEL_WORKERS,
                gbits: tuple[float, ...] = MODEL_GBITS, latency_s: float = LATENCY_S) -> list[str]:
    """The modeled table: each preset's one-process compute time and bytes per step, the expected
    efficiency at ``workers`` on each network, and at the largest cluster the all-reduce's time
    (its bandwidth and latency parts) and the compute time a step needs for 90%."""
    most = max(workers)
    lines = [f"| preset | t_c ms | MB/step | network | {' | '.join(f'{n} workers' for n in workers)} "
             f"| t_comm at {most}: bandwidth + latency ms | t_c for {TARGET_EFFICIENCY:.0%} at {most} |",
             "|---|---|---|---|" + "---|" * len(workers) + "---|---|"]
    for preset, by_procs in _by_preset(runs).items():
        base = by_procs.get(1) or by_procs[min(by_procs)]
        t_c, size = base.compute_seconds, base.bytes_per_step
        for g in gbits:
            cells = " | ".join(f"{modeled_efficiency(t_c, size, n, g, latency_s):.2f}" for n in workers)
            bandwidth = ring_allreduce_seconds(size, most, g, latency_s=0.0)
            latency = ring_allreduce_seconds(size, most, g, latency_s=latency_s) - bandwidth
            lines.append(f"| {preset} | {1e3 * t_c:.1f} | {size / 1e6:.2f} | {g:g} Gbit/s | {cells} | "
                         f"{1e3 * bandwidth:.2f} + {1e3 * latency:.2f} | "
                         f"{1e3 * compute_for_efficiency(size, most, g, latency_s=latency_s):.1f} ms |")
    return lines


def scaling_lines(result: dict) -> list[str]:
    """The benchmark's Markdown: what ran, the measured table, the modeled one."""
    runs = [run_figures(r) for r in result["runs"]]
    presets = ", ".join(f"{p} ({PRESETS[p].description}, {result['rows'][p]} rows)" for p in result["rows"])
    latency = result.get("latency_s", LATENCY_S)
    return ["", f"Data-parallel scaling, kerasBackend=torch on backend=barrier, the two-worker test cluster "
                f"(one 1-core process per worker), Fashion-MNIST, batch {result['batch_size']} per process, "
                f"{result['epochs']} epochs: {presets}", "", *measured_lines(runs), "",
            f"Modeled efficiency, ring all-reduce without overlap, {1e6 * latency:.0f} us per hop", "",
            *model_lines(runs, latency_s=latency)]


# --- the spark-submit driver ------------------------------------------------------------------

def drive(args) -> dict:
    """Runs every fit on the session's cluster; returns the raw figures of each (``fitInfo``)."""
    from pyspark.sql import SparkSession

    from deepflash import KerasEstimator
    from deepflash.data import datasets

    # One thread per rank: each worker offers one core.
    spark = (SparkSession.builder.appName("deepflash-scaling").config("spark.executorEnv.OMP_NUM_THREADS", "1")
             .getOrCreate())
    spark.sparkContext.setLogLevel("WARN")
    x, y = datasets.load_idx_numpy(args.data, "train")
    runs, rows = [], {}
    for name in args.presets:
        preset = PRESETS[name]
        rows[name] = n_rows = args.cnn_rows if name == "cnn" else args.rows
        df = datasets.from_numpy(spark, x[:n_rows], y[:n_rows], num_partitions=4).cache()
        df.count()
        for procs in PROCS:
            est = KerasEstimator(layers=preset.layers, inputShape=preset.input_shape, optimizer="adam",
                                 learningRate=1e-3, batchSize=args.batch_size, epochs=args.epochs, validationSplit=0.0,
                                 backend="barrier", numProc=procs, kerasBackend="torch", seed=args.seed,
                                 storePath=os.path.join(args.driver, "scaling-store"))
            started = time.time()
            model = est.fit(df)
            info = model.fitInfo
            if info.allreduce is None or info.keras_backend != "torch":
                raise RuntimeError(f"{name} numProc={procs}: no all-reduce figures (Keras ran on {info.keras_backend})")
            runs.append({"preset": name, "procs": procs, "rows": n_rows, "batch_size": args.batch_size,
                         "epoch_seconds": list(info.epoch_seconds), "allreduce": dataclasses.asdict(info.allreduce),
                         "params": model.getKerasModel().count_params(), "fit_seconds": info.fit_seconds,
                         "seconds": time.time() - started, "final_loss": model.getHistory()["loss"][-1]})
        df.unpersist()
    spark.stop()
    return {"runs": runs, "rows": rows, "batch_size": args.batch_size, "epochs": args.epochs}


# --- the launcher -----------------------------------------------------------------------------

def _cluster_harness():
    """tests/cluster/conftest.py as a module (its :func:`start_cluster`), outside pytest."""
    name = "deepflash_test_cluster"
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "tests", "cluster", "conftest.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module   # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def _driver_args(data: str, rows: int, cnn_rows: int, epochs: int, batch_size: int, seed: int,
                 presets: tuple[str, ...]) -> list[str]:
    return ["--data", data, "--rows", str(rows), "--cnn-rows", str(cnn_rows), "--epochs", str(epochs),
            "--batch-size", str(batch_size), "--seed", str(seed), "--presets", ",".join(presets)]


def scaling_benchmark(data: str, rows: int | None = None, cnn_rows: int | None = None, epochs: int | None = None,
                      batch_size: int = 128, seed: int = 0, presets: tuple[str, ...] = tuple(PRESETS),
                      latency_s: float = LATENCY_S, timeout: float = 900) -> dict:
    """Starts the test cluster (under build/scaling-cluster, beside a test session's), runs
    :func:`drive` there in a spark-submit driver and returns its figures; for :func:`scaling_lines`.

    Args:
        rows, cnn_rows, epochs: None for the presets' rows and :data:`EPOCHS`.

    Raises:
        RuntimeError: the cluster cannot start here, or the driver failed (with the logs' tails).
    """
    rows, cnn_rows = rows or PRESETS["mlp"].rows, cnn_rows or PRESETS["cnn"].rows
    epochs = epochs or EPOCHS
    harness = _cluster_harness()
    started = time.time()
    with harness.start_cluster(harness.ROOT / "build" / "scaling-cluster") as cluster:
        script = os.path.abspath(__file__)
        proc = cluster.submit(script, "--driver", cluster.shared_dir,
                              *_driver_args(data, rows, cnn_rows, epochs, batch_size, seed, presets),
                              timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"the scaling driver exited {proc.returncode}\n"
                               + cluster.failure_report(proc.stderr, None, proc.stdout))
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if not lines:
            raise RuntimeError("the scaling driver printed no RESULT line\n"
                               + cluster.failure_report(proc.stderr, None, proc.stdout))
        result = json.loads(lines[-1][len("RESULT "):])
    return {**result, "latency_s": latency_s, "seconds": time.time() - started}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST IDX directory")
    parser.add_argument("--rows", type=int, default=PRESETS["mlp"].rows, help="training rows of the MLP")
    parser.add_argument("--cnn-rows", type=int, default=PRESETS["cnn"].rows, help="training rows of the CNN")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="epochs per fit (the first is not counted)")
    parser.add_argument("--batch-size", type=int, default=128, help="rows per process and step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--presets", type=lambda s: tuple(s.split(",")), default=tuple(PRESETS),
                        help=f"comma-separated, of: {', '.join(PRESETS)}")
    parser.add_argument("--latency-us", type=float, default=LATENCY_S * 1e6, help="the model's latency per hop")
    parser.add_argument("--output", default="output/bench", help="where scaling.md and scaling.json go")
    parser.add_argument("--from-json", help="print the tables of an earlier run's scaling.json; run nothing")
    parser.add_argument("--driver", metavar="SHARED", help=argparse.SUPPRESS)   # the spark-submit side
    args = parser.parse_args(argv)
    unknown = [p for p in args.presets if p not in PRESETS]
    if unknown:
        parser.error(f"`--presets` names {', '.join(unknown)}, must be of: {', '.join(PRESETS)}")
    if args.driver:
        print("RESULT " + json.dumps(drive(args)))
        return 0
    if args.from_json:
        with open(args.from_json) as f:
            result = json.load(f)
    else:
        if not os.path.isdir(args.data):
            raise SystemExit(f"Fashion-MNIST not found in {args.data}: apt-get install dataset-fashion-mnist")
        result = scaling_benchmark(args.data, args.rows, args.cnn_rows, args.epochs, args.batch_size, args.seed,
                                   args.presets, latency_s=args.latency_us / 1e6)
        os.makedirs(args.output, exist_ok=True)
        with open(os.path.join(args.output, "scaling.json"), "w") as f:
            json.dump(result, f, indent=2)
    report = "\n".join(scaling_lines(result)).strip()
    print(report)
    if not args.from_json:
        with open(os.path.join(args.output, "scaling.md"), "w") as f:
            f.write(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
