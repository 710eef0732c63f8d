"""The training function that runs in every training process (driver or Spark executor).

Everything it needs arrives in one plain ``settings`` dict built by the estimator: model bytes,
dataset URLs, hyperparameters. It imports TensorFlow, Horovod and the reader, never the
estimator, so it pickles by reference and runs wherever ``deepflash`` is importable.
"""
from __future__ import annotations

import io
import json
import logging
import math
import os
import sys
import time
from typing import Any

import numpy as np

from deepflash.data.readers import get_reader, to_dataset
from deepflash.keras_io import model_from_bytes
from deepflash.store import Store

log = logging.getLogger("deepflash")
CHECKPOINT_FILE = "checkpoint.npz"


class _SingleProcess:
    """Communication for one process: nothing to share."""

    rank = 0
    size = 1
    local_rank = 0
    local_size = 1

    def wrap_optimizer(self, optimizer):
        return optimizer

    def callbacks(self) -> list:
        return []


class _Horovod(_SingleProcess):
    """Horovod's Keras bindings: averaged gradients, rank-0 weights broadcast, averaged metrics."""

    def __init__(self) -> None:
        import horovod.tensorflow.keras as hvd

        hvd.init()
        self.hvd = hvd
        self.rank, self.size = hvd.rank(), hvd.size()
        self.local_rank, self.local_size = hvd.local_rank(), hvd.local_size()

    def wrap_optimizer(self, optimizer):
        return self.hvd.DistributedOptimizer(optimizer)

    def callbacks(self) -> list:
        # Order matters: weights are synchronised first, metrics averaged before the early
        # stopping and LR callbacks read them, so every rank takes the same decisions.
        return [self.hvd.callbacks.BroadcastGlobalVariablesCallback(0),
                self.hvd.callbacks.MetricAverageCallback()]


def _configure_devices(comm: _SingleProcess, threads: int = 0) -> None:
    """Pins each process to its own GPU when there are GPUs, and splits CPU threads otherwise.

    ``threads`` > 0 caps TensorFlow's CPU threads, e.g. for search trials that share an executor.
    TensorFlow only accepts thread settings before its runtime starts; in a reused Python worker
    that already ran TensorFlow the old setting stays, which is logged, not raised.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        for gpu in gpus:
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
                tf.config.set_visible_devices(gpus[comm.local_rank % len(gpus)], "GPU")
            except RuntimeError as e:  # already initialized in this process
                log.debug("GPU settings unchanged: %s", e)
        return
    if threads <= 0 and comm.local_size > 1:
        threads = max(1, (os.cpu_count() or 1) // comm.local_size)
    if threads > 0 and tf.config.threading.get_intra_op_parallelism_threads() != threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
        except RuntimeError as e:
            log.debug("TensorFlow threads unchanged (%s)", e)


def _ensure_logging() -> None:
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s deepflash %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def _make_callbacks(settings: dict, comm: _SingleProcess, store: Store, history_before: dict) -> list:
    import tensorflow as tf

    from deepflash.training import CheckpointCallback, EpochLogger, RestoreBestEarlyStopping

    callbacks = comm.callbacks()
    monitor = settings["monitor"]
    if settings["reduce_lr_patience"] > 0:
        callbacks.append(tf.keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, factor=settings["reduce_lr_factor"], patience=settings["reduce_lr_patience"],
            verbose=0))
    if settings["early_stopping_patience"] > 0:
        callbacks.append(RestoreBestEarlyStopping(monitor=monitor, patience=settings["early_stopping_patience"]))
    if comm.rank == 0 and settings["checkpoint_path"]:
        callbacks.append(CheckpointCallback(store, settings["checkpoint_path"], settings["run_fingerprint"],
                                            history_before, settings["run_id"]))
    if comm.rank == 0:
        callbacks.append(EpochLogger(settings["epochs"], settings.get("log_prefix", "")))
    return callbacks


def load_checkpoint(store: Store, path: str, fingerprint: str) -> dict | None:
    """The checkpoint at ``path`` as {"epoch", "history", "weights", "optimizer"}, or None."""
    if not store.exists(path):
        return None
    with np.load(io.BytesIO(store.read_bytes(path)), allow_pickle=False) as z:
        state = json.loads(str(z["state"]))
        if state["fingerprint"] != fingerprint:
            raise ValueError(
                f"`runId` {state['run_id']!r} holds a checkpoint of a different model or dataset; "
                "use a new runId, or the same data and layers to resume")
        weights = [z[f"w{i}"] for i in range(state["num_weights"])]
        optimizer = [z[f"o{i}"] for i in range(state["num_optimizer"])]
    return {"epoch": state["epoch"], "history": state["history"], "weights": weights, "optimizer": optimizer}


def make_settings(values: dict, plan: dict, model_bytes: bytes, *, run_fingerprint: str, run_id: str,
                  checkpoint_path: str | None, distributed: bool, log_prefix: str = "") -> dict:
    """The settings dict for :func:`train`.

    Args:
        values: estimator Param values by name (``optimizer``, ``learningRate``, ``loss`` ...).
        plan: what the driver learned and wrote: ``train_url``, ``val_url``, ``train_rows``,
            ``val_rows``, ``output_kind``, ``num_classes``, ``store_url``.
        checkpoint_path: where rank 0 checkpoints every epoch; None for no checkpoints.
    """
    from deepflash.networks import resolve_loss

    keras_loss, target_encoding = resolve_loss(values["loss"], plan["output_kind"])
    metrics = list(values["metrics"]) or (["mae"] if plan["output_kind"] == "regression" else ["accuracy"])
    return {
        "model_bytes": model_bytes, "optimizer": values["optimizer"], "learning_rate": values["learningRate"],
        "momentum": values["momentum"], "nesterov": values["nesterov"], "scale_lr": values["scaleLearningRate"],
        "loss": keras_loss, "target_encoding": target_encoding, "num_classes": plan["num_classes"],
        "metrics": metrics, "batch_size": values["batchSize"], "epochs": values["epochs"], "seed": values["seed"],
        "train_url": plan["train_url"], "val_url": plan["val_url"], "train_rows": plan["train_rows"],
        "val_rows": plan["val_rows"], "early_stopping_patience": values["earlyStoppingPatience"],
        "monitor": values["earlyStoppingMonitor"], "reduce_lr_patience": values["reduceLrPatience"],
        "reduce_lr_factor": values["reduceLrFactor"], "checkpoint_path": checkpoint_path,
        "run_fingerprint": run_fingerprint, "run_id": run_id, "store_url": plan["store_url"],
        "reader": plan.get("reader", "petastorm"), "verbose": values["verbose"], "distributed": distributed,
        "log_prefix": log_prefix, "threads": int(plan.get("threads") or 0),
    }


def train(settings: dict) -> dict[str, Any]:
    """Trains one process's share and returns its history (and, on rank 0, the weights)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _ensure_logging()
    import tensorflow as tf

    from deepflash.networks import make_optimizer

    comm = _Horovod() if settings["distributed"] else _SingleProcess()
    _configure_devices(comm, int(settings.get("threads") or 0))
    if settings["seed"] is not None:
        tf.keras.utils.set_random_seed(settings["seed"])

    store = Store(settings["store_url"])
    reader = get_reader(settings["reader"])
    started = time.time()
    train_shard = reader.load(settings["train_url"], comm.rank, comm.size)
    val_shard = reader.load(settings["val_url"]) if settings["val_rows"] > 0 else None
    read_seconds = time.time() - started

    model = model_from_bytes(settings["model_bytes"])
    lr = settings["learning_rate"] * (comm.size if settings["scale_lr"] else 1)
    optimizer = comm.wrap_optimizer(make_optimizer(settings["optimizer"], lr, settings["momentum"],
                                                   settings["nesterov"]))
    model.compile(optimizer=optimizer, loss=settings["loss"], metrics=settings["metrics"])

    initial_epoch, history_before = 0, {}
    ckpt = None
    if settings["checkpoint_path"]:
        ckpt = load_checkpoint(store, settings["checkpoint_path"], settings["run_fingerprint"])
    if ckpt is not None:
        model.set_weights(ckpt["weights"])
        if ckpt["optimizer"]:
            optimizer._create_all_weights(model.trainable_variables)
            optimizer.set_weights(ckpt["optimizer"])
        initial_epoch, history_before = ckpt["epoch"], ckpt["history"]
        if comm.rank == 0:
            log.info("%sresuming run from its checkpoint after epoch %d", settings.get("log_prefix", ""),
                     initial_epoch)

    seed = settings["seed"]
    train_ds = to_dataset(train_shard, batch_size=settings["batch_size"], target_encoding=settings["target_encoding"],
                          num_classes=settings["num_classes"], shuffle=True,
                          seed=None if seed is None else seed + comm.rank, repeat=True)
    # Every rank takes the same number of steps, or the allreduce of the slower one would wait forever.
    steps = max(1, math.ceil(settings["train_rows"] / (settings["batch_size"] * comm.size)))
    val_ds = None
    if val_shard is not None:
        val_ds = to_dataset(val_shard, batch_size=max(settings["batch_size"], 1024),
                            target_encoding=settings["target_encoding"], num_classes=settings["num_classes"],
                            shuffle=False, seed=None, repeat=False)

    callbacks = _make_callbacks(settings, comm, store, history_before)
    fit_started = time.time()
    if initial_epoch < settings["epochs"]:
        result = model.fit(train_ds, steps_per_epoch=steps, epochs=settings["epochs"], initial_epoch=initial_epoch,
                           validation_data=val_ds, callbacks=callbacks,
                           verbose=2 if settings["verbose"] >= 2 and comm.rank == 0 else 0)
        new_history = {k: [float(v) for v in vs] for k, vs in result.history.items()}
    else:
        new_history = {}
    history = {k: list(history_before.get(k, [])) + new_history.get(k, [])
               for k in sorted(set(history_before) | set(new_history))}
    out: dict[str, Any] = {
        "rank": comm.rank,
        "history": history,
        "initial_epoch": initial_epoch,
        "read_seconds": read_seconds,
        "fit_seconds": time.time() - fit_started,
        "train_rows_read": int(len(train_shard.labels)),
    }
    if comm.rank == 0:
        out["weights"] = model.get_weights()
    return out
