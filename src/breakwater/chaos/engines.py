"""Private engines for one run: a PostgreSQL cluster and a Redis server that a scenario may stop.

Each engine is started for one run only, on a port of its own, in a temporary directory that is
removed at the end; it is signalled only through the process it started, by PID (PostgreSQL
through ``pg_ctl`` and its ``postmaster.pid``), so the machine's shared PostgreSQL, Redis and
NATS are never touched. ``stop()`` is the ``engine_stop`` fault and ``start()`` its heal: the
data directory survives a stop, so the nodes find their store again.

PostgreSQL refuses to run as root, so under root ``initdb`` and ``pg_ctl`` run as the
``postgres`` user (``runuser``) on a directory handed to it.

A PostgreSQL engine may also be a streaming-replication standby of another one (``upstream``):
its data comes from ``pg_basebackup`` of the upstream, and ``promote()`` makes it a primary.
``kill(wipe=True)`` is the loss of a primary's machine: every process of the server SIGKILLed
and its data folder removed, after which the engine is ``lost`` and cannot start again (nor
can a primary whose standby was promoted).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Literal, Protocol

from breakwater.core.ascii import is_digits
from breakwater.core.errors import BreakwaterError

StopMode = Literal["fast", "immediate"]
STOP_MODES: tuple[StopMode, ...] = ("fast", "immediate")
ENGINE_USER = "postgres"
COMMAND_TIMEOUT = 60.0


class EngineMissing(BreakwaterError):
    """The engine's binaries are not installed here; the detail names what was looked for."""

    type = "engine_missing"


class EngineFailed(BreakwaterError):
    """An engine command failed or the engine did not answer in time; the detail has its output."""

    type = "engine_failed"


class Engine(Protocol):
    """A private engine the runner starts, stops (the fault), starts again (the heal), closes."""

    name: str

    @property
    def url(self) -> str:
        """The URL nodes use to reach it."""
        ...

    @property
    def running(self) -> bool:
        """Whether it was started and not stopped since."""
        ...

    async def start(self) -> None:
        """Start it (creating its data on the first start) and return once it answers."""

    async def stop(self, mode: StopMode = "fast") -> None:
        """Stop it: ``fast`` is a clean shutdown, ``immediate`` a crash (no checkpoint)."""

    async def aclose(self) -> None:
        """Stop it if it runs and remove its temporary directory; safe to call twice."""


def postgres_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with ``initdb`` and ``pg_ctl``, or the
    directory of ``pg_ctl`` on PATH; :class:`EngineMissing` otherwise."""
    found = [
        path.parent
        for path in Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")
        if path.with_name("initdb").exists()
    ]
    found.sort(key=lambda path: _version(path.parent.name))
    if found:
        return found[-1]
    on_path = shutil.which("pg_ctl")
    if on_path and Path(on_path).with_name("initdb").exists():
        return Path(on_path).parent
    raise EngineMissing("PostgreSQL binaries not found (/usr/lib/postgresql/*/bin or PATH)")


def redis_binary() -> Path:
    """``redis-server`` on PATH; :class:`EngineMissing` otherwise."""
    found = shutil.which("redis-server")
    if found is None:
        raise EngineMissing("redis-server not found on PATH")
    return Path(found)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if is_digits(part))


def _as_engine_user() -> list[str]:
    """The prefix that runs a command as ``postgres`` when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise EngineMissing("running PostgreSQL as root needs runuser (util-linux)")
    try:
        pwd.getpwnam(ENGINE_USER)
    except KeyError:
        raise EngineMissing(f"running PostgreSQL as root needs a {ENGINE_USER!r} user") from None
    return [runuser, "-u", ENGINE_USER, "--"]


async def _run(command: list[str], what: str) -> str:
    """Run ``command`` to completion (bounded); its output, or :class:`EngineFailed`."""
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd="/"
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise EngineFailed(f"{what} did not finish in {COMMAND_TIMEOUT:g}s") from None
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise EngineFailed(f"{what} failed (exit {process.returncode}):\n{text[-2000:]}")
    return text


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (exited, not yet reaped by its parent) does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return _signalable(pid)
    return stat.rpartition(")")[2].split()[0] != "Z"


def _signalable(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _exited(pid: int, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``pid`` to exit; whether it did."""
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


class PostgresEngine:
    """A private PostgreSQL cluster on ``127.0.0.1:port``, trust authentication, fsync on.

    With ``upstream``, a standby streaming from it (``application_name`` = ``name``); with
    ``synchronous_standby``, a primary whose commits wait until that standby has flushed them.
    """

    def __init__(
        self,
        port: int,
        log: Path,
        *,
        name: str = "postgres",
        upstream: PostgresEngine | None = None,
        synchronous_standby: str | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.log = log
        self.upstream = upstream
        self.synchronous_standby = synchronous_standby
        self.lost = False
        self._bindir = postgres_bindir()
        self._prefix = _as_engine_user()
        self._root: Path | None = None
        self._pid: int | None = None

    @property
    def url(self) -> str:
        """Its ``postgres`` database as the superuser ``postgres``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def running(self) -> bool:
        """Whether the postmaster this object started is alive."""
        return self._pid is not None and _alive(self._pid)

    def _tool(self, tool: str, *args: str) -> list[str]:
        return [*self._prefix, str(self._bindir / tool), *args]

    async def _init(self) -> Path:
        root = Path(tempfile.mkdtemp(prefix="breakwater-pg-"))
        self._root = root
        (root / "sock").mkdir()
        if self._prefix:
            user = pwd.getpwnam(ENGINE_USER)
            for path in (root, root / "sock"):
                os.chown(path, user.pw_uid, user.pw_gid)
        if self.upstream is not None:
            # -R writes standby.signal and primary_conninfo; -X stream copies the WAL written
            # meanwhile, so the copy is consistent on its own.
            await _run(
                self._tool("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.upstream.port),
                           "-U", "postgres", "-D", str(root / "data"), "-R", "-X", "stream",
                           "-c", "fast"),
                "pg_basebackup",
            )  # fmt: skip
            return root
        # --no-sync: initdb's own files; the server runs with fsync on.
        await _run(
            self._tool("initdb", "-D", str(root / "data"), "-U", "postgres", "--auth=trust",
                       "-E", "UTF8", "--no-sync"),
            "initdb",
        )  # fmt: skip
        return root

    async def start(self) -> None:
        """``initdb`` on the first start, then ``pg_ctl start`` waiting until it accepts."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        if self.lost:
            raise RuntimeError(f"{self.name} was lost or replaced; it cannot start again")
        root = self._root or await self._init()
        options = f"-p {self.port} -k {root / 'sock'} -c listen_addresses=127.0.0.1 -c fsync=on"
        # cluster_name is the application_name a standby reports to its primary.
        options += f" -c cluster_name={self.name}"
        if self.synchronous_standby:
            options += f" -c synchronous_standby_names={self.synchronous_standby}"
        await _run(
            self._tool("pg_ctl", "start", "-w", "-t", "30", "-D", str(root / "data"),
                       "-l", str(root / "postgres.log"), "-o", options),
            "pg_ctl start",
        )  # fmt: skip
        self._pid = self._postmaster_pid()
        if self.upstream is not None:
            await self.upstream.wait_for_standby(self.name)

    async def wait_for_standby(self, name: str, seconds: float = 30.0) -> None:
        """Return once standby ``name`` streams from this server, and is its synchronous
        standby if it was configured as one (a moment after it connects)."""
        wanted = "sync" if self.synchronous_standby == name else "async"
        query = f"SELECT sync_state FROM pg_stat_replication WHERE application_name = '{name}'"
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            state = await _run(
                self._tool("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                           "-d", "postgres", "-Atc", query),
                "psql",
            )  # fmt: skip
            if state.strip() == wanted:
                return
            await asyncio.sleep(0.1)
        raise EngineFailed(f"standby {name} did not stream from {self.name} in {seconds:g}s")

    def _postmaster_pid(self) -> int | None:
        """The PID in ``postmaster.pid``, if the file is there (it is while the server runs)."""
        if self._root is None:
            return None
        try:
            lines = (self._root / "data" / "postmaster.pid").read_text()
        except OSError:
            return None
        first = lines.split("\n", 1)[0].strip()
        return int(first) if is_digits(first) else None

    async def stop(self, mode: StopMode = "fast") -> None:
        """``pg_ctl stop -m fast`` (clean) or ``-m immediate`` (a crash: recovery on start)."""
        pid = self._pid
        if pid is None or not self.running or self._root is None:
            raise RuntimeError(f"{self.name} is not running")
        await _run(
            self._tool("pg_ctl", "stop", "-w", "-t", "30", "-m", mode, "-D",
                       str(self._root / "data")),
            "pg_ctl stop",
        )  # fmt: skip
        # pg_ctl returns once the pid file is gone, a moment before the postmaster exits.
        if not await _exited(pid, 10.0):
            raise EngineFailed(f"postgres (PID {pid}) still runs after pg_ctl stop")
        self._pid = None

    async def promote(self) -> None:
        """``pg_ctl promote``: the standby stops following and accepts writes once it returns."""
        if self.upstream is None or not self.running or self._root is None:
            raise RuntimeError(f"{self.name} is not a running standby")
        await _run(
            self._tool("pg_ctl", "promote", "-w", "-t", "30", "-D", str(self._root / "data")),
            "pg_ctl promote",
        )  # fmt: skip
        # Started again, the old primary would be a second primary with a diverged history:
        # it has to be rebuilt as a standby of this one instead (pg_basebackup or pg_rewind).
        self.upstream.lost = True
        self.upstream = None

    async def kill(self, *, wipe: bool = False) -> None:
        """SIGKILL the postmaster and every process it started (a machine that died: no
        shutdown, no backend outliving it); ``wipe`` also removes the data folder (its disk is
        gone too), after which the engine is ``lost``."""
        pid = self._pid
        if pid is None or not self.running or self._root is None:
            raise RuntimeError(f"{self.name} is not running")
        children = _children(pid)
        for victim in (pid, *children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        for victim in (pid, *children):
            await _exited(victim, 10.0)
        self._pid = None
        if wipe:
            await asyncio.to_thread(shutil.rmtree, self._root / "data", True)
            self.lost = True

    async def aclose(self) -> None:
        """Stop it (SIGKILL to its postmaster's PID if ``pg_ctl`` fails), keep its log in
        ``log``, remove the directory."""
        # A start that failed late may have left a server running without our knowing its PID.
        pid = self._pid or self._postmaster_pid()
        self._pid = pid
        if pid is not None and self.running:
            try:
                await self.stop("fast")
            except EngineFailed:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                await _exited(pid, 10.0)
        if self._root is not None:
            with contextlib.suppress(OSError):
                shutil.copyfile(self._root / "postgres.log", self.log)
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None


def _children(pid: int) -> list[int]:
    """The PIDs of ``pid``'s child processes (empty if it is gone)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


class RedisEngine:
    """A private ``redis-server`` on ``127.0.0.1:port`` with no persistence, a child process."""

    name = "redis"

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self._binary = redis_binary()
        self._root: Path | None = None
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """Database 0 (the bus and the cache share it; their keys and channels are prefixed)."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the server this object started is alive."""
        return self._process is not None and self._process.returncode is None

    async def start(self, ready_timeout: float = 10.0) -> None:
        """Start the server and return once it answers PING; it starts empty every time."""
        if self.running:
            raise RuntimeError("redis is already running")
        self._root = self._root or Path(tempfile.mkdtemp(prefix="breakwater-redis-"))
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self._process = await asyncio.create_subprocess_exec(
                str(self._binary), "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--dir", str(self._root),
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise EngineFailed(f"redis-server exited; see {self.log}")
            if await asyncio.to_thread(self._pong):
                return
            await asyncio.sleep(0.05)
        await self.stop("immediate")
        raise EngineFailed(f"redis-server did not answer in {ready_timeout:g}s; see {self.log}")

    def _pong(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    async def stop(self, mode: StopMode = "fast") -> None:
        """SIGTERM (``fast``) or SIGKILL (``immediate``) to its PID, then wait for the exit."""
        if self._process is None or not self.running:
            raise RuntimeError("redis is not running")
        self._process.send_signal(signal.SIGTERM if mode == "fast" else signal.SIGKILL)
        try:
            await asyncio.wait_for(self._process.wait(), 10.0)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()

    async def aclose(self) -> None:
        """Stop it if it runs and remove its directory."""
        if self.running:
            await self.stop("fast")
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
