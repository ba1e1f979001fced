"""``serve --workers N``: one node served by N processes sharing one socket and one store.

One Python process answers about 2,500 single-mutation pushes a second here before its event loop
is saturated (see docs/benchmarks.md); the store's writer and the kernel's fsync are not the
limit. So the node runs N worker processes, each a complete node process (its own event loop,
store connections and writer thread), each on its own listening socket of the node's port, bound
by this supervisor (``SO_REUSEPORT``: the kernel spreads connections evenly). What makes them one
node:

- Writes: each worker's writer takes the store's writer lock for its group commit (the SQLite
  file's ``flock``, storage/_sqlite_lock.py; PostgreSQL's ``feed_head`` row, ADR 0005), and seqs
  are allocated inside the transaction, so the feed stays gap-free (I3) across workers; HLC
  stamps carry per-worker node ids (``<node>.w<i>``).
- Notices: the workers share an ``ipc://`` bus (unless another bus is configured), so a commit in
  one wakes the realtime subscribers and long-polls of all of them at once.
- Limits: the realtime connection limit and admission rate, and the per-address connection
  cap, are divided between the workers (the kernel spreads an address's connections over
  them by a hash of each connection's ports, so about evenly).
- Metrics: ``/metrics`` on any worker answers for all of them, labelled by ``worker``.

The supervisor forwards SIGTERM/SIGINT to every worker (each drains as a single node does, and a
second signal stops at once), restarts a worker that dies (at most :data:`MAX_RESTARTS` within
:data:`RESTART_WINDOW_SECONDS`, then it stops the node and fails), and exits 0 once every worker
has exited cleanly.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import math
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

from breakwater.config import Config, ConfigError, load_config
from breakwater.obs.logging import get_logger

_log = get_logger("breakwater.server")
MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 60.0
RESTART_DELAY_SECONDS = 0.5
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class WorkerRole:
    """Which worker of how many a process is, and the node's shared run directory."""

    index: int
    count: int
    run_dir: Path
    supervisor: int
    """The supervisor's PID: a worker whose parent is no longer this one stops at once."""


def run_dir_for(config: Config) -> Path:
    """A short per-node directory for the workers' sockets and metrics (Unix paths are short)."""
    data = str(config.data.resolve()).encode()
    digest = hashlib.blake2b(data, digest_size=6).hexdigest()
    return Path(tempfile.gettempdir()) / f"breakwater-{os.getuid()}-{digest}"


def worker_config(config: Config, role: WorkerRole) -> Config:
    """``config`` as worker ``role.index`` runs it: its own node id, a share of the limits."""
    node = f"{config.node_id}.w{role.index}"
    bus = config.bus
    if bus == "memory://":
        bus = f"ipc://{role.run_dir / 'bus'}"
    # An in-process cache per worker would let a client's next connection, landing on another
    # worker, read a copy older than the write this node just acknowledged (ADR 0006): off.
    cache = "none://" if config.cache.startswith("memory:") else config.cache
    return replace(
        config,
        node=node,
        bus=bus,
        cache=cache,
        max_realtime_connections=math.ceil(config.max_realtime_connections / role.count),
        realtime_admission_rate=config.realtime_admission_rate / role.count,
        realtime_admission_burst=math.ceil(config.realtime_admission_burst / role.count),
        max_connections_per_address=math.ceil(config.max_connections_per_address / role.count),
    )


def _bind(config: Config, count: int) -> list[socket.socket]:
    """One listening socket per worker on the same port (``SO_REUSEPORT``).

    The kernel spreads new connections evenly over the sockets; with one shared socket, the
    worker that wakes first takes nearly every connection and the other idles. The supervisor
    keeps them all open, so a replaced worker takes over its predecessor's socket and backlog.
    """
    sockets: list[socket.socket] = []
    try:
        info = socket.getaddrinfo(config.host, config.port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = info[0]
        for _ in range(count):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            address = sock.getsockname()  # port 0: every worker on the port the first got
            sock.listen(2048)
            sock.set_inheritable(True)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ConfigError(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}"
        ) from exc
    return sockets


def _worker_main(
    config_file: Path | None, overrides: dict[str, Any], role: WorkerRole, sock: socket.socket
) -> None:
    """The entry point of a worker process (spawned: a fresh interpreter)."""
    from breakwater.obs import logging as bw_logging
    from breakwater.server.runner import serve

    die_with_parent(role.supervisor)
    settings = load_config(config_file, overrides=overrides)
    bw_logging.configure(settings.log_level, trace_ids=settings.tracing.enabled)
    serve(worker_config(settings, role), sockets=[sock], role=role)


class Supervisor:
    """Starts, watches, restarts and stops the worker processes of one node."""

    def __init__(self, config: Config, config_file: Path | None, overrides: dict[str, Any]):
        self.config = config
        self.config_file = config_file
        # Every worker must use the node id chosen here, not draw its own random one.
        self.overrides = {**overrides, "node": config.node_id}
        self.count = config.workers
        self.run_dir = run_dir_for(config)
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, BaseProcess] = {}
        self._restarts: list[float] = []
        self._stopping = False

    def run(self) -> int:
        """Serve until signalled; the exit status of the node."""
        self._prepare_run_dir()
        sockets = _bind(self.config, self.count)
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            for index, sock in enumerate(sockets):
                self._start(index, sock)
            _log.info("workers_started", workers=self.count, node=self.overrides["node"])
            return self._watch(sockets)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for sock in sockets:
                sock.close()

    def _prepare_run_dir(self) -> None:
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in self.run_dir.glob("worker-*.prom"):
            stale.unlink(missing_ok=True)

    def _start(self, index: int, sock: socket.socket) -> None:
        role = WorkerRole(index, self.count, self.run_dir, os.getpid())
        process = self._context.Process(
            target=_worker_main,
            args=(self.config_file, self.overrides, role, sock),
            name=f"breakwater-worker-{index}",
        )
        process.start()
        self._workers[index] = process

    def _watch(self, sockets: list[socket.socket]) -> int:
        status = 0
        while self._workers:
            time.sleep(0.1)
            for index, process in list(self._workers.items()):
                if process.is_alive():
                    continue
                process.join()
                del self._workers[index]
                code = process.exitcode
                if self._stopping:
                    # A worker still starting when the signal came dies of it (-SIGTERM)
                    # before it has served anything: that is a clean stop too.
                    clean = code in (0, -signal.SIGTERM)
                    status = status or (0 if clean else 1)
                    continue
                if not self._may_restart():
                    _log.error("worker_crash_loop", worker=index, exit_code=code)
                    status = 1
                    self._stop_all()
                    continue
                _log.warning("worker_restarted", worker=index, exit_code=code)
                time.sleep(RESTART_DELAY_SECONDS)
                self._start(index, sockets[index])
        return status

    def _may_restart(self) -> bool:
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW_SECONDS]
        self._restarts.append(now)
        return len(self._restarts) <= MAX_RESTARTS

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        # Workers ignore SIGINT (a terminal's Ctrl-C reaches the whole process group): each
        # signal here becomes exactly one SIGTERM there, so the first drains, a second stops.
        _log.info("stopping_workers", signal=sig, workers=len(self._workers))
        self._stop_all()

    def _stop_all(self) -> None:
        self._stopping = True
        for process in self._workers.values():
            if process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)


def die_with_parent(supervisor: int) -> None:
    """Have the kernel SIGKILL this worker if the supervisor dies (Linux), as a crash would."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != supervisor:  # the supervisor died before prctl took effect
        os.kill(os.getpid(), signal.SIGKILL)
