"""The run lock and the batch-stream record of ``runs/<runId>``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from deepflash.io import runs
from deepflash.io.runs import LOCK_FILE, RUN_FILE, RunLock, check_stream, stream_values


def test_a_second_fit_is_refused_while_the_first_holds_the_run_and_the_lock_goes_with_it(tmp_path):
    run_dir = str(tmp_path / "runs" / "r1")
    with RunLock(run_dir, "r1"):
        holder = json.loads((tmp_path / "runs" / "r1" / LOCK_FILE).read_text())
        assert holder["pid"] == os.getpid()
        with pytest.raises(RuntimeError, match=r"`runId` 'r1' is in use by another fit \(host .*pid"):
            RunLock(run_dir, "r1").__enter__()
    assert not (tmp_path / "runs" / "r1" / LOCK_FILE).exists()
    with RunLock(run_dir, "r1"):  # free again
        pass


def test_the_lock_is_released_when_the_fit_raises(tmp_path):
    run_dir = str(tmp_path / "r")
    with pytest.raises(KeyError), RunLock(run_dir, "r"):
        raise KeyError("boom")
    assert not (tmp_path / "r" / LOCK_FILE).exists()


def test_a_lock_of_a_dead_process_on_this_host_or_an_old_one_is_stale(tmp_path, caplog):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    import socket

    (run_dir / LOCK_FILE).write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout),
                                                 "time": time.time()}))
    with RunLock(str(run_dir), "r"):
        pass
    assert "stale lock of run r" in caplog.text
    (run_dir / LOCK_FILE).write_text(json.dumps({"host": "elsewhere", "pid": 1, "time": time.time()}))
    with pytest.raises(RuntimeError, match="host elsewhere"):
        RunLock(str(run_dir), "r").__enter__()
    old = time.time() - runs.STALE_SECONDS - 10
    (run_dir / LOCK_FILE).write_text(json.dumps({"host": "elsewhere", "pid": 1, "time": old}))
    with RunLock(str(run_dir), "r"):
        pass


def test_resuming_with_another_batch_stream_is_refused_naming_the_param_and_both_values(tmp_path):
    run_dir = str(tmp_path / "r")
    base = {"numProc": 2, "seed": 3, "batchSize": 64, "lrSchedule": "none", "readMode": "auto",
            "shuffleBufferRows": 4096, "reader": "arrow", "epochs": 4}
    check_stream(run_dir, "r", stream_values(base))
    assert json.loads((tmp_path / "r" / RUN_FILE).read_text())["stream"]["numProc"] == 2
    check_stream(run_dir, "r", stream_values({**base, "epochs": 8}))  # more epochs: the same stream
    for name, value in (("numProc", 1), ("seed", 4), ("lrSchedule", "time"), ("readMode", "stream"),
                        ("shuffleBufferRows", 128)):
        with pytest.raises(ValueError, match=rf"`{name}` == {value!r}, but run 'r' began with {name}="
                                             rf"{base[name]!r}"):
            check_stream(run_dir, "r", stream_values({**base, name: value}))
