"""``kerasBackend="torch"`` on the ``barrier`` backend: Keras 3's own ``model.fit`` in every rank,
with ``torch.distributed`` (Gloo on CPU, NCCL on GPU) combining the ranks.

Each rank keeps ``fit`` and everything around it (callbacks, schedules, early stopping, sharded
validation, exact resume) and only its optimizer changes: :meth:`TorchCommunicator.wrap_optimizer`
makes ``apply`` average the gradients over every rank first, in one flat all-reduce per step, as
Horovod's ``DistributedOptimizer`` does. Every rank then applies the same update to the same
weights (rank 0's, broadcast when training begins), so the ranks stay identical without a DDP
wrapper or a custom loop. Each rank's batch is ``batchSize`` rows and its loss their mean, so the
averaged gradient is that of the mean over every rank's batch, as under TensorFlow's strategy.
The all-reduce comes after the whole backward pass, so communication never overlaps computation;
each one is timed and its bytes counted (:meth:`TorchCommunicator.allreduce_stats`, the fit's
``fitInfo.allreduce``).

The ranks meet at rank 0's ``host:port`` (``DEEPFLASH_MASTER``, from the barrier task), and every
collective is bounded by ``workerTimeout`` (``DEEPFLASH_WORKER_TIMEOUT``); the barrier task's
watch bounds the rest. Worker-safe.
"""
from __future__ import annotations

import datetime
import time

import numpy as np

from deepflash.backends.base import Communicator
from deepflash.backends.collective_stats import AllReduceMeter, AllReduceStats


class TorchCommunicator(Communicator):
    """One rank of a ``torch.distributed`` process group; created once per rank process, before
    any model (it pins the rank's GPU, then joins the group)."""

    def __init__(self, threads: int = 0) -> None:
        import torch
        import torch.distributed as dist

        self.torch, self.dist = torch, dist
        self.read_rank_env()
        self.meter = AllReduceMeter()
        super().__init__(threads)
        cuda = torch.cuda.is_available()
        self.device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
        if not dist.is_initialized():
            master, timeout = self.rendezvous("torch")
            dist.init_process_group("nccl" if cuda else "gloo", init_method=f"tcp://{master}", rank=self.rank,
                                    world_size=self.size, timeout=datetime.timedelta(seconds=timeout))

    def wrap_optimizer(self, optimizer):
        apply = optimizer.apply

        def apply_averaged(grads, trainable_variables=None):
            return apply(self.average(grads), trainable_variables)

        # Keras's torch trainer calls optimizer.apply(gradients, variables) in every step.
        optimizer.apply = apply_averaged
        return optimizer

    def average(self, grads: list) -> list:
        """``grads`` averaged over every rank, through one flat buffer (None entries stay None)."""
        torch = self.torch
        present = [g for g in grads if g is not None]
        if not present:
            return list(grads)
        started = time.perf_counter()
        flat = torch.cat([g.reshape(-1) for g in present])
        copied = time.perf_counter()
        self.dist.all_reduce(flat)
        reduced = time.perf_counter()
        flat.div_(self.size)
        self.meter.record(reduced - copied, copied - started + time.perf_counter() - reduced,
                          flat.numel() * flat.element_size())
        out, at = [], 0
        for g in grads:
            if g is None:
                out.append(None)
                continue
            n = g.numel()
            out.append(flat[at:at + n].view_as(g))
            at += n
        return out

    def allreduce_stats(self) -> AllReduceStats:
        """Every gradient all-reduce of this rank so far (:meth:`average`'s)."""
        return self.meter.stats()

    def callbacks(self) -> list:
        from deepflash.worker.sync import AverageMetrics, BroadcastTorchWeights

        return [BroadcastTorchWeights(self.broadcast), AverageMetrics(self.sum, self.size)]

    def broadcast(self, tensor) -> None:
        """Sets ``tensor`` (in place) to rank 0's value on every rank."""
        self.dist.broadcast(tensor, src=0)

    def sum(self, values):
        t = self.torch.tensor(np.asarray(values, np.float64), device=self.device)
        self.dist.all_reduce(t)
        return t.cpu().numpy().astype(np.float64)

    def barrier(self) -> None:
        self.sum(np.zeros(1))
