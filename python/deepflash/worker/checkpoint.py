"""The checkpoint file: everything a training run continues from, written by rank 0 after every epoch.

One ``.npz`` file: the arrays (weights ``w<i>``, optimizer variables ``o<i>``, early stopping's
best weights ``b<i>``) and a JSON ``state`` (epoch, history, identity, the learning rate, the
stateful callbacks' states by name, whether early stopping ended the run). :data:`FORMAT` is the
version written; every earlier one still loads:

- 4 adds ``cascade_stage`` (the cascade stage whose network the weights are); before it, None.
- Before learning-rate schedules the plateau rule's counters were stored as ``reduce_lr``, with
  no multiplier; :meth:`Checkpoint.learning_rate_callback_state` derives the multiplier.
"""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass

import numpy as np

from deepflash.io.store import Store

FILE = "checkpoint.npz"
FORMAT = 4


@dataclass(frozen=True)
class Checkpoint:
    """One training run's state after epoch ``epoch`` (1-based count of finished epochs).

    Attributes:
        weights, optimizer: the network's weights and its optimizer's variables (iterations, slots).
        learning_rate: the optimizer's rate for the next epoch; None when unknown.
        learning_rate_state: ``ScheduledLearningRate.get_state()``; None when not recorded.
        early_stopping_state: ``RestoreBestEarlyStopping.get_state()`` (with ``best_weights``), or None.
        stopped: early stopping ended the run at this epoch.
        num_proc: the processes of the run that wrote it (None in the oldest formats).
        cascade_stage: in cascade mode, the 0-based stage whose network ``weights`` holds; else None.
        legacy_plateau_state: the ``reduce_lr`` counters of a checkpoint from before schedules.
    """

    epoch: int
    history: dict
    fingerprint: str
    run_id: str
    weights: list
    optimizer: list
    learning_rate: float | None
    learning_rate_state: dict | None
    early_stopping_state: dict | None
    stopped: bool
    num_proc: int | None
    cascade_stage: int | None
    legacy_plateau_state: dict | None = None

    def save(self, store: Store, path: str) -> None:
        """Writes the checkpoint to ``path`` in ``store``, in format :data:`FORMAT`."""
        arrays = {f"w{i}": np.asarray(w) for i, w in enumerate(self.weights)}
        arrays.update({f"o{i}": np.asarray(v) for i, v in enumerate(self.optimizer)})
        callback_json = {}
        for name, state in (("learning_rate", self.learning_rate_state),
                            ("early_stopping", self.early_stopping_state)):
            if state is None:
                continue
            state = dict(state)
            best = state.pop("best_weights", None)
            if best is not None:
                state["num_best_weights"] = len(best)
                arrays.update({f"b{i}": np.asarray(w) for i, w in enumerate(best)})
            callback_json[name] = state
        meta = {"format": FORMAT, "epoch": self.epoch, "history": self.history, "fingerprint": self.fingerprint,
                "run_id": self.run_id, "num_weights": len(self.weights), "num_optimizer": len(self.optimizer),
                "learning_rate": self.learning_rate, "callbacks": callback_json, "stopped": bool(self.stopped),
                "num_proc": self.num_proc, "cascade_stage": self.cascade_stage}
        buf = io.BytesIO()
        np.savez(buf, state=np.array(json.dumps(meta)), **arrays)
        store.write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, store: Store, path: str, fingerprint: str) -> Checkpoint | None:
        """The checkpoint at ``path``, or None when there is none.

        Raises:
            ValueError: it was written by a newer format, or for another model or dataset
                (its fingerprint is not ``fingerprint``).
        """
        if not store.exists(path):
            return None
        try:
            return cls._read(store, path, fingerprint)
        except (zipfile.BadZipFile, KeyError, EOFError, json.JSONDecodeError) as e:
            raise ValueError(f"the checkpoint {path} is damaged ({type(e).__name__}: {e}): delete it to start "
                             "that run over, or use another runId") from e

    @classmethod
    def _read(cls, store: Store, path: str, fingerprint: str) -> Checkpoint:
        with np.load(io.BytesIO(store.read_bytes(path)), allow_pickle=False) as z:
            state = json.loads(str(z["state"]))
            if int(state.get("format", 0)) > FORMAT:
                raise ValueError(f"the checkpoint of `runId` {state.get('run_id')!r} has format {state['format']}, "
                                 f"newer than this deepflash reads ({FORMAT}); resume it with that version, "
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
                if count is not None:
                    cb["best_weights"] = [z[f"b{i}"] for i in range(count)]
                elif name == "early_stopping":
                    cb["best_weights"] = None
                callbacks[name] = cb
        return cls(epoch=state["epoch"], history=state["history"], fingerprint=state["fingerprint"],
                   run_id=state["run_id"], weights=weights, optimizer=optimizer,
                   learning_rate=state.get("learning_rate"), learning_rate_state=callbacks.get("learning_rate"),
                   early_stopping_state=callbacks.get("early_stopping"), stopped=bool(state.get("stopped", False)),
                   num_proc=state.get("num_proc"), cascade_stage=state.get("cascade_stage"),
                   legacy_plateau_state=callbacks.get("reduce_lr"))

    def learning_rate_callback_state(self, learning_rate: float, scale_lr: bool, num_proc: int) -> dict | None:
        """The state the learning-rate callback continues from; None: it starts afresh (multiplier 1).

        A checkpoint from before schedules holds ReduceLROnPlateau's counters and no multiplier;
        its rate was α0 (``learning_rate``, times the processes of that run with ``scale_lr``)
        times the plateau reductions, so the multiplier is that rate over α0. ``num_proc`` stands
        in for the writing run's processes where the checkpoint does not record them.
        """
        if self.learning_rate_state is not None:
            return self.learning_rate_state
        old = self.legacy_plateau_state
        if old is None or self.learning_rate is None:
            return None  # no plateau rule ran: the multiplier is 1
        scale = (self.num_proc or num_proc) if scale_lr else 1
        return {**old, "multiplier": self.learning_rate / (learning_rate * scale)}
