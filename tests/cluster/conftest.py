"""A real multi-node Spark test cluster: a standalone master and two workers, each worker in its
own mount namespace with a private ``/tmp`` (see shared/DESIGN.md, "The multi-node test cluster").

Executors therefore cannot see the driver's temp files, as on YARN, Kubernetes or Databricks; one
directory under ``build/test-cluster/`` that every process sees stands in for shared storage.
Each scenario runs in its own ``spark-submit`` driver (one SparkContext per process).
"""
from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
CLUSTER_DIR = ROOT / "build" / "test-cluster"
START_TIMEOUT_S = 120
# readHostLocalDisk: both workers are "the same host" (127.0.0.1), but their /tmp differ, so an
# executor must not read another's shuffle files from disk. Drivers wait for both executors.
CONF = {"spark.shuffle.readHostLocalDisk": "false", "spark.scheduler.minRegisteredResourcesRatio": "1.0",
        "spark.scheduler.maxRegisteredResourcesWaitingTime": "60s",
        # Each worker offers 2 cores; a driver gets one 1-core executor on each (spreadOut), unless
        # its scenario asks for more (gpu_stage.py: one 2-core executor with both GPUs per worker).
        "spark.executor.cores": "1", "spark.cores.max": "2"}
# Every worker offers two fake GPUs (addresses 0 and 1) to the drivers that ask for them.
FAKE_GPUS = Path(__file__).resolve().parent / "fake_gpus.sh"
WORKER_CORES = 2


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: str | Path, lines: int = 40) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"<cannot read {path}: {e}>"


def _tail_text(text: str | None, lines: int = 60) -> str:
    return "\n".join((text or "").splitlines()[-lines:])


def _stop_group(proc: subprocess.Popen, grace_s: float = 15) -> None:
    """SIGTERM to the process group the fixture started (start_new_session), then SIGKILL."""
    if proc.poll() is not None:
        try:  # the leader is gone; its children may still live in the group
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


@dataclasses.dataclass
class SparkCluster:
    """A running standalone cluster. ``submit`` runs a driver script with spark-submit against it."""

    master_url: str
    shared_dir: str
    python: str
    spark_home: str
    web_url: str
    worker_dirs: list[str]
    log_dir: str
    root: str = str(ROOT)
    connect_log: str | None = None  # the log of the latest Connect server (connect_server)
    # the executor stderrs that existed before it started: its executors start with it, not with a client
    connect_before: set | None = None
    fake_gpus: str = str(FAKE_GPUS)  # the workers' GPU discovery script (addresses 0 and 1)

    def executor_stderrs(self) -> list[str]:
        """Every executor's stderr file, oldest application first."""
        files = []
        for d in self.worker_dirs:
            files += glob.glob(os.path.join(d, "app-*", "*", "stderr"))
        return sorted(files, key=os.path.getmtime)

    def submit(self, script: str | Path, *args: str, env: dict | None = None, timeout: float = 600,
               check: bool = True, conf: dict | None = None) -> subprocess.CompletedProcess:
        """``spark-submit`` of ``script`` (a path, relative to the checkout or to tests/cluster/scenarios),
        with ``conf`` added to (and overriding) the suite's settings.

        With ``check``, a non-zero exit fails the test with the tail of the driver's stderr and of
        every executor stderr the run produced.
        """
        script = Path(script)
        if not script.is_absolute():
            script = ROOT / script if (ROOT / script).exists() else SCENARIOS / script
        extra = [a for k, v in (conf or {}).items() for a in ("--conf", f"{k}={v}")]
        cmd = [*self._spark_submit(), *extra, str(script), *map(str, args)]
        full_env = {**self._env(), **(env or {})}
        before = set(self.executor_stderrs())
        started = time.time()
        try:
            proc = subprocess.run(cmd, cwd=self.root, env=full_env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            out = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
            pytest.fail(f"spark-submit {script.name} timed out after {timeout}s\n"
                        + self.failure_report(out, before), pytrace=False)
        proc.seconds = time.time() - started  # type: ignore[attr-defined]
        # the executors this driver got: none means it did not run on the cluster (e.g. it set its own master)
        proc.executor_stderrs = [f for f in self.executor_stderrs() if f not in before]  # type: ignore[attr-defined]
        with open(os.path.join(self.log_dir, f"{script.stem}-{uuid.uuid4().hex[:6]}.log"), "w") as f:
            f.write(f"$ {' '.join(cmd)}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        if check and proc.returncode != 0:
            pytest.fail(f"spark-submit {script.name} {' '.join(map(str, args))} exited {proc.returncode}\n"
                        + self.failure_report(proc.stderr, before, proc.stdout), pytrace=False)
        return proc

    def _spark_submit(self) -> list[str]:
        """spark-submit against the cluster with the suite's conf, up to the application argument."""
        return [os.path.join(self.spark_home, "bin", "spark-submit"), "--master", self.master_url,
                *[a for k, v in CONF.items() for a in ("--conf", f"{k}={v}")],
                "--conf", f"spark.pyspark.python={self.python}",
                "--conf", f"spark.pyspark.driver.python={self.python}",
                "--conf", "spark.executor.memory=1g", "--conf", "spark.ui.enabled=false",
                "--driver-memory", "1g"]

    def _env(self) -> dict:
        """The environment of a driver on the cluster (a spark-submit or the Connect server)."""
        return {**os.environ, "SPARK_HOME": self.spark_home, "SPARK_LOCAL_IP": "127.0.0.1",
                "SPARK_CONF_DIR": os.path.join(os.path.dirname(self.log_dir), "conf"),
                "PYSPARK_PYTHON": self.python, "PYSPARK_DRIVER_PYTHON": self.python,
                "TF_CPP_MIN_LOG_LEVEL": "2",
                # MLflow, where a scenario uses it, logs to the shared store, not to a driver-only /tmp
                "MLFLOW_TRACKING_URI": f"sqlite:///{self.shared_dir}/mlflow.db"}

    @contextlib.contextmanager
    def connect_server(self, timeout: float = START_TIMEOUT_S):
        """A Spark Connect server whose driver runs against the cluster; yields its ``sc://`` URL.

        The server is one more spark-submit (the Connect server class of the profile's pyspark
        jars), in its own process group, stopped on exit. Fails the test with the tail of its log
        when it exits or its port does not open within ``timeout`` seconds.
        """
        port = _free_port()
        log_path = os.path.join(self.log_dir, f"connect-server-{port}.log")
        self.connect_log, self.connect_before = log_path, set(self.executor_stderrs())
        cmd = [*self._spark_submit(), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
               "--name", "deepflash-connect-server", "--conf", f"spark.connect.grpc.binding.port={port}",
               "--conf", "spark.connect.grpc.binding.address=127.0.0.1", "spark-internal"]
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, cwd=self.root, env=self._env(), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            started = time.time()
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"the Connect server exited {proc.returncode} before its port {port} opened\n"
                                f"--- {log_path} (tail)\n{_tail(log_path, 60)}", pytrace=False)
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.settimeout(1)
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if time.time() - started > timeout:
                    pytest.fail(f"the Connect server's port {port} did not open within {timeout}s\n"
                                f"--- {log_path} (tail)\n{_tail(log_path, 60)}", pytrace=False)
                time.sleep(0.5)
            yield f"sc://127.0.0.1:{port}"
        finally:
            _stop_group(proc)

    def client(self, script: str | Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """Runs a Connect client scenario with plain ``python`` (not spark-submit: its session is remote).

        A non-zero exit fails the test with the client's output and the tails of the Connect
        server's log and of the executor stderrs the run produced.
        """
        script = Path(script)
        if not script.is_absolute():
            script = SCENARIOS / script
        cmd = [self.python, str(script), *map(str, args)]
        before = self.connect_before if self.connect_before is not None else set(self.executor_stderrs())
        started = time.time()
        try:
            proc = subprocess.run(cmd, cwd=self.root, env=self._env(), capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else e.stdout
            err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
            pytest.fail(f"{script.name} timed out after {timeout}s\n" + self.failure_report(err, before, out)
                        + self._server_tail(), pytrace=False)
        proc.seconds = time.time() - started  # type: ignore[attr-defined]
        proc.executor_stderrs = [f for f in self.executor_stderrs() if f not in before]  # type: ignore[attr-defined]
        with open(os.path.join(self.log_dir, f"{script.stem}-{uuid.uuid4().hex[:6]}.log"), "w") as f:
            f.write(f"$ {' '.join(cmd)}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        if proc.returncode != 0:
            pytest.fail(f"{script.name} {' '.join(map(str, args))} exited {proc.returncode}\n"
                        + self.failure_report(proc.stderr, before, proc.stdout) + self._server_tail(),
                        pytrace=False)
        return proc

    def _server_tail(self) -> str:
        path = self.connect_log
        return f"\n--- Connect server {path} (tail)\n{_tail(path, 40)}" if path else ""

    def failure_report(self, driver_stderr: str | None, before: set | None = None, stdout: str | None = None) -> str:
        parts = []
        if stdout:
            # a PySpark driver's Python traceback and logging go to spark-submit's stdout
            parts.append(f"--- driver stdout (tail)\n{_tail_text(stdout, 60)}")
        parts.append(f"--- driver stderr (tail)\n{_tail_text(driver_stderr, 40)}")
        files = self.executor_stderrs()
        new = [f for f in files if f not in (before or set())] or files[-2:]
        for f in new:
            parts.append(f"--- executor {os.path.relpath(f, self.root)} (tail)\n{_tail(f, 40)}")
        return "\n".join(parts)

    @staticmethod
    def result(proc: subprocess.CompletedProcess) -> dict:
        """The JSON of the script's final ``RESULT {...}`` line."""
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if not lines:
            pytest.fail(f"no RESULT line in the driver's stdout\n--- stdout (tail)\n{_tail_text(proc.stdout, 30)}"
                        f"\n--- stderr (tail)\n{_tail_text(proc.stderr)}", pytrace=False)
        return json.loads(lines[-1][len("RESULT "):])


def _worker_command(spark_home: str, master_url: str, webui_port: int, work_dir: Path) -> str:
    """A bash line that gives the worker a private /tmp (tmpfs) in its own mount namespace.

    When the checkout lives under /tmp, the tmpfs would hide it: it is bind-mounted aside first
    and bound back onto the same path inside the new /tmp.
    """
    q = lambda s: "'" + str(s).replace("'", "'\\''") + "'"  # noqa: E731
    worker = (f"exec {q(os.path.join(spark_home, 'bin', 'spark-class'))} org.apache.spark.deploy.worker.Worker "
              f"--host 127.0.0.1 --cores {WORKER_CORES} --memory 3g --webui-port {webui_port} "
              f"--work-dir {q(work_dir)} {master_url}")
    root = str(ROOT)
    if root == "/tmp" or root.startswith("/tmp/"):
        aside = f"/mnt/deepflash-checkout-{uuid.uuid4().hex[:8]}"
        return (f"set -e; mkdir -p {aside}; mount --bind {q(root)} {aside}; mount -t tmpfs tmpfs /tmp; "
                f"mkdir -p {q(root)}; mount --bind {aside} {q(root)}; umount {aside}; rmdir {aside} || true; "
                f"cd {q(root)}; {worker}")
    return f"set -e; mount -t tmpfs tmpfs /tmp; cd {q(root)}; {worker}"


def _skip_reason() -> str | None:
    if shutil.which("unshare") is None:
        return "`unshare` is not installed (util-linux); the cluster tests need it for a private /tmp per worker"
    if os.geteuid() != 0:
        return "not root: the cluster tests mount a private /tmp per worker with `unshare -m` (CI runs as root)"
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"`unshare -m` does not work here: {probe.stderr.strip()}"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java runtime for the Spark master and workers"
    return None


def _alive_workers(web_url: str) -> int:
    with urllib.request.urlopen(f"{web_url}/json/", timeout=5) as r:
        state = json.load(r)
    if "aliveworkers" in state:
        return int(state["aliveworkers"])
    return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")


class ClusterUnavailable(RuntimeError):
    """This machine cannot run the test cluster at all (no root, no ``unshare``, no Java)."""


class ClusterStartError(RuntimeError):
    """The test cluster did not start; the message carries the tails of its processes' logs."""


@contextlib.contextmanager
def start_cluster(base_dir: Path = CLUSTER_DIR) -> Iterator[SparkCluster]:
    """Starts the standalone master and its two workers and yields the running :class:`SparkCluster`;
    stops them (by process group) on exit. A plain context manager, so a script outside pytest
    (``benchmarks/scaling.py``) starts the same cluster as the ``cluster`` fixture.

    Args:
        base_dir: the logs, Spark conf, worker dirs and the shared dir go under it (the suite's
            ``build/test-cluster`` by default; another one lets a second cluster run beside it).

    Raises:
        ClusterUnavailable: this machine cannot run one (see the message).
        ClusterStartError: a process exited, or the workers did not register in time.
    """
    reason = _skip_reason()
    if reason:
        raise ClusterUnavailable(reason)
    import pyspark

    # The profile's own interpreter (.venv or .venv-modern): executors must match the driver's pyspark.
    python = sys.executable
    spark_home = os.path.dirname(os.path.abspath(pyspark.__file__))
    session = uuid.uuid4().hex[:8]
    log_dir = base_dir / "logs"
    conf_dir = base_dir / "conf"
    worker_dirs = [base_dir / f"worker-{i}" for i in (1, 2)]
    for d in (log_dir, *worker_dirs):
        shutil.rmtree(d, ignore_errors=True)  # logs of an earlier session
        d.mkdir(parents=True)
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "spark-defaults.conf").write_text("".join(f"{k} {v}\n" for k, v in CONF.items()))
    (conf_dir / "log4j2.properties").write_text(
        "rootLogger.level = warn\nrootLogger.appenderRef.stderr.ref = console\n"
        "appender.console.type = Console\nappender.console.name = console\nappender.console.target = SYSTEM_ERR\n"
        "appender.console.layout.type = PatternLayout\n"
        "appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex\n"
        # the master and workers log registrations at INFO: they show in the failure message
        "logger.deploy.name = org.apache.spark.deploy\nlogger.deploy.level = info\n")
    shared = base_dir / f"shared-{session}"
    shared.mkdir(parents=True)

    env = dict(os.environ)
    env.update({"SPARK_HOME": spark_home, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_CONF_DIR": str(conf_dir),
                "PYSPARK_PYTHON": python, "SPARK_NO_DAEMONIZE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"})
    env.pop("SPARK_WORKER_DIR", None)
    port, web_port = _free_port(), _free_port()
    master_url, web_url = f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{web_port}"
    procs: list[tuple[str, subprocess.Popen, Path]] = []
    logs = []

    def start(name: str, argv: list[str], extra_env: dict | None = None) -> None:
        log_path = log_dir / f"{name}.log"
        f = open(log_path, "w")
        logs.append(f)
        proc = subprocess.Popen(argv, cwd=str(ROOT), env={**env, **(extra_env or {})}, stdout=f,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        procs.append((name, proc, log_path))

    def log_tails() -> str:
        return "\n".join(f"--- {name} ({path}), {'running' if p.poll() is None else f'exited {p.returncode}'}\n"
                         f"{_tail(path, 25)}" for name, p, path in procs)

    started = time.time()
    try:
        start("master", [os.path.join(spark_home, "bin", "spark-class"), "org.apache.spark.deploy.master.Master",
                         "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(web_port)])
        for i, work_dir in enumerate(worker_dirs, 1):
            cmd = _worker_command(spark_home, master_url, _free_port(), work_dir)
            start(f"worker-{i}", ["unshare", "-m", "--propagation", "private", "bash", "-c", cmd],
                  {"SPARK_WORKER_DIR": str(work_dir),
                   "SPARK_WORKER_OPTS": f"-Dspark.worker.resource.gpu.amount=2 "
                                        f"-Dspark.worker.resource.gpu.discoveryScript={FAKE_GPUS}"})
        alive, last_error = 0, None
        while time.time() - started < START_TIMEOUT_S:
            dead = [name for name, p, _ in procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited while the test cluster started")
            try:
                alive = _alive_workers(web_url)
                last_error = None
            except OSError as e:
                last_error = e
            if alive >= 2:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"{alive} of 2 workers registered with {master_url} after {START_TIMEOUT_S}s"
                               + (f" (master UI: {last_error})" if last_error else ""))
    except Exception as e:
        for _, p, _ in reversed(procs):
            _stop_group(p)
        for f in logs:
            f.close()
        shutil.rmtree(shared, ignore_errors=True)
        raise ClusterStartError(f"the test cluster did not start: {e}\n{log_tails()}") from e

    cluster = SparkCluster(master_url=master_url, shared_dir=str(shared), python=python, spark_home=spark_home,
                           web_url=web_url, worker_dirs=[str(d) for d in worker_dirs], log_dir=str(log_dir))
    cluster.start_seconds = time.time() - started  # type: ignore[attr-defined]
    sys.stderr.write(f"\ntest cluster {master_url} up in {cluster.start_seconds:.1f}s; shared dir {shared}\n")
    try:
        yield cluster
    finally:
        for _, p, _ in reversed(procs):  # workers first (they stop their executors), then the master
            _stop_group(p)
        for f in logs:
            f.close()
        shutil.rmtree(shared, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster():
    """The session's test cluster (:func:`start_cluster`); skipped where this machine cannot run one."""
    with contextlib.ExitStack() as stack:
        try:
            running = stack.enter_context(start_cluster())
        except ClusterUnavailable as e:
            pytest.skip(str(e))
        except ClusterStartError as e:
            pytest.fail(str(e), pytrace=False)
        yield running
