"""Warm spares of the barrier backend's rank processes (deepflash/backends/rank_launch.py), without
Spark: a spare imports, waits, is claimed once, serves a rank, and never outlives its bounds."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from deepflash.backends.barrier import run_in_process
from deepflash.backends.rank_launch import RankProcess, split_env, start_key
from deepflash.processes import pid_alive
from helpers import gone_within

pytestmark = [pytest.mark.slow,
              pytest.mark.one_profile(profile="modern", reason="process handling, the same on both profiles")]


def _wait_ready(spare: RankProcess, seconds: float = 60) -> None:
    """Until the spare beats (its watches are armed)."""
    deadline = time.time() + seconds
    while time.time() < deadline and spare.heartbeat.age(0) > 1.5:
        time.sleep(0.1)


def _own_pid():
    return os.getpid(), os.environ.get("DEEPFLASH_RANK"), os.environ.get("KERAS_BACKEND")


def test_start_and_run_environments_are_told_apart():
    start, run = split_env({"KERAS_BACKEND": "torch", "CUDA_VISIBLE_DEVICES": "1", "TF_CONFIG": "{}",
                            "DEEPFLASH_RANK": "1"})
    assert start == {"KERAS_BACKEND": "torch", "CUDA_VISIBLE_DEVICES": "1"}
    assert run == {"TF_CONFIG": "{}", "DEEPFLASH_RANK": "1"}
    assert start_key(start) != start_key({**start, "CUDA_VISIBLE_DEVICES": "0"})


def test_a_warm_run_takes_the_spare_the_last_run_left_and_leaves_a_new_one(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    env = {"KERAS_BACKEND": "tensorflow", "DEEPFLASH_RANK": "0"}
    first = run_in_process(_own_pid, (), env, 0, timeout=60, warm=True)
    assert first.error is None, first.error
    spares = [json.loads(p.read_text()) for p in tmp_path.glob("deepflash-rank-*/key")]
    assert len(spares) == 1 and spares[0]["pid"] != first.value[0]
    assert not pid_alive(first.value[0]), "the first rank's process outlived its run"
    second = run_in_process(_own_pid, (), {**env, "DEEPFLASH_RANK": "1"}, 1, timeout=60, warm=True)
    assert second.error is None, second.error
    # the spare ran the rank, with the rank's run-time variables
    assert second.value == (spares[0]["pid"], "1", "tensorflow")
    assert not pid_alive(spares[0]["pid"])
    # another start environment does not take the spare the second run left
    third = run_in_process(_own_pid, (), {"KERAS_BACKEND": "tensorflow", "CUDA_VISIBLE_DEVICES": ""}, 0,
                           timeout=60, warm=False)
    left = [json.loads(p.read_text())["pid"] for p in tmp_path.glob("deepflash-rank-*/key")]
    assert third.value[0] not in left and len(left) == 1
    for pid in left:
        os.killpg(pid, 9)


def test_an_idle_spare_exits_and_removes_its_folder(monkeypatch):
    monkeypatch.setenv("DEEPFLASH_SPARE_IDLE_S", "2")
    spare = RankProcess.spawn({}, spare=True)
    try:
        assert gone_within(spare.pid, 90), "an idle spare outlived DEEPFLASH_SPARE_IDLE_S"
        deadline = time.time() + 5
        while os.path.exists(spare.folder) and time.time() < deadline:
            time.sleep(0.1)
        assert not os.path.exists(spare.folder)
    finally:
        spare.kill()
        spare.remove()


def test_only_the_python_worker_that_started_a_spare_takes_it():
    """Another process (another Python worker of the executor) finds no spare to take: a spare
    is the child of the worker that runs its rank, so it dies with that worker."""
    spare = RankProcess.spawn({"DEEPFLASH_TEST_SPARE": "x"}, spare=True)
    try:
        _wait_ready(spare)
        other = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            import sys
            sys.path[:] = {sys.path!r}  # as two Python workers of one executor
            from deepflash.backends.rank_launch import RankProcess
            print(RankProcess.claim({{"DEEPFLASH_TEST_SPARE": "x"}}))
        """)], capture_output=True, text=True, timeout=60)
        assert other.stdout.strip() == "None", other.stdout + other.stderr
        mine = RankProcess.claim({"DEEPFLASH_TEST_SPARE": "x"})
        assert mine is not None and mine.pid == spare.pid and mine.proc is spare.proc
        assert RankProcess.claim({"DEEPFLASH_TEST_SPARE": "x"}) is None  # taken once
    finally:
        spare.kill()
        spare.remove()


def test_a_spare_dies_with_the_python_worker_that_started_it():
    worker = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path[:] = {sys.path!r}
        from deepflash.backends.rank_launch import RankProcess
        print(RankProcess.spawn({{}}, spare=True).pid, flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    pid = int(worker.stdout.readline())
    time.sleep(1.0)
    worker.kill()
    worker.wait()
    assert gone_within(pid, 5), "a spare outlived the Python worker that started it"
