"""The GPU path for real, on a machine with NVIDIA GPUs: stage-level scheduling of the training
stage, one GPU per rank, training on the GPUs, and ``transform`` on them. ``tools/gpu_check.sh``
runs it; it prints one ``GPU-CHECK {json}`` line and exits non-zero when a check fails.

It starts a ``local-cluster[1,2N,4096]`` Spark (one worker, one executor of 2N cores, its tasks
half a GPU each) whose worker offers the N GPUs that ``nvidia-smi`` lists, and:

1. fits the digits MLP with ``backend="barrier"``, ``numProc=N``: each rank must get one GPU
   address from its task and see exactly it in ``CUDA_VISIBLE_DEVICES``, all ranks different;
   while it trains, ``nvidia-smi`` must show N processes on the GPUs;
2. scores the test split with ``transform`` (tasks of half a GPU each) and checks the accuracy.

``--fake`` runs the same on a machine without GPUs, with the test cluster's discovery script
(addresses 0 and 1) and no ``nvidia-smi``: the scheduling and pinning checks, not the GPU use.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def gpu_indices() -> list[str]:
    out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                         text=True, timeout=30)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def gpu_processes() -> set[str]:
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"], capture_output=True,
                         text=True, timeout=30)
    return {line.strip() for line in out.stdout.splitlines() if line.strip()}


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


_lines = _Lines()


def resources_line() -> str:
    """The driver's log line on the training stage's resources."""
    return next((line for line in _lines.lines if line.startswith("training tasks:")), "")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fake", action="store_true", help="no GPU: the test cluster's fake GPUs 0 and 1")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args(argv)

    folder = tempfile.mkdtemp(prefix="deepflash-gpu-check-")
    if args.fake:
        gpus, script = ["0", "1"], os.path.join(ROOT, "tests", "cluster", "fake_gpus.sh")
    else:
        gpus = gpu_indices()
        if not gpus:
            print("GPU-CHECK " + json.dumps({"ok": False, "reason": "nvidia-smi lists no GPU"}))
            return 2
        script = os.path.join(folder, "gpus.sh")
        with open(script, "w") as f:
            f.write("#!/usr/bin/env bash\n"
                    "idx=$(nvidia-smi --query-gpu=index --format=csv,noheader | sed 's/.*/\"&\"/' | paste -sd, -)\n"
                    "echo \"{\\\"name\\\": \\\"gpu\\\", \\\"addresses\\\": [$idx]}\"\n")
        os.chmod(script, 0o755)
    n = len(gpus)
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master(f"local-cluster[1,{2 * n},4096]").appName("deepflash-gpu-check")
             .config("spark.worker.resource.gpu.amount", str(n))
             .config("spark.worker.resource.gpu.discoveryScript", script)
             .config("spark.executor.resource.gpu.amount", str(n))
             .config("spark.executor.resource.gpu.discoveryScript", script)
             .config("spark.task.resource.gpu.amount", "0.5")
             .config("spark.executor.cores", str(2 * n)).config("spark.executor.memory", "3g")
             .config("spark.pyspark.python", sys.executable).config("spark.ui.enabled", "false")
             .getOrCreate())
    spark.sparkContext.setLogLevel("WARN")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    logging.getLogger("deepflash").addHandler(_lines)
    from deepflash import KerasEstimator
    from deepflash.data.datasets import load_digits

    train, test = load_digits(spark).randomSplit([0.8, 0.2], seed=7)
    est = KerasEstimator(backend="barrier", numProc=n, storePath=os.path.join(folder, "store"), epochs=args.epochs,
                         layers=[{"type": "dense", "units": 128, "activation": "relu"}], learningRate=0.01,
                         batchSize=64, seed=1)
    seen: set[str] = set()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                seen.update(gpu_processes())
            except (OSError, subprocess.SubprocessError):
                return
            time.sleep(0.5)

    if not args.fake:
        threading.Thread(target=sample, daemon=True).start()
    started = time.time()
    model = est.fit(train)
    fit_seconds = time.time() - started
    done.set()
    started = time.time()
    scored = model.transform(test).select("label", "prediction").collect()
    transform_seconds = time.time() - started
    accuracy = sum(r["label"] == r["prediction"] for r in scored) / len(scored)
    devices = [{"task_gpus": list(d.task_gpus), "cuda_visible_devices": d.cuda_visible_devices}
               for d in model.fitInfo.devices_per_rank]
    checks = {
        "one_gpu_per_rank": len(devices) == n and all(len(d["task_gpus"]) == 1 for d in devices),
        "ranks_see_their_task_gpu": all(d["cuda_visible_devices"] == d["task_gpus"][0] for d in devices
                                        if d["task_gpus"]),
        "ranks_on_different_gpus": len({d["task_gpus"][0] for d in devices if d["task_gpus"]}) == n,
        "accuracy_at_least_0.9": accuracy >= 0.9,
        "training_stage_has_its_own_resources": "stage-level scheduling" in resources_line(),
    }
    if not args.fake:
        checks["gpu_processes_while_training"] = len(seen) >= n
    out = {"ok": all(checks.values()), "gpus": gpus, "training_tasks": resources_line(), "checks": checks,
           "devices": devices,
           "gpu_processes_seen": len(seen), "fit_seconds": round(fit_seconds, 1),
           "train_seconds": round(model.fitInfo.fit_seconds, 1),
           "transform_seconds": round(transform_seconds, 1),
           "accuracy": round(accuracy, 4), "keras_backend": model.fitInfo.keras_backend}
    print("GPU-CHECK " + json.dumps(out), flush=True)
    spark.stop()
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
