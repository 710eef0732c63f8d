"""Bounded waits for the ``barrier`` backend's ranks: each rank's task watches its own training
process and its peers' tasks, so that a rank that dies or hangs fails the whole fit within
``workerTimeout`` seconds, and no training process outlives its task.

Three watches:

- **The child's own parent** (:func:`watch_parent`, run in the training process): the kernel's
  parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on Linux) and a thread that polls
  ``getppid()``; when the Spark task's Python worker is gone (the job is cancelled, the task
  retried or killed, the executor lost) the training process exits.
- **The child's liveness** (:class:`Heartbeat`): a thread in the training process touches a file
  every second; a process that stops touching it for ``timeout`` seconds (stopped, frozen) is
  taken for hung and killed by its task.
- **The peers** (:class:`PeerWatch`): the tasks talk over TCP, in a star on rank 0's task. Every
  task sends a beat each second and says how its rank ended; rank 0's task tells every task to
  abort when a rank failed or went silent for ``timeout`` seconds, and says "end" when every rank
  is done. A task that loses rank 0's task, or hears nothing from it for ``timeout`` seconds,
  aborts too. Aborting kills the task's own training process, so a rank that waits in the
  collective's cluster formation for a dead peer stops at once.

Every wait here is bounded by silence, not by total time: a long epoch is fine while every rank
beats.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time

from deepflash.processes import pid_alive

BEAT_SECONDS = 1.0
PAYLOAD_PREFIX = "deepflash-rank-"


def watch_parent(parent_pid: int) -> None:
    """Makes this process exit when ``parent_pid`` (the task's Python worker) is gone.

    Called first thing in a training process. The signal covers the usual case at once; the poll
    covers a parent that died before the signal was armed, and platforms without ``prctl``.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:
        os._exit(70)

    def poll() -> None:
        while True:
            time.sleep(BEAT_SECONDS)
            if os.getppid() != parent_pid:
                os._exit(70)

    threading.Thread(target=poll, name="deepflash-parent-watch", daemon=True).start()


class Heartbeat:
    """The training process's sign of life: ``start()`` touches ``path`` every second from a daemon
    thread; :meth:`age` (in the task) says how long ago it last did."""

    def __init__(self, path: str):
        self.path = path

    def start(self) -> None:
        def beat() -> None:
            while True:
                try:
                    with open(self.path, "a"):
                        os.utime(self.path)
                except OSError:
                    pass
                time.sleep(BEAT_SECONDS)

        threading.Thread(target=beat, name="deepflash-heartbeat", daemon=True).start()

    def age(self, started: float) -> float:
        """Seconds since the last beat (since ``started`` when there has been none)."""
        try:
            last = os.stat(self.path).st_mtime
        except OSError:
            last = started
        return time.time() - max(last, started)


def payload_dir() -> str:
    """A new private directory for one rank's payload and result, named after this process, after
    removing the ones whose owner process is gone (left by a crash)."""
    sweep_payload_dirs()
    return tempfile.mkdtemp(prefix=f"{PAYLOAD_PREFIX}{os.getpid()}-")


def sweep_payload_dirs(root: str | None = None) -> list[str]:
    """Removes the payload directories under ``root`` (the temp dir) whose owner pid is dead;
    returns the ones removed."""
    root = root or tempfile.gettempdir()
    removed = []
    try:
        names = os.listdir(root)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(PAYLOAD_PREFIX):
            continue
        owner = name[len(PAYLOAD_PREFIX):].split("-", 1)[0]
        if owner.isdigit() and not pid_alive(int(owner)):
            path = os.path.join(root, name)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _shut(sock: socket.socket) -> None:
    """Closes ``sock`` for good: a reader blocked on it (through ``makefile``, which keeps the
    descriptor open past ``close``) sees its end at once."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class PeerWatch:
    """One task's side of the star of tasks (rank 0's task is the hub).

    Args:
        rank, size: this task's rank and the number of ranks.
        timeout: seconds of silence (or of waiting to connect) after which a peer counts as lost.
        server: rank 0 only, the listening socket made by :func:`listen` before the addresses were
            shared; other ranks pass ``hub`` (``host:port`` of rank 0's socket).
    """

    def __init__(self, rank: int, size: int, timeout: float, server: socket.socket | None = None,
                 hub: str | None = None):
        self.rank, self.size, self.timeout = rank, size, float(timeout)
        self.started = time.time()
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._ended = threading.Event()
        self._closed = False
        if rank == 0:
            assert server is not None
            self._server = server
            self._peers: dict[int, socket.socket] = {}
            self._seen: dict[int, float] = {}
            self._done: dict[int, bool] = {}
            self._own_done = False
            self._readers: list[threading.Thread] = []
            threading.Thread(target=self._accept, name="deepflash-watch-accept", daemon=True).start()
        else:
            self._hub_seen = time.time()
            self._sock = self._connect(hub)
            if self._sock is not None:
                self._send(self._sock, f"hello {rank}")
                threading.Thread(target=self._read_hub, name="deepflash-watch-hub", daemon=True).start()
        threading.Thread(target=self._beat, name="deepflash-watch-beat", daemon=True).start()

    @staticmethod
    def listen() -> socket.socket:
        """Rank 0's listening socket (bound before the addresses are shared, so its port is taken)."""
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("", 0))
        server.listen(64)
        return server

    # -- what the task asks ------------------------------------------------------------------

    def failed(self) -> str | None:
        """Why this task must stop its rank now (a peer failed, went silent or never came), or None."""
        with self._lock:
            if self._reason is not None:
                return self._reason
            now = time.time()
            if self.rank == 0:
                for r in range(1, self.size):
                    if self._done.get(r):
                        continue
                    seen = self._seen.get(r)
                    if seen is None and now - self.started > self.timeout:
                        self._abort_locked(f"rank {r}'s task did not join the watch within {self.timeout:.0f}s "
                                           "(workerTimeout)")
                    elif seen is not None and now - seen > self.timeout:
                        self._abort_locked(f"rank {r}'s task gave no sign of life for {self.timeout:.0f}s "
                                           "(workerTimeout)")
            elif self._sock is None:
                self._reason = "rank 0's task could not be reached"
            elif now - self._hub_seen > self.timeout:
                self._reason = f"rank 0's task gave no sign of life for {self.timeout:.0f}s (workerTimeout)"
            return self._reason

    def report(self, ok: bool, message: str = "") -> None:
        """Says how this task's rank ended (``message``: the first line of its error)."""
        if self.rank == 0:
            with self._lock:
                if ok:
                    self._own_done = True
                    self._maybe_end_locked()
                elif self._reason is None:
                    self._abort_locked(f"rank 0 failed: {message}")
        elif self._sock is not None:
            self._send(self._sock, "ok" if ok else f"fail {message}")

    def finish(self) -> str | None:
        """After a successful rank: waits until every rank is done (None), or until one fails or goes
        silent (the reason). Bounded by silence: see :meth:`failed`."""
        while not self._ended.wait(BEAT_SECONDS / 2):
            reason = self.failed()
            if reason is not None:
                return reason
        return self.failed()

    def close(self) -> None:
        """Closes the connections. Rank 0's task first half-closes each one and gives the peers a
        moment to read its last word (``end`` or ``abort``), so that no reset swallows it."""
        if self.rank != 0:
            self._closed = True
            if self._sock is not None:
                _shut(self._sock)
            return
        with self._lock:
            peers = list(self._peers.values())
        for s in peers:
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        deadline = time.time() + 2 * BEAT_SECONDS
        for t in list(self._readers):
            t.join(max(0.0, deadline - time.time()))
        self._closed = True
        for s in [*peers, self._server]:
            _shut(s)

    # -- internals -----------------------------------------------------------------------------

    def _connect(self, hub: str) -> socket.socket | None:
        host, port = hub.rsplit(":", 1)
        while time.time() - self.started < self.timeout:
            try:
                return socket.create_connection((host, int(port)), timeout=BEAT_SECONDS * 5)
            except OSError:
                time.sleep(BEAT_SECONDS / 2)
        return None

    @staticmethod
    def _send(sock: socket.socket, line: str) -> bool:
        try:
            sock.sendall((line.replace("\n", " ") + "\n").encode())
            return True
        except OSError:
            return False

    def _beat(self) -> None:
        while not self._closed:
            if self.rank == 0:
                with self._lock:
                    peers = list(self._peers.values())
                    line = "end" if self._ended.is_set() else f"abort {self._reason}" if self._reason else "beat"
                for s in peers:
                    self._send(s, line)
            elif self._sock is not None:
                self._send(self._sock, "beat")
            time.sleep(BEAT_SECONDS)

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            reader = threading.Thread(target=self._read_peer, args=(conn,), name="deepflash-watch-peer", daemon=True)
            reader.start()
            self._readers.append(reader)

    def _read_peer(self, conn: socket.socket) -> None:
        rank = None
        try:
            for raw in conn.makefile("r", errors="replace"):
                line = raw.strip()
                with self._lock:
                    if line.startswith("hello "):
                        rank = int(line.split()[1])
                        self._peers[rank] = conn
                        # A peer that joins after the abort or the end hears of it at once.
                        if self._reason:
                            self._send(conn, f"abort {self._reason}")
                    if rank is None:
                        continue
                    self._seen[rank] = time.time()
                    if line == "ok":
                        self._done[rank] = True
                        self._maybe_end_locked()
                    elif line.startswith("fail "):
                        self._abort_locked(f"rank {rank} failed: {line[5:]}")
        except (OSError, ValueError):
            pass
        with self._lock:
            if rank is not None and not self._done.get(rank) and not self._closed:
                self._abort_locked(f"rank {rank}'s task is gone (its connection closed)")

    def _abort_locked(self, reason: str) -> None:
        if self._reason is None and not self._ended.is_set():
            self._reason = reason
            for s in self._peers.values():
                self._send(s, f"abort {reason}")

    def _maybe_end_locked(self) -> None:
        if self._own_done and self._reason is None and all(self._done.get(r) for r in range(1, self.size)):
            self._ended.set()
            for s in self._peers.values():
                self._send(s, "end")

    def _read_hub(self) -> None:
        try:
            for raw in self._sock.makefile("r", errors="replace"):
                line = raw.strip()
                with self._lock:
                    self._hub_seen = time.time()
                    if line == "end":
                        self._ended.set()
                        return
                    if line.startswith("abort ") and self._reason is None:
                        self._reason = line[6:]
        except (OSError, ValueError):
            pass
        with self._lock:
            if not self._ended.is_set() and self._reason is None and not self._closed:
                self._reason = "rank 0's task is gone (its connection closed)"
