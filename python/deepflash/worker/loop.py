"""The training function that runs in every training process (driver or Spark executor).

Everything it needs arrives in one frozen :class:`TrainSettings` built on the driver by
:func:`make_settings`: model bytes, dataset URLs, hyperparameters. It imports TensorFlow, Horovod and the reader, never the
estimator, so it pickles by reference and runs wherever ``deepflash`` is importable.

Checkpoints and exact resume
    With a ``checkpoint_path`` (the estimator sets one only for a user-given ``runId``) rank 0
    writes, after every epoch and after the learning-rate and early-stopping callbacks have run,
    one file holding everything training continues from: weights, the optimizer's variables
    (iteration count and slots) and current learning rate, the learning-rate callback's state
    (plateau multiplier and counters) and the early-stopping state (counters, best value, best
    weights, whether it stopped) and the history. The schedule itself is a function of the epoch,
    so the resumed run continues it from the checkpoint's epoch.
    Every rank waits until that file is written before it starts the next epoch. A run started
    again with the same checkpoint continues after the checkpoint's epoch; one that had stopped
    early trains no more and returns its best weights. The training batches are a deterministic
    function of (seed, rank) and their position (see :func:`deepflash.data.readers.to_dataset`),
    and a resumed run starts the stream at batch ``initial_epoch * steps_per_epoch``, so on the
    same hardware a run of 4 epochs and a run of 2 epochs resumed for 2 more end with identical
    weights and history.
    In cascade mode (format 4) the checkpoint also records the stage whose network it holds: a
    resumed run continues that stage (its network, optimizer and plateau state) or, when the
    stage had finished, carries its layers into the next one. Each stage reads the batch stream
    from its first epoch's position, so stage boundaries resume exactly as well.

Test-only fault injection
    ``DEEPFLASH_TEST_CRASH="rank=1,epoch=3,marker=/path/to/marker"`` in the environment (the
    horovod backend passes the driver's environment to its ranks) makes process ``rank`` end
    with ``os._exit(1)`` at the start of ``epoch`` (1-based), once: it creates the marker file
    first, and does nothing when the marker exists, so the next fit runs through. The marker path
    must not contain a comma. This exists for the resume tests; never set it in real runs.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from deepflash.networks.cascade_plan import CascadePlan, resolve_cascade
from deepflash.data.readers import Shard, get_reader, stream_dataset, to_dataset
from deepflash.worker.devices import configure_tensorflow
from deepflash.networks.keras_compat import prepare_distributed_fit
from deepflash.io.keras_files import model_from_bytes
from deepflash.data.plan import FitPlan
from deepflash.networks.schedules import LrSchedule, check_schedule
from deepflash.io.store import Store

log = logging.getLogger("deepflash")
CHECKPOINT_FILE = "checkpoint.npz"
CHECKPOINT_FORMAT = 4
CRASH_ENV = "DEEPFLASH_TEST_CRASH"


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

    # True when the compiled model's own evaluate() already combines every process's rows.
    global_evaluate = False

    def barrier(self) -> None:
        """Returns when every process got here (and rank 0 first)."""

    def sum(self, values):
        """The element-wise sum of ``values`` (a float64 array) over all processes."""
        return values

    def scope(self):
        """The context that models, optimizers and their variables are created and compiled in."""
        return contextlib.nullcontext()

    def dataset(self, build):
        """What ``model.fit``/``evaluate`` take: this process's batches, from ``build()`` (a
        ``tf.data.Dataset`` of per-process batches)."""
        return build()

    def prepare_model(self, model) -> None:
        """Readies a compiled model for ``fit`` under this communicator."""

    def validation_steps(self, rows: int, batch_size: int) -> int | None:
        """The steps of this process's validation (``rows`` rows in batches of ``batch_size``);
        None: to the end of its dataset."""
        return None


class _Horovod(_SingleProcess):
    """Horovod's Keras bindings: averaged gradients, rank-0 weights broadcast, averaged metrics."""

    def __init__(self) -> None:
        import horovod.tensorflow.keras as hvd

        hvd.init()
        self.hvd = hvd
        self.rank, self.size = hvd.rank(), hvd.size()
        self.local_rank, self.local_size = hvd.local_rank(), hvd.local_size()
        self._barriers = 0

    def wrap_optimizer(self, optimizer):
        # Horovod caches the tf.function that allreduces gradients by the optimizer's name, and
        # bakes "size > 1" into it when it is traced. Spark reuses its Python workers, so a worker
        # that ran a 1-process fit would skip the allreduce in a later 2-process fit (and the
        # other rank would wait forever). The job size in the name gives one trace per size.
        return self.hvd.DistributedOptimizer(optimizer, name=f"Distributed{type(optimizer).__name__}Size{self.size}")

    def callbacks(self) -> list:
        # Order matters: weights are synchronised first, metrics averaged before the early
        # stopping and LR callbacks read them, so every rank takes the same decisions.
        # Horovod's BroadcastGlobalVariablesCallback is not used: its broadcast is one tf.function
        # per process, traced once and keyed by the first fit's variable names, which do not match
        # a fresh rank's in a reused worker. Every rank starts from the same model bytes and the
        # same checkpoint (optimizer slots start at zero), so an eager broadcast of the weights at
        # the start keeps the guarantee without the cache.
        from deepflash.worker.callbacks import BroadcastInitialWeights

        return [BroadcastInitialWeights(self.hvd), self.hvd.callbacks.MetricAverageCallback()]

    def sum(self, values):
        return np.asarray(self.hvd.allreduce(np.asarray(values, np.float64), op=self.hvd.Sum,
                                             name="deepflash_sum"), np.float64)

    def barrier(self) -> None:
        # A broadcast from rank 0: no rank returns before rank 0 reached this point.
        self._barriers += 1
        self.hvd.broadcast(self._barriers, root_rank=0, name=f"deepflash_barrier_{self._barriers}")


class _MultiWorkerMirrored(_SingleProcess):
    """TensorFlow's ``MultiWorkerMirroredStrategy`` (``backend="barrier"``): every process is one
    worker of ``TF_CONFIG``; gradients and metric states are all-reduced by the strategy.

    Must be created before TensorFlow runs its first op in the process (a fresh process per rank,
    see :mod:`deepflash.backends.barrier`). Each process feeds its own shard: datasets go through
    ``distribute_datasets_from_function`` (no auto-sharding, no re-batching: ``batchSize`` stays per
    process, as with Horovod), and Keras divides the loss by the global batch, so the summed
    gradients are the average over all processes' batches.
    """

    def __init__(self) -> None:
        import tensorflow as tf

        from deepflash.networks.keras_compat import distributed_metrics_are_global

        self.tf = tf
        self.global_evaluate = distributed_metrics_are_global()
        self.rank = int(os.environ.get("DEEPFLASH_RANK", "0"))
        self.local_rank = int(os.environ.get("DEEPFLASH_LOCAL_RANK", "0"))
        self.local_size = int(os.environ.get("DEEPFLASH_LOCAL_SIZE", "1"))
        # Devices (GPU pinning, CPU threads) are fixed before the strategy starts TensorFlow's runtime.
        _configure_devices(self)
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING)
        self.strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        resolver = self.strategy.cluster_resolver
        self.size = self.strategy.num_replicas_in_sync
        if resolver.task_id != self.rank:
            raise RuntimeError(f"TF_CONFIG names this process worker {resolver.task_id}, "
                               f"but DEEPFLASH_RANK is {self.rank}")

    def scope(self):
        from deepflash.networks.keras_compat import multi_worker_steps

        stack = contextlib.ExitStack()
        stack.enter_context(self.strategy.scope())
        stack.enter_context(multi_worker_steps())
        return stack

    def callbacks(self) -> list:
        if self.global_evaluate:
            return []
        from deepflash.worker.callbacks import AverageMetrics

        return [AverageMetrics(self.sum, self.size)]

    def dataset(self, build):
        # Called once in this process (one worker, one replica): the process's own batches.
        return self.strategy.distribute_datasets_from_function(lambda _context: build())

    def prepare_model(self, model) -> None:
        prepare_distributed_fit(model)

    def validation_steps(self, rows: int, batch_size: int) -> int | None:
        # A distributed dataset needs its steps. Where the strategy combines the metrics, every
        # process takes the same number of steps: enough for the largest shard.
        if self.global_evaluate:
            own = np.zeros(self.size)
            own[self.rank] = rows
            rows = int(self.sum(own).max())
        return max(1, math.ceil(rows / batch_size))

    def sum(self, values):
        tf = self.tf
        x = tf.constant(np.asarray(values, np.float64))
        # This process's one replica holds x; the strategy's reduce sums it over every worker.
        per_replica = self.strategy.experimental_distribute_values_from_function(lambda _context: x)
        return np.asarray(self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None).numpy(), np.float64)

    def barrier(self) -> None:
        self.sum(np.zeros(1))


def make_communicator(collective: str) -> _SingleProcess:
    """The communicator of a training process: ``none``, ``horovod`` or ``tf``."""
    if collective == "horovod":
        return _Horovod()
    if collective == "tf":
        return _MultiWorkerMirrored()
    return _SingleProcess()


def _configure_devices(comm: _SingleProcess, threads: int = 0) -> None:
    """Pins each process to the GPU(s) of its Spark task (or its local rank's) when there are GPUs,
    and splits CPU threads between the processes of a host otherwise.

    ``threads`` > 0 caps TensorFlow's CPU threads, e.g. for search trials that share an executor.
    """
    if threads <= 0 and comm.local_size > 1:
        threads = max(1, (os.cpu_count() or 1) // comm.local_size)
    configure_tensorflow(local_rank=comm.local_rank, threads=threads)


def _ensure_logging() -> None:
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s deepflash %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def crash_hook(rank: int):
    """The test-only :class:`~deepflash.worker.callbacks.CrashHook` that ``DEEPFLASH_TEST_CRASH`` asks for on
    this rank, or None (see the module docstring)."""
    spec = os.environ.get(CRASH_ENV, "").strip()
    if not spec:
        return None
    from deepflash.worker.callbacks import CrashHook

    try:
        fields = dict(part.split("=", 1) for part in spec.split(",") if part.strip())
        target_rank, epoch, marker = int(fields.get("rank", 0)), int(fields["epoch"]), fields["marker"]
    except (KeyError, ValueError):
        raise ValueError(f"{CRASH_ENV} == {spec!r}, must look like 'rank=1,epoch=3,marker=/path'") from None
    return CrashHook(epoch, marker) if target_rank == rank else None


# --- checkpoints ----------------------------------------------------------------------------

def save_checkpoint(store: Store, path: str, *, epoch: int, history: dict, fingerprint: str, run_id: str,
                    training: dict, callbacks: dict, stopped: bool, num_proc: int,
                    cascade_stage: int | None = None) -> None:
    """Writes one checkpoint file, atomically.

    Args:
        training: :func:`deepflash.worker.callbacks.training_state` (weights, optimizer, learning rate).
        callbacks: ``get_state()`` of the stateful callbacks by name (``learning_rate``,
            ``early_stopping``); an early-stopping ``best_weights`` list is stored as arrays.
        stopped: whether early stopping ended the run at this epoch.
        cascade_stage: in cascade mode, the 0-based stage whose network ``training`` holds.
    """
    arrays = {f"w{i}": np.asarray(w) for i, w in enumerate(training["weights"])}
    arrays.update({f"o{i}": np.asarray(v) for i, v in enumerate(training["optimizer"])})
    callback_json = {}
    for name, state in callbacks.items():
        state = dict(state)
        best = state.pop("best_weights", None)
        if best is not None:
            state["num_best_weights"] = len(best)
            arrays.update({f"b{i}": np.asarray(w) for i, w in enumerate(best)})
        callback_json[name] = state
    meta = {"format": CHECKPOINT_FORMAT, "epoch": epoch, "history": history, "fingerprint": fingerprint,
            "run_id": run_id, "num_weights": len(training["weights"]), "num_optimizer": len(training["optimizer"]),
            "learning_rate": training.get("learning_rate"), "callbacks": callback_json, "stopped": bool(stopped),
            "num_proc": num_proc, "cascade_stage": cascade_stage}
    buf = io.BytesIO()
    np.savez(buf, state=np.array(json.dumps(meta)), **arrays)
    store.write_bytes(path, buf.getvalue())


def load_checkpoint(store: Store, path: str, fingerprint: str) -> dict | None:
    """The checkpoint at ``path``, or None when there is none.

    Returns a dict with ``epoch``, ``history``, ``weights``, ``optimizer`` (variable values),
    ``learning_rate`` (None when unknown), ``callbacks`` (states by name, early stopping's with
    its ``best_weights``), ``stopped``, ``num_proc`` and ``cascade_stage`` (None in standard mode and
    in formats before 4, which had no cascade).
    """
    if not store.exists(path):
        return None
    with np.load(io.BytesIO(store.read_bytes(path)), allow_pickle=False) as z:
        state = json.loads(str(z["state"]))
        if int(state.get("format", 0)) > CHECKPOINT_FORMAT:
            raise ValueError(f"the checkpoint of `runId` {state.get('run_id')!r} has format {state['format']}, "
                             f"newer than this deepflash reads ({CHECKPOINT_FORMAT}); resume it with that version, "
                             "or use a new runId")
        if state["fingerprint"] != fingerprint:
            raise ValueError(
                f"`runId` {state['run_id']!r} holds a checkpoint of a different model or dataset; "
                "use a new runId, or the same data and layers to resume")
        weights = [z[f"w{i}"] for i in range(state["num_weights"])]
        optimizer = [z[f"o{i}"] for i in range(state["num_optimizer"])]
        callbacks = {}
        for name, cb in (state.get("callbacks") or {}).items():
            cb = dict(cb)
            count = cb.pop("num_best_weights", None)
            cb["best_weights"] = None if count is None else [z[f"b{i}"] for i in range(count)]
            callbacks[name] = cb
    return {"epoch": state["epoch"], "history": state["history"], "weights": weights, "optimizer": optimizer,
            "learning_rate": state.get("learning_rate"), "callbacks": callbacks,
            "stopped": bool(state.get("stopped", False)), "num_proc": state.get("num_proc"),
            "cascade_stage": state.get("cascade_stage")}


@dataclass(frozen=True)
class TrainSettings:
    """Everything one training process needs, built on the driver by :func:`make_settings`."""

    model_bytes: bytes
    optimizer: str
    learning_rate: float
    momentum: float
    nesterov: bool
    scale_lr: bool
    loss: str
    target_encoding: str
    num_classes: int
    metrics: tuple
    batch_size: int
    epochs: int
    seed: int | None
    train_url: str
    val_url: str
    train_rows: int
    val_rows: int
    early_stopping_patience: int
    monitor: str
    reduce_lr_patience: int
    reduce_lr_factor: float
    lr_schedule: LrSchedule
    checkpoint_path: str | None
    run_fingerprint: str
    run_id: str
    store_url: str
    reader: str
    verbose: int
    distributed: bool
    collective: str = "horovod"   # with distributed: "horovod" or "tf" (see make_communicator)
    log_prefix: str = ""
    threads: int = 0
    read_mode: str = "auto"
    shuffle_buffer_rows: int = 10_000
    memory_budget_mb: float = 1024.0
    input_dim: int = 0
    weighted: bool = False
    cascade: CascadePlan | None = None


def choose_read_mode(settings: TrainSettings, num_proc: int) -> str:
    """``memory`` or ``stream``: ``auto`` keeps a shard in memory when it fits the budget.

    An in-memory shard costs its float32 features, labels and weights, about twice over while the
    ``tf.data`` pipeline is built from them.
    """
    if settings.read_mode != "auto":
        return settings.read_mode
    columns = settings.input_dim + 1 + int(settings.weighted)
    shard_bytes = math.ceil(settings.train_rows / max(num_proc, 1)) * columns * 4 * 2
    return "memory" if shard_bytes <= settings.memory_budget_mb * 2 ** 20 else "stream"


@dataclass
class TrainResult:
    """What one training process returns: its history, timings, and on rank 0 the weights."""

    rank: int
    history: dict
    initial_epoch: int
    read_seconds: float
    fit_seconds: float
    train_rows_read: int       # -1 when streamed (not counted)
    read_mode: str = "memory"
    weights: list | None = None


def make_settings(values: dict, plan: FitPlan, model_bytes: bytes, *, run_fingerprint: str, run_id: str,
                  checkpoint_path: str | None, distributed: bool, log_prefix: str = "",
                  collective: str = "horovod") -> TrainSettings:
    """The :class:`TrainSettings` for :func:`train`.

    Args:
        values: estimator Param values by name (``KerasEstimator.paramValues()``).
        plan: the fit's :class:`~deepflash.data.plan.FitPlan`.
        checkpoint_path: where rank 0 checkpoints every epoch and a later run with the same path
            resumes; None for no checkpoints.
    """
    from deepflash.networks import resolve_loss

    keras_loss, target_encoding = resolve_loss(values["loss"], plan.output_kind)
    metrics = tuple(values["metrics"] or (["mae"] if plan.output_kind == "regression" else ["accuracy"]))
    # Search trials reach here without the estimator's validation: a schedule that cannot run fails the trial.
    lr_schedule = LrSchedule.from_values(values)
    check_schedule(lr_schedule, values["learningRate"])
    cascade = resolve_cascade(values)
    return TrainSettings(
        model_bytes=model_bytes, optimizer=values["optimizer"], learning_rate=values["learningRate"],
        momentum=values["momentum"], nesterov=values["nesterov"], scale_lr=values["scaleLearningRate"],
        loss=keras_loss, target_encoding=target_encoding, num_classes=plan.num_classes,
        metrics=metrics, batch_size=values["batchSize"], epochs=values["epochs"], seed=values["seed"],
        train_url=plan.train_url, val_url=plan.val_url, train_rows=plan.train_rows,
        val_rows=plan.val_rows, early_stopping_patience=values["earlyStoppingPatience"],
        monitor=values["earlyStoppingMonitor"], reduce_lr_patience=values["reduceLrPatience"],
        reduce_lr_factor=values["reduceLrFactor"], lr_schedule=lr_schedule,
        checkpoint_path=checkpoint_path,
        run_fingerprint=run_fingerprint, run_id=run_id, store_url=plan.store_url,
        reader=plan.reader, verbose=values["verbose"], distributed=distributed,
        collective=collective if distributed else "none",
        log_prefix=log_prefix, threads=int(plan.threads or 0), read_mode=values.get("readMode", "auto"),
        shuffle_buffer_rows=int(values.get("shuffleBufferRows", 10_000)),
        memory_budget_mb=float(values.get("memoryBudgetMB", 1024.0)), input_dim=plan.input_dim,
        weighted=plan.weighted, cascade=cascade)


def _shard_weights(shard: Shard | None, weighted: bool, url: str) -> Shard | None:
    """The shard as training uses it: a weighted shard that holds no rows gets an empty weight
    array, so that every rank's batches have the same structure. Raises when the data and the
    plan disagree about weights."""
    if shard is None or (shard.weights is not None) == weighted:
        return shard
    if weighted and not len(shard.labels):
        return Shard(shard.features, shard.labels, np.zeros((0,), np.float32))
    raise ValueError(f"the materialized data at {url} {'has no' if weighted else 'has a'} weight column, "
                     f"but the fit was planned {'with' if weighted else 'without'} `weightCol`; "
                     "the store holds damaged data, remove it and fit again")


def _learning_rate_state(ckpt: dict, settings: TrainSettings, num_proc: int) -> dict | None:
    """The learning-rate callback's state in a checkpoint.

    Checkpoints written before schedules existed hold ReduceLROnPlateau's counters as
    ``reduce_lr`` and no multiplier; their rate was α0 times the plateau reductions (α0 scaled by
    the processes of that run), so the multiplier is that rate over α0.
    """
    state = ckpt["callbacks"].get("learning_rate")
    if state is not None:
        return state
    old = ckpt["callbacks"].get("reduce_lr")
    if old is None or ckpt.get("learning_rate") is None:
        return None  # no plateau rule ran: the multiplier is 1
    scale = (ckpt.get("num_proc") or num_proc) if settings.scale_lr else 1
    return {**old, "multiplier": ckpt["learning_rate"] / (settings.learning_rate * scale)}


def _merge_history(before: dict, new: dict) -> dict:
    return {k: list(before.get(k, [])) + list(new.get(k, [])) for k in sorted(set(before) | set(new))}


def train(settings: TrainSettings, callbacks: Sequence[Any] = ()) -> TrainResult:
    """Trains one process's share and returns its history (and, on rank 0, the weights).

    In cascade mode (``settings.cascade``) it trains one stage network after the other (see
    :mod:`deepflash.networks.cascade_plan`), each with a fresh optimizer (wrapped for Horovod like the first) and
    learning-rate state, over the same batch stream; a checkpoint records the stage whose network
    it holds, and a resumed run continues within that stage or starts the next.

    Args:
        callbacks: extra Keras callbacks (e.g. a search's pruning callback); they run after the
            validation, learning-rate and early-stopping callbacks, so they see the epoch's val_ metrics.
    """
    extra_callbacks = list(callbacks)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _ensure_logging()
    import tensorflow as tf

    collective = settings.collective if settings.distributed else "none"
    if collective == "horovod":
        # Spark reuses its Python workers: drop the graphs and layer names of earlier fits.
        tf.keras.backend.clear_session()
    comm = make_communicator(collective)
    if collective != "tf":  # the strategy configured its process's devices before it started
        _configure_devices(comm, int(settings.threads or 0))
    with comm.scope():
        return _train(settings, comm, extra_callbacks)


def _train(settings: TrainSettings, comm: _SingleProcess, extra_callbacks: list) -> TrainResult:
    """The body of :func:`train`, inside the communicator's scope."""
    import tensorflow as tf

    from deepflash.networks import make_optimizer
    from deepflash.worker.callbacks import (CheckpointCallback, EpochLogger, RestoreBestEarlyStopping,
                                    ScheduledLearningRate, ShardedValidation, StageLog, restore_training_state,
                                    training_state)

    seed = settings.seed
    if seed is not None:
        tf.keras.utils.set_random_seed(seed)
    prefix = settings.log_prefix
    cascade = settings.cascade

    store = Store(settings.store_url)
    checkpoint_path = settings.checkpoint_path
    # Read first: a runId that holds another model's checkpoint fails before any data is read.
    ckpt = load_checkpoint(store, checkpoint_path, settings.run_fingerprint) if checkpoint_path else None
    if ckpt is not None and cascade is not None and ckpt["cascade_stage"] is None:
        raise ValueError(f"`runId` {settings.run_id!r} holds a checkpoint of standard training; a cascade fit "
                         "cannot continue it: use a new runId")

    reader = get_reader(settings.reader)
    read_mode = choose_read_mode(settings, comm.size)
    started = time.time()
    train_shard = reader.load(settings.train_url, comm.rank, comm.size) if read_mode == "memory" else None
    train_shard = _shard_weights(train_shard, settings.weighted, settings.train_url)
    # Every rank validates on its own 1/N of the validation rows; the metrics are then combined.
    val_shard = reader.load(settings.val_url, comm.rank, comm.size) if settings.val_rows > 0 else None
    val_shard = _shard_weights(val_shard, settings.weighted, settings.val_url)
    read_seconds = time.time() - started

    model = model_from_bytes(settings.model_bytes)
    # scaleLearningRate scales α0: every scheduled rate, and so the plateau-reduced ones, scale with it.
    lr = settings.learning_rate * (comm.size if settings.scale_lr else 1)
    monitor = settings.monitor

    initial_epoch, history, stopped = 0, {}, False
    if ckpt is not None:
        initial_epoch, history, stopped = ckpt["epoch"], ckpt["history"], ckpt["stopped"]
        if comm.rank == 0:
            log.info("%sresuming run %s from its checkpoint after epoch %d%s", prefix, settings.run_id,
                     initial_epoch, " (it had stopped early: nothing left to train)" if stopped else "")

    # Every rank takes the same number of steps, or the allreduce of the slower one would wait forever.
    steps = max(1, math.ceil(settings.train_rows / (settings.batch_size * comm.size)))
    stream_seed = None if seed is None else (seed, comm.rank)
    val_ds = val_steps = None
    if val_shard is not None:
        val_batch = max(settings.batch_size, 1024)
        # In content order where the reader's order varies, so that the metrics do not depend on it.
        val_ds = comm.dataset(lambda: to_dataset(
            val_shard, batch_size=val_batch, target_encoding=settings.target_encoding,
            num_classes=settings.num_classes, shuffle=False, seed=None, repeat=False,
            canonical_order=not reader.ordered))
        val_steps = comm.validation_steps(len(val_shard.labels), val_batch)

    def fit_span(net, first: int, start: int, end: int, restore: dict | None, stage=None):
        """Trains ``net`` from epoch ``start`` to ``end`` (0-based, end exclusive) with a fresh
        optimizer whose schedule began at epoch ``first``, continuing ``restore`` (a checkpoint)
        when given. Returns the new epochs' history and the early-stopping callback (or None)."""
        optimizer = comm.wrap_optimizer(make_optimizer(settings.optimizer, lr, settings.momentum,
                                                       settings.nesterov))
        # With weights the batches carry a sample_weight: it scales the loss, training's and
        # validation's; the metrics stay unweighted (an empty weighted_metrics says so to Keras).
        net.compile(optimizer=optimizer, loss=settings.loss, metrics=settings.metrics, weighted_metrics=[])
        comm.prepare_model(net)
        schedule = settings.lr_schedule
        if stage is not None:
            # The schedule restarts in every stage and runs over that stage's epochs.
            schedule = dataclasses.replace(schedule, epochs=stage.epochs)
        # Always present: it sets every epoch's rate and records it as `lr` in the history.
        learning_rate = ScheduledLearningRate(schedule, lr, monitor=monitor, patience=settings.reduce_lr_patience,
                                              factor=settings.reduce_lr_factor, first_epoch=first)
        early_stopping = None
        if settings.early_stopping_patience > 0:
            early_stopping = RestoreBestEarlyStopping(monitor=monitor, patience=settings.early_stopping_patience)
        if restore is not None:
            restore_training_state(net, optimizer, restore)
            learning_rate.set_state(_learning_rate_state(restore, settings, comm.size))
            if early_stopping is not None and "early_stopping" in restore["callbacks"]:
                early_stopping.set_state(restore["callbacks"]["early_stopping"])
        if read_mode == "memory":
            train_ds = comm.dataset(lambda: to_dataset(
                train_shard, batch_size=settings.batch_size, target_encoding=settings.target_encoding,
                num_classes=settings.num_classes, shuffle=True, seed=stream_seed, repeat=True,
                start_batch=start * steps, canonical_order=not reader.ordered))
        else:
            train_ds = comm.dataset(lambda: stream_dataset(
                reader, settings.train_url, shard=comm.rank, num_shards=comm.size, batch_size=settings.batch_size,
                buffer_rows=settings.shuffle_buffer_rows, target_encoding=settings.target_encoding,
                num_classes=settings.num_classes, seed=stream_seed, start_batch=start * steps))
        fit_callbacks = comm.callbacks()
        if val_ds is not None:
            # First: the LR and early-stopping callbacks read the val_ metrics it puts in the epoch's logs.
            fit_callbacks.insert(0, ShardedValidation(val_ds, len(val_shard.labels), comm.sum,
                                                      steps=val_steps, global_metrics=comm.global_evaluate))
        fit_callbacks += [cb for cb in (learning_rate, early_stopping) if cb is not None] + extra_callbacks
        if stage is not None:
            fit_callbacks.append(StageLog(stage.index + 1))
        # The checkpoint callback comes after the LR and early-stopping callbacks: it records the state they leave.
        if checkpoint_path:
            save = None
            if comm.rank == 0:
                def save(epoch: int, so_far: dict) -> None:
                    states = {name: cb.get_state() for name, cb in
                              (("learning_rate", learning_rate), ("early_stopping", early_stopping))
                              if cb is not None}
                    save_checkpoint(store, checkpoint_path, epoch=epoch, history=so_far,
                                    fingerprint=settings.run_fingerprint, run_id=settings.run_id,
                                    training=training_state(net, optimizer), callbacks=states,
                                    stopped=early_stopping is not None and early_stopping.stopped,
                                    num_proc=comm.size, cascade_stage=None if stage is None else stage.index)
            fit_callbacks.append(CheckpointCallback(save, history,
                                                    barrier=comm.barrier if comm.size > 1 else None))
        hook = crash_hook(comm.rank)
        if hook is not None:
            fit_callbacks.append(hook)
        if comm.rank == 0:
            where = "" if stage is None else f"stage {stage.index + 1}/{len(cascade.blocks)} "
            fit_callbacks.append(EpochLogger(settings.epochs, prefix + where))
        result = net.fit(train_ds, steps_per_epoch=steps, epochs=end, initial_epoch=start, callbacks=fit_callbacks,
                         verbose=2 if settings.verbose >= 2 and comm.rank == 0 else 0)
        return {k: [float(v) for v in vs] for k, vs in result.history.items()}, early_stopping

    fit_started = time.time()
    if cascade is None:
        if initial_epoch < settings.epochs and not stopped:
            new, _ = fit_span(model, 0, initial_epoch, settings.epochs, ckpt)
            history = _merge_history(history, new)
        elif ckpt is not None:
            # Nothing left to train: end as the finished run did, on its best weights under early stopping.
            model.set_weights(ckpt["weights"])
            best = (ckpt["callbacks"].get("early_stopping") or {}).get("best_weights")
            if settings.early_stopping_patience > 0 and best is not None:
                model.set_weights(best)
    else:
        from deepflash.networks.cascade import reset_trainable, stage_model

        if ckpt is not None:
            done = cascade.stages[ckpt["cascade_stage"]]
            if initial_epoch >= done.end:
                # The checkpoint's stage had finished: its layers carry over into the next stage.
                stage_model(model, cascade, done, seed).set_weights(ckpt["weights"])
        for stage in cascade.stages:
            if stage.end <= initial_epoch:
                continue
            net = stage_model(model, cascade, stage, seed)
            start = max(stage.start, initial_epoch)
            # Resuming within a stage: its network, optimizer and learning-rate state come back.
            restore = ckpt if ckpt is not None and start > stage.start else None
            if comm.rank == 0:
                log.info("%scascade stage %d/%d: hidden layers 1-%d, epochs %d-%d%s", prefix, stage.index + 1,
                         len(cascade.blocks), stage.layers, start + 1, stage.end,
                         "" if not stage.index else " (earlier layers frozen)" if cascade.fine_tune_rate == 0
                         else f" (earlier layers at {cascade.fine_tune_rate:g} x the rate)")
            new, _ = fit_span(net, stage.start, start, stage.end, restore, stage)
            history = _merge_history(history, new)
        reset_trainable(model)
    return TrainResult(rank=comm.rank, history=history, initial_epoch=initial_epoch, read_seconds=read_seconds,
                       fit_seconds=time.time() - fit_started, read_mode=read_mode,
                       train_rows_read=int(len(train_shard.labels)) if train_shard is not None else -1,
                       weights=model.get_weights() if comm.rank == 0 else None)


@dataclass
class TrainedNetwork:
    """A network trained in this process by :func:`train_network`."""

    model: Any
    history: dict
    fit_seconds: float


def train_network(values: dict, plan: FitPlan, log_prefix: str = "",
                  callbacks: Sequence[Any] = ()) -> TrainedNetwork:
    """Builds the network that ``values`` describe and trains it in this process, no checkpoints.

    The one single-process entry point for search trials and study runs: ``values`` are an
    estimator's :meth:`~deepflash.KerasEstimator.paramValues` with the trial's overrides;
    ``callbacks`` are extra Keras callbacks for :func:`train`.
    """
    import uuid

    from deepflash.io.keras_files import model_to_bytes
    from deepflash.networks import build_model

    model = build_model(values["layers"], plan.input_dim, plan.output_kind, plan.num_classes, seed=values["seed"],
                        input_shape=values.get("inputShape") or plan.input_shape,
                        augmentation=values.get("augmentation"),
                        kernel_initializer=values.get("kernelInitializer", "glorot_uniform"))
    settings = make_settings(values, plan, model_to_bytes(model), run_fingerprint="", run_id=uuid.uuid4().hex,
                             checkpoint_path=None, distributed=False, log_prefix=log_prefix)
    result = train(settings, callbacks)
    model.set_weights(result.weights)
    return TrainedNetwork(model=model, history=result.history, fit_seconds=result.fit_seconds)

