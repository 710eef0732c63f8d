"""``kerasBackend="jax"`` on the ``barrier`` backend: Keras 3's own ``model.fit`` under its
``DataParallel`` distribution, across the ranks' processes with ``jax.distributed`` (Gloo
collectives on CPU, NCCL on GPU).

Each rank feeds its own shard: the distribution is made with ``auto_shard_dataset=False``, so a
rank's ``batchSize`` rows are its part of a global batch of ``batchSize * numProc`` rows; the loss
is the mean over that global batch, so the gradient is the average over every rank's batch, as
under TensorFlow's strategy. The variables are replicated and every rank steps in lockstep; the
training metrics are computed over the global batch, the same on every rank.

Validation stays sharded and exact (:class:`~deepflash.worker.sync.ShardedValidation`): a global
batch needs the same batch shape on every rank, and the ranks' validation shards differ in size,
so each rank evaluates its own rows on a local copy of the network (outside the distribution,
weights copied from the replicated ones) and the per-shard sums are combined. Every collective and
the cluster's formation are bounded by ``workerTimeout``. Worker-safe.
"""
from __future__ import annotations

import contextlib

import numpy as np

from deepflash.backends.base import Communicator


class JaxCommunicator(Communicator):
    """One rank of a multi-process JAX job; created once per rank process, before any model (it
    joins the job before JAX lists its devices, then pins the rank's devices)."""

    def __init__(self, threads: int = 0) -> None:
        import jax

        self.read_rank_env()
        self.distribution = None
        self._local_model = None
        if self.size > 1:
            master, timeout = self.rendezvous("jax")
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
            jax.distributed.initialize(coordinator_address=master, num_processes=self.size, process_id=self.rank,
                                       initialization_timeout=max(1, int(timeout)))
        super().__init__(threads)
        if self.size > 1:
            import keras

            self.distribution = keras.distribution.DataParallel(devices=jax.devices(), auto_shard_dataset=False)

    def scope(self):
        return self.distribution.scope() if self.distribution is not None else contextlib.nullcontext()

    def evaluate(self, model, dataset, steps: int | None) -> dict:
        """``model`` evaluated on this rank's ``dataset`` alone, on a local copy of the network."""
        if self.distribution is None:
            return super().evaluate(model, dataset, steps)
        import keras

        with _no_distribution():
            if self._local_model is None or self._local_model[0] is not model:
                local = keras.models.clone_model(model)
                local.compile_from_config(model.get_compile_config())
                self._local_model = (model, local)
            local = self._local_model[1]
            local.set_weights(model.get_weights())
            return local.evaluate(dataset, steps=steps, verbose=0, return_dict=True)

    def sum(self, values):
        if self.size == 1:
            return values
        from jax.experimental import multihost_utils

        # Each rank's values, gathered on every rank; summed here in float64.
        gathered = multihost_utils.process_allgather(np.asarray(values, np.float32))
        return np.asarray(gathered, np.float64).reshape(self.size, -1).sum(axis=0)

    def barrier(self) -> None:
        if self.size > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("deepflash")


@contextlib.contextmanager
def _no_distribution():
    """No Keras distribution inside (a local network, on this process's devices alone)."""
    import keras

    before = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(before)
