"""The barrier backend's bounded waits, without Spark: the peer watch's star of tasks, and the sweep
of payload directories left by a crash."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from deepflash.backends.watch import PeerWatch, pid_alive, sweep_payload_dirs


def _star(size: int, timeout: float = 5.0, join: int | None = None):
    server = PeerWatch.listen()
    hub_address = f"127.0.0.1:{server.getsockname()[1]}"
    hub = PeerWatch(0, size, timeout, server=server)
    spokes = [PeerWatch(r, size, timeout, hub=hub_address) for r in range(1, join if join is not None else size)]
    return hub, spokes


def _until(predicate, seconds: float = 5.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


def test_every_rank_done_ends_every_wait():
    hub, spokes = _star(3)
    results = {}

    def finish(watch):
        watch.report(True)
        results[watch.rank] = watch.finish()

    threads = [threading.Thread(target=finish, args=(w,)) for w in [hub, *spokes]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == {0: None, 1: None, 2: None}
    for w in [*spokes, hub]:
        w.close()


def test_a_failed_rank_stops_every_other_rank_at_once():
    hub, (one, two) = _star(3)
    started = time.time()
    one.report(False, "RuntimeError: boom")
    assert "rank 1 failed: RuntimeError: boom" in _until(hub.failed)
    assert "rank 1 failed: RuntimeError: boom" in _until(two.failed)
    assert time.time() - started < 3
    for w in (one, two, hub):
        w.close()


def test_a_rank_whose_task_vanishes_is_named():
    hub, (one, two) = _star(3)
    one.close()  # its task is gone without a word
    assert "rank 1's task is gone" in _until(hub.failed)
    assert "rank 1's task is gone" in _until(two.failed)
    two.close()
    hub.close()


def test_rank_zero_gone_stops_the_others():
    hub, (one,) = _star(2)
    hub.close()
    assert "rank 0's task is gone" in _until(one.failed)
    one.close()


def test_a_rank_that_never_joins_fails_the_wait_after_the_timeout():
    hub, _ = _star(2, timeout=1.0, join=1)
    assert hub.failed() is None
    assert "rank 1's task did not join the watch within 1s (workerTimeout)" in _until(hub.failed, 4)
    hub.close()


def test_payload_directories_of_dead_owners_are_swept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert not pid_alive(dead.pid)
    stale = tmp_path / f"deepflash-rank-{dead.pid}-abc"
    live = tmp_path / f"deepflash-rank-{os.getpid()}-def"
    other = tmp_path / "unrelated"
    for d in (stale, live, other):
        d.mkdir()
        (d / "payload.pkl").write_bytes(b"x")
    assert sweep_payload_dirs(str(tmp_path)) == [str(stale)]
    assert not stale.exists() and live.exists() and other.exists()
