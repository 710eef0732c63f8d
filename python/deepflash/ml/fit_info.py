"""What one ``KerasEstimator.fit`` did: :class:`FitInfo`, with :class:`FitData` for its data.

Both are frozen dataclasses; ``model.fitInfo.data.train_url`` is the typed way in. Item access
(``model.fitInfo["run_id"]``, ``model.fitInfo["data"]["reused"]``) is kept as well, on purpose:
scripts written against the dict that ``fitInfo`` once was keep working, and a key that is not a
field raises KeyError.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from deepflash.backends.collective_stats import AllReduceStats
from deepflash.worker.devices import RankDevices


class _ItemAccess:
    """``obj[name]``: the field ``name`` (KeyError for any other key); ``as_dict()``: every field, nested."""

    def __getitem__(self, key: str) -> Any:
        if not isinstance(key, str) or key not in {f.name for f in dataclasses.fields(self)}:
            raise KeyError(key)
        return getattr(self, key)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FitData(_ItemAccess):
    """Where a fit's materialized data lives in the store, and what writing it cost (the part of
    :class:`~deepflash.data.materialize.MaterializedData` a fitted model keeps).

    Args:
        train_url, val_url: the Parquet directories (qualified URIs).
        reused: an earlier fit had materialized the same data, so nothing was written.
        seconds: time spent writing it (0 when reused).
        bytes: its size on disk (0 when reused).
    """

    train_url: str
    val_url: str
    reused: bool = False
    seconds: float = 0.0
    bytes: int = 0


@dataclass(frozen=True)
class FitInfo(_ItemAccess):
    """What one ``fit`` did: ``model.fitInfo.run_id``, ``model.fitInfo.data.reused``.

    Args:
        run_id: the run's id (the user's ``runId``, or a fresh one).
        data: the materialized data: :class:`FitData`.
        read_seconds, fit_seconds: the slowest process's reading and training time.
        initial_epoch: epochs restored from a checkpoint (0 for a fresh run).
        seconds: the whole fit, validation and materialization included.
        rows_read_per_rank: training rows each process read into memory, ordered by rank (-1:
            streamed).
        read_mode: ``memory`` or ``stream``, as chosen by the training processes.
        plan_seconds: of ``seconds``, the validation pass and the materialization (or finding it
            done): :meth:`~deepflash.KerasEstimator.plan`. 0 for ``fitPlanned`` alone.
        keras_backend: the framework Keras trained on in the training processes (tensorflow,
            torch or jax), as they reported it.
        devices_per_rank: where each process ran, ordered by rank: its host, the GPU addresses
            Spark gave its task and the ``CUDA_VISIBLE_DEVICES`` it saw
            (:class:`~deepflash.worker.devices.RankDevices`).
        epoch_seconds: rank 0's seconds for each epoch this fit trained, its training steps alone
            (the epoch-end validation and checkpoint not counted); resumed epochs are not in it.
        allreduce: rank 0's gradient all-reduces over the fit
            (:class:`~deepflash.backends.collective_stats.AllReduceStats`: steps, seconds and
            bytes per step) where the communicator times them (``kerasBackend="torch"`` on
            ``barrier``); None otherwise.
    """

    run_id: str
    data: FitData
    read_seconds: float
    fit_seconds: float
    initial_epoch: int
    seconds: float
    rows_read_per_rank: list[int] = field(default_factory=list)
    read_mode: str = "memory"
    plan_seconds: float = 0.0
    keras_backend: str = "tensorflow"
    devices_per_rank: list[RankDevices] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    allreduce: AllReduceStats | None = None

    def replace(self, **changes: Any) -> FitInfo:
        """A copy with ``changes`` (field name to value)."""
        return dataclasses.replace(self, **changes)
