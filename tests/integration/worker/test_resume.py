"""Exact resume: a run continued from its checkpoint ends as the run that was never interrupted.

"Exact" means bitwise: the same weights (``assert_array_equal``) and the same history, ``lr``
included, on both backends. The networks have no dropout and ReduceLROnPlateau is active and
really lowers the rate within the 4 epochs.
"""
from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest

from deepflash import KerasEstimator
from deepflash.data.pipeline import to_dataset
from deepflash.data.readers import Shard
from deepflash.worker.loop import CHECKPOINT_FILE, CRASH_ENV

pytestmark = pytest.mark.slow

LAYERS = [{"type": "dense", "units": 32, "activation": "relu"}]
# Chosen so that ReduceLROnPlateau lowers the rate within 4 epochs on each backend (asserted below):
# at this rate val_loss improves by less than the plateau's min_delta (1e-4) per epoch, while early
# stopping (min_delta 0) still sees each epoch improve and lets the run go on.
LOCAL = dict(backend="local", learningRate=1e-7, earlyStoppingMonitor="val_loss")
HOROVOD = dict(backend="horovod", numProc=2, learningRate=1e-7, batchSize=128, earlyStoppingMonitor="val_loss")
BARRIER = {**HOROVOD, "backend": "barrier"}


def estimator(store: str, **params) -> KerasEstimator:
    base = dict(layers=LAYERS, optimizer="adam", batchSize=64, seed=3, storePath=store, reduceLrPatience=1,
                reduceLrFactor=0.5, earlyStoppingPatience=3)
    return KerasEstimator(**{**base, **params})


def weights(model) -> list[np.ndarray]:
    return model.getKerasModel().get_weights()


def assert_same_weights(a, b) -> None:
    wa, wb = weights(a), weights(b)
    assert len(wa) == len(wb)
    for x, y in zip(wa, wb, strict=True):
        np.testing.assert_array_equal(x, y)


def assert_same_history(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(np.array(a[key]), np.array(b[key]), err_msg=key)  # NaN-aware, exact


def checkpoint_state(store: str, run_id: str) -> dict:
    path = os.path.join(store, "runs", run_id, CHECKPOINT_FILE)
    with open(path, "rb") as f, np.load(io.BytesIO(f.read()), allow_pickle=False) as z:
        return json.loads(str(z["state"]))


def assert_lr_lowered(history: dict) -> None:
    lrs = history["lr"]
    assert len(lrs) == 4 and min(lrs) < lrs[0], lrs


def check_resume_is_exact(train, store: str, reference, run_id: str, params: dict) -> None:
    """2 epochs, then the same runId for 4: the same history and weights as ``reference`` (4 in one go)."""
    assert_lr_lowered(reference.getHistory())
    first = estimator(store, epochs=2, runId=run_id, **params).fit(train)
    assert checkpoint_state(store, run_id)["epoch"] == 2
    resumed = estimator(store, epochs=4, runId=run_id, **params).fit(train)
    assert resumed.fitInfo["initial_epoch"] == 2
    assert_same_history(resumed.getHistory(), reference.getHistory())
    assert_same_weights(resumed, reference)
    assert resumed.getHistory()["loss"][:2] == first.getHistory()["loss"]


def check_crash_resumes(train, store: str, reference, run_id: str, params: dict, marker, monkeypatch,
                        error: str = "") -> None:
    """Rank 1 dies at the start of epoch 3; the fit raises (matching ``error``), the checkpoint of
    epoch 2 is there, and fitting again resumes from it to ``reference``'s history and weights."""
    monkeypatch.setenv(CRASH_ENV, f"rank=1,epoch=3,marker={marker}")
    with pytest.raises(RuntimeError, match=error):
        estimator(store, epochs=4, runId=run_id, **params).fit(train)
    assert marker.exists()
    assert checkpoint_state(store, run_id)["epoch"] == 2   # written before any rank started epoch 3

    resumed = estimator(store, epochs=4, runId=run_id, **params).fit(train)   # the marker disarms the hook
    assert resumed.fitInfo["initial_epoch"] == 2
    assert_same_history(resumed.getHistory(), reference.getHistory())
    assert_same_weights(resumed, reference)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("resume-store"))


@pytest.fixture(scope="module")
def horovod_reference(digits, store):
    """The uninterrupted 4-epoch Horovod run both Horovod tests compare with."""
    train, _ = digits
    return estimator(store, epochs=4, runId="hvd-reference", **HOROVOD).fit(train)


@pytest.fixture(scope="module")
def barrier_reference(digits, store):
    """The uninterrupted 4-epoch run of the barrier backend (TensorFlow's collectives)."""
    train, _ = digits
    return estimator(store, epochs=4, runId="barrier-reference", **BARRIER).fit(train)


# --- the batch stream -------------------------------------------------------------------------

def test_batch_stream_is_a_function_of_seed_rows_and_position():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((103, 5)).astype(np.float32)
    y = (np.arange(103) % 3).astype(np.float32)

    def batches(shard, start, count, seed=(5, 0)):
        ds = to_dataset(shard, batch_size=10, target_encoding="sparse", num_classes=3, shuffle=True, seed=seed,
                        repeat=True, start_batch=start)
        return [(a.numpy(), b.numpy()) for a, b in ds.take(count)]

    def same(xs, ys):
        return len(xs) == len(ys) and all(np.array_equal(a, c) and np.array_equal(b, d)
                                          for (a, b), (c, d) in zip(xs, ys, strict=True))

    full = batches(Shard(x, y), 0, 40)
    assert same(batches(Shard(x, y), 17, 23), full[17:])        # a resumed stream skips to its position
    order = rng.permutation(103)
    assert same(batches(Shard(x[order], y[order]), 0, 40), full)  # the order rows were read in does not matter
    assert not same(batches(Shard(x, y), 0, 40, seed=(5, 1)), full)  # each rank has its own stream
    rows = np.concatenate([a for a, _ in full])
    first, second = rows[:103], rows[103:206]
    assert sorted(map(tuple, first.tolist())) == sorted(map(tuple, x.tolist()))  # a pass visits every row once
    assert not np.array_equal(first, second)                     # and each pass has its own order


# --- local backend ----------------------------------------------------------------------------

@pytest.mark.both_profiles(reason="checkpoints hold Keras 2 or Keras 3 optimizer state")
def test_local_resume_is_exact(digits, store):
    train, _ = digits
    full = estimator(store, epochs=4, **LOCAL).fit(train)   # no runId: no checkpoint
    assert_lr_lowered(full.getHistory())

    first = estimator(store, epochs=2, runId="local-resumed", **LOCAL).fit(train)
    state = checkpoint_state(store, "local-resumed")
    assert state["epoch"] == 2
    # captured after ReduceLROnPlateau ran for epoch 2: the rate the next epoch trains with
    assert state["learning_rate"] == full.getHistory()["lr"][2]

    # nothing left to train: the checkpoint comes back as it is
    again = estimator(store, epochs=2, runId="local-resumed", **LOCAL).fit(train)
    assert again.fitInfo["initial_epoch"] == 2
    assert_same_weights(again, first)
    assert_same_history(again.getHistory(), first.getHistory())

    resumed = estimator(store, epochs=4, runId="local-resumed", **LOCAL).fit(train)
    assert resumed.fitInfo["initial_epoch"] == 2
    assert_same_history(resumed.getHistory(), full.getHistory())
    assert_same_weights(resumed, full)
    assert sorted(os.listdir(os.path.join(store, "runs"))) == ["local-resumed"]


def test_early_stopped_run_is_not_trained_again(digits, store):
    train, _ = digits
    # sgd at a huge rate diverges at once, so val_loss never improves after the first epoch.
    params = dict(backend="local", epochs=20, optimizer="sgd", learningRate=50.0, earlyStoppingPatience=2,
                  earlyStoppingMonitor="val_loss", reduceLrPatience=0, runId="stopped")
    stopped = estimator(store, **params).fit(train)
    epochs_run = len(stopped.getHistory()["loss"])
    assert epochs_run < 20
    assert checkpoint_state(store, "stopped")["stopped"] is True
    assert all(np.isfinite(w).all() for w in weights(stopped))  # the best (first) epoch's weights

    again = estimator(store, **{**params, "epochs": 30}).fit(train)
    assert again.fitInfo["initial_epoch"] == epochs_run
    assert_same_history(again.getHistory(), stopped.getHistory())
    assert_same_weights(again, stopped)


def test_resume_refuses_another_network_under_the_same_run_id(digits, store):
    train, _ = digits
    estimator(store, epochs=1, runId="taken", **LOCAL).fit(train)
    # a different network under the same runId is refused instead of resumed onto wrong weights
    with pytest.raises(ValueError, match=r"`runId` 'taken'"):
        estimator(store, epochs=2, runId="taken", **{**LOCAL, "layers": "simple"}).fit(train)


# --- horovod backend --------------------------------------------------------------------------

@pytest.mark.horovod
def test_horovod_resume_is_exact(digits, store, horovod_reference):
    check_resume_is_exact(digits[0], store, horovod_reference, "hvd-resumed", HOROVOD)


# Horovod's Spark thread raises too when the attempt of a crashed rank is killed: expected here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.horovod
def test_horovod_rank_crash_is_retried_by_spark_and_resumes_from_last_checkpoint(digits, store, horovod_reference,
                                                                               tmp_path, monkeypatch):
    """A Horovod rank is its task's Python worker: its death is a lost task, so Spark runs the
    training stage again, and the new attempt resumes from the checkpoint of epoch 2."""
    marker = tmp_path / "crashed"
    monkeypatch.setenv(CRASH_ENV, f"rank=1,epoch=3,marker={marker}")
    resumed = estimator(store, epochs=4, runId="hvd-crash", **HOROVOD).fit(digits[0])
    assert marker.exists()
    assert resumed.fitInfo["initial_epoch"] == 2
    assert_same_history(resumed.getHistory(), horovod_reference.getHistory())
    assert_same_weights(resumed, horovod_reference)


# --- barrier backend (MultiWorkerMirroredStrategy) ---------------------------------------------

@pytest.mark.both_profiles(reason="checkpoints hold Keras 2 or Keras 3 optimizer state")
def test_barrier_resume_is_exact(digits, store, barrier_reference):
    check_resume_is_exact(digits[0], store, barrier_reference, "barrier-resumed", BARRIER)


def test_barrier_rank_crash_resumes_from_last_checkpoint(digits, store, barrier_reference, tmp_path, monkeypatch):
    check_crash_resumes(digits[0], store, barrier_reference, "barrier-crash", BARRIER, tmp_path / "crashed",
                        monkeypatch, error="rank 1 .*ended without a result")


def test_a_lost_barrier_task_is_retried_by_spark_and_resumes_from_the_last_epoch(digits, store, barrier_reference,
                                                                                  tmp_path, monkeypatch):
    """Rank 1's task loses its Python worker at the start of epoch 3 (as when Spark loses a task or
    an executor): Spark runs the training stage again, which resumes from the checkpoint of epoch 2
    of the fit's internal run (no runId given) and ends as the uninterrupted run; the internal run
    is gone afterwards."""
    marker = tmp_path / "lost"
    monkeypatch.setenv(CRASH_ENV, f"rank=1,epoch=3,marker={marker},kill=parent")
    fitted = estimator(store, epochs=4, **BARRIER).fit(digits[0])
    assert marker.exists()
    assert fitted.fitInfo["initial_epoch"] == 2
    assert_same_history(fitted.getHistory(), barrier_reference.getHistory())
    assert_same_weights(fitted, barrier_reference)
    assert not os.path.exists(os.path.join(store, "runs", fitted.fitInfo["run_id"]))


@pytest.mark.horovod
def test_barrier_and_horovod_train_the_same_network(barrier_reference, horovod_reference):
    """Same shards, same batches, averaged gradients: the two backends differ only in how they
    sum (ring all-reduce orders), so the runs agree to float32 rounding."""
    a, b = barrier_reference.getHistory(), horovod_reference.getHistory()
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-4, err_msg=key)
    for x, y in zip(weights(barrier_reference), weights(horovod_reference), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-5)
