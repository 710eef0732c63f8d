"""kerasBackend: what is refused before any job, which communicator each framework gets, the
gradient average, and how a scoring worker picks its framework."""
from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from deepflash import KerasEstimator
from deepflash.backends import get_backend
from deepflash.backends.barrier import MultiWorkerMirroredCommunicator
from deepflash.networks.keras_backends import check, loaded_backend, prefer_backend, running_backend
from deepflash.networks.keras_compat import keras_major
from deepflash.requirements import MissingDependencyError

KERAS3 = pytest.mark.skipif(keras_major() == 2, reason="Keras 3 only")
HAS_TORCH = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")


def test_unset_is_the_drivers_backend():
    assert check(None, "barrier") == running_backend() == "tensorflow"


def test_an_unknown_backend_is_refused_by_the_param():
    with pytest.raises(ValueError, match=r"`kerasBackend` == 'mxnet', must be one of: tensorflow, torch, jax"):
        KerasEstimator(kerasBackend="mxnet")


@pytest.mark.skipif(keras_major() != 2, reason="the classic profile's Keras 2")
def test_keras_2_refuses_every_backend_but_tensorflow():
    for name in ("torch", "jax"):
        message = rf"`kerasBackend` == '{name}' needs Keras 3.*Keras 2\.\d+.*TensorFlow only"
        with pytest.raises(ValueError, match=message):
            check(name, "barrier")
    assert check("tensorflow", "horovod") == "tensorflow"
    with pytest.raises(ValueError, match=r"`kerasBackend` == 'torch' needs Keras 3"):
        KerasEstimator(kerasBackend="torch", backend="local").validateParams()   # before any Spark job


@KERAS3
@HAS_TORCH
def test_torch_trains_on_barrier_and_local_not_on_horovod():
    assert check("torch", "barrier") == check("torch", "local") == "torch"
    with pytest.raises(ValueError, match=r"`kerasBackend` == 'torch' cannot train with backend='horovod'"):
        check("torch", "horovod")


@KERAS3
@HAS_TORCH
def test_augmentation_is_refused_on_another_framework():
    est = KerasEstimator(kerasBackend="torch", backend="local", inputShape=[8, 8, 1],
                         augmentation=[{"type": "flip"}])
    with pytest.raises(ValueError, match=r"`augmentation` == .* trains on TensorFlow only.*`kerasBackend` == 'torch'"):
        est.validateParams()


@KERAS3
@pytest.mark.skipif(importlib.util.find_spec("jax") is not None, reason="JAX is installed")
def test_a_missing_framework_names_the_extra_that_installs_it():
    with pytest.raises(MissingDependencyError, match=r"kerasBackend='jax' needs jax.*deepflash\[jax\]"):
        check("jax", "barrier")


def test_the_barrier_backend_connects_each_framework_with_its_own_collectives():
    from deepflash.backends.jax_collectives import JaxCommunicator
    from deepflash.backends.torch_collectives import TorchCommunicator

    assert get_backend("barrier", 2, 10.0).communicator() is MultiWorkerMirroredCommunicator
    assert get_backend("barrier", 2, 10.0, "tensorflow").communicator() is MultiWorkerMirroredCommunicator
    assert get_backend("barrier", 2, 10.0, "torch").communicator() is TorchCommunicator
    assert get_backend("barrier", 1, 10.0, "jax").communicator() is JaxCommunicator


def test_a_local_fit_on_another_framework_trains_in_a_child():
    assert not get_backend("local", 1, 10.0).in_child()
    assert get_backend("local", 1, 10.0, "torch").in_child()


@HAS_TORCH
def test_the_gradient_average_keeps_shapes_order_and_missing_gradients(monkeypatch):
    """One rank alone (world size 1, Gloo): the flat all-reduce gives every gradient back, in its
    shape and place, with None where a variable has none."""
    import socket

    import torch
    import torch.distributed as dist

    from deepflash.backends.torch_collectives import TorchCommunicator

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("DEEPFLASH_MASTER", f"127.0.0.1:{port}")
    monkeypatch.setenv("DEEPFLASH_RANK", "0")
    monkeypatch.setenv("DEEPFLASH_SIZE", "1")
    monkeypatch.setenv("DEEPFLASH_WORKER_TIMEOUT", "20")
    comm = TorchCommunicator()
    try:
        grads = [torch.arange(6, dtype=torch.float32).reshape(2, 3), None, torch.tensor([7.0])]
        out = comm.average(grads)
        assert out[1] is None
        assert out[0].shape == (2, 3) and torch.equal(out[0], grads[0]) and torch.equal(out[2], grads[2])
        np.testing.assert_array_equal(comm.sum(np.array([1.5, 2.0])), [1.5, 2.0])
    finally:
        dist.destroy_process_group()


def test_a_scoring_worker_that_already_runs_keras_keeps_its_backend(caplog):
    import keras  # noqa: F401  (this test process has imported Keras, on TensorFlow)

    before = os.environ.get("KERAS_BACKEND")
    with caplog.at_level(logging.WARNING, logger="deepflash"):
        assert prefer_backend("torch") == "tensorflow"
    assert loaded_backend() == "tensorflow"
    assert os.environ.get("KERAS_BACKEND") == before
    assert "already runs Keras on 'tensorflow'" in caplog.text


@KERAS3
@HAS_TORCH
def test_a_fresh_scoring_worker_takes_the_preferred_backend():
    code = ("from deepflash.networks.keras_backends import prefer_backend, running_backend;"
            "prefer_backend('torch'); print(running_backend())")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "torch"


def test_a_pruned_search_over_the_framework_is_refused_before_any_job():
    from deepflash import OptunaSearch

    space = {"learningRate": {"loguniform": [1e-4, 1e-2]}}
    OptunaSearch(estimator=KerasEstimator(), space=space, pruner="median").validateParams()
    searched = OptunaSearch(estimator=KerasEstimator(), pruner="median",
                            space={**space, "kerasBackend": {"choice": ["tensorflow", "torch"]}})
    with pytest.raises(ValueError, match=r"`pruner` == 'median', but `kerasBackend` is searched over: a trial on "
                                         r"another framework than the executors' \('tensorflow'\)"):
        searched.validateParams()
    OptunaSearch(estimator=KerasEstimator(), space=searched.getOrDefault("space")).validateParams()   # unpruned
