"""The checkpoint file (deepflash.worker.checkpoint) and what the driver hands a training process
(deepflash.worker.settings): a checkpoint comes back as it was written, and every setting that an
estimator Param gives is filled from the Params, with no default of its own."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from deepflash.io.store import Store
from deepflash.worker.checkpoint import FORMAT, Checkpoint
from deepflash.worker.settings import TrainSettings


def written(tmp_path, **fields) -> Checkpoint:
    base = dict(epoch=3, history={"loss": [1.0, 0.5, 0.25]}, fingerprint="fp", run_id="r",
                weights=[np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(3, np.float32)],
                optimizer=[np.array(7, np.int64), np.zeros((2, 3), np.float32)], learning_rate=0.005,
                learning_rate_state={"multiplier": 0.5, "wait": 1, "cooldown_counter": 0,
                                     "best": {"value": 0.25, "dtype": "float32"}},
                early_stopping_state=None, stopped=False, num_proc=2, cascade_stage=None)
    return Checkpoint(**{**base, **fields})


def test_a_checkpoint_loads_as_it_was_saved(tmp_path):
    store, path = Store(str(tmp_path)), str(tmp_path / "checkpoint.npz")
    best = [np.full((2, 3), 2.0, np.float32), np.zeros(3, np.float32)]
    early = {"wait": 2, "stopped_epoch": 3, "best_epoch": 1, "best": {"value": 0.25, "dtype": "float64"},
             "best_weights": best}
    saved = written(tmp_path, early_stopping_state=early, stopped=True, cascade_stage=1)
    saved.save(store, path)
    loaded = Checkpoint.load(store, path, "fp")
    for name in ("epoch", "history", "run_id", "learning_rate", "learning_rate_state", "stopped", "num_proc",
                 "cascade_stage", "legacy_plateau_state"):
        assert getattr(loaded, name) == getattr(saved, name), name
    for a, b in zip(loaded.weights + loaded.optimizer, saved.weights + saved.optimizer, strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    assert {k: v for k, v in loaded.early_stopping_state.items() if k != "best_weights"} == \
           {k: v for k, v in early.items() if k != "best_weights"}
    for a, b in zip(loaded.early_stopping_state["best_weights"], best, strict=True):
        np.testing.assert_array_equal(a, b)
    # A saved learning-rate state is what the callback continues from, whatever the rates.
    assert loaded.learning_rate_callback_state(1.0, True, 8) == saved.learning_rate_state


def test_a_checkpoint_of_another_run_or_none_at_all(tmp_path):
    store, path = Store(str(tmp_path)), str(tmp_path / "checkpoint.npz")
    assert Checkpoint.load(store, path, "fp") is None
    written(tmp_path).save(store, path)
    with pytest.raises(ValueError, match="holds a checkpoint of a different model or dataset"):
        Checkpoint.load(store, path, "other")
    assert FORMAT == 4


def test_train_settings_default_nothing():
    missing = [f.name for f in dataclasses.fields(TrainSettings)
               if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING]
    assert missing == []


def test_a_damaged_checkpoint_is_refused_naming_its_file(tmp_path):
    store, path = Store(str(tmp_path)), str(tmp_path / "runs" / "r" / "checkpoint.npz")
    written(tmp_path).save(store, path)
    data = (tmp_path / "runs" / "r" / "checkpoint.npz").read_bytes()
    (tmp_path / "runs" / "r" / "checkpoint.npz").write_bytes(data[: len(data) // 2])  # torn by a full disk
    with pytest.raises(ValueError, match=r"the checkpoint .*runs/r/checkpoint.npz is damaged \(BadZipFile"):
        Checkpoint.load(store, path, "fp")
