"""The Keras callbacks that combine the training processes: validation over every process's rows,
training metrics averaged over the processes, and rank 0's weights at the start.

The communicators (:mod:`deepflash.backends`) add :class:`BroadcastInitialWeights` (Horovod),
:class:`BroadcastTorchWeights` (``torch.distributed``) and :class:`AverageMetrics`; the training
loop adds :class:`ShardedValidation` first, so that the learning-rate and early-stopping callbacks
read the combined ``val_`` metrics.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf


class BroadcastInitialWeights(tf.keras.callbacks.Callback):
    """Sets every rank's weights to rank 0's when training begins, with eager Horovod broadcasts
    named by position (nothing is traced or cached between fits)."""

    def __init__(self, hvd, root_rank: int = 0):
        super().__init__()
        self.hvd, self.root_rank = hvd, root_rank

    def on_train_begin(self, logs=None):
        for i, weight in enumerate(self.model.weights):
            weight.assign(self.hvd.broadcast(weight.value(), self.root_rank, name=f"deepflash_weight_{i}"))


class BroadcastTorchWeights(tf.keras.callbacks.Callback):
    """Sets every rank's weights to rank 0's when training begins (Keras 3 on PyTorch): each
    variable's tensor is overwritten in place by ``broadcast`` (``torch.distributed.broadcast``)."""

    def __init__(self, broadcast):
        super().__init__()
        self.broadcast = broadcast

    def on_train_begin(self, logs=None):
        import torch

        with torch.no_grad():
            for weight in self.model.weights:
                self.broadcast(weight.value.data)


class ShardedValidation(tf.keras.callbacks.Callback):
    """Validation on each process's own share of the validation rows, combined exactly.

    Each process evaluates its shard, then the per-shard means times their row counts are summed
    over all processes and divided by the total rows: the same numbers as one process evaluating
    every validation row (for mean-decomposable metrics: the loss, accuracy, mae, mse), at 1/N of
    the reading and compute. With per-example weights Keras's loss is the sum of weight times loss
    over the rows divided by the rows (not by the weights), so the weighted ``val_loss`` combines
    exactly in the same way; the other metrics are unweighted. It writes ``val_<metric>`` into the
    epoch's logs before the early-stopping and learning-rate callbacks read them.

    Args:
        dataset: this process's validation batches (finite).
        rows: the rows in ``dataset`` (0 is fine: the process contributes nothing).
        all_sum: sums a float64 array over all processes.
        steps: the evaluation's steps (a ``tf.distribute`` dataset needs them); None = to the end.
        global_metrics: the model's ``evaluate`` already combines every process's rows (Keras 2
            under a multi-worker ``tf.distribute`` strategy, whose metric states are all-reduced):
            every process evaluates ``steps`` steps (the strategy needs all of them in each step)
            and the results are used as they are.
        evaluate: ``(model, dataset, steps) -> metrics by name``: the communicator's
            :meth:`~deepflash.backends.base.Communicator.evaluate`.
    """

    def __init__(self, dataset, rows: int, all_sum, steps: int | None = None, global_metrics: bool = False, *,
                 evaluate):
        super().__init__()
        self.dataset, self.rows, self.all_sum = dataset, rows, all_sum
        self.steps, self.global_metrics = steps, global_metrics
        self._evaluate = evaluate

    def on_epoch_end(self, epoch, logs=None):
        if self.global_metrics:
            result = self.model.evaluate(self.dataset, steps=self.steps, verbose=0, return_dict=True)
            if logs is not None:
                logs.update({f"val_{name}": float(value) for name, value in result.items()})
            return
        names = list(self.model.metrics_names)
        means = np.zeros(len(names))
        if self.rows:
            result = self._evaluate(self.model, self.dataset, self.steps)
            names = list(result)
            means = np.array([float(result[n]) for n in names])
        totals = self.all_sum(np.concatenate([means * self.rows, [float(self.rows)]]))
        if logs is not None and totals[-1] > 0:
            for name, total in zip(names, totals[:-1], strict=True):
                logs[f"val_{name}"] = float(total / totals[-1])


class AverageMetrics(tf.keras.callbacks.Callback):
    """Averages each process's training metrics over all processes at the end of every epoch, as
    Horovod's ``MetricAverageCallback`` does, so that every process logs and decides on the same
    numbers. The ``val_`` metrics (combined by :class:`ShardedValidation`) and ``lr`` are left alone.

    Args:
        all_sum: sums a float64 array over all processes.
        size: the number of processes.
    """

    def __init__(self, all_sum, size: int):
        super().__init__()
        self.all_sum, self.size = all_sum, size

    def on_epoch_end(self, epoch, logs=None):
        if not logs:
            return
        names = sorted(k for k in logs if not k.startswith("val_") and k not in ("lr", "learning_rate", "stage"))
        totals = self.all_sum(np.array([float(logs[k]) for k in names], np.float64))
        for name, total in zip(names, totals, strict=True):
            logs[name] = float(total / self.size)
