"""The third floor of ``breakwater bench files``: what any upload must do, without HTTP.

A thread sends the file over loopback TCP with ``sendfile`` (as the bench's tus client does);
the receiver moves it socket → pipe → file with ``splice`` (one kernel copy) while a second
thread hashes with SHA-256 each range once it is in the file, then ``fsync``s: the node's
receive path (ADR 0057) minus HTTP, tus, metadata and the stored file's rename. An upload
near this floor loses little to the node; the floor's own ratio to a plain copy says what
the machine allows (the hash and the loopback copies are CPU a copy does not spend).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PIPE = 1 << 20


def receive_floor(source: Path, target: Path, size: int) -> float:
    """Seconds to receive ``size`` bytes of ``source`` over loopback into ``target``, hashed
    and on disk (``target`` is removed after)."""
    with socket.create_server(("127.0.0.1", 0)) as server, ThreadPoolExecutor(2) as pool:
        port = server.getsockname()[1]
        started = time.perf_counter()
        sending = pool.submit(_send, port, source, size)
        connection, _ = server.accept()
        with connection, target.open("w+b") as out:
            _receive(connection.fileno(), out.fileno(), size, pool)
            os.fsync(out.fileno())
        elapsed = time.perf_counter() - started
        sending.result()
    target.unlink()
    return elapsed


def _send(port: int, source: Path, size: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock, source.open("rb") as handle:
        sock.sendfile(handle, 0, size)


def _receive(sock: int, fd: int, size: int, pool: ThreadPoolExecutor) -> None:
    """Splice ``size`` bytes from ``sock`` into ``fd``; hash them on a thread of ``pool``."""
    landed = 0
    stopped = False
    changed = threading.Condition()

    def hash_back() -> str:
        hasher, buffer, at = hashlib.sha256(), bytearray(PIPE), 0
        view = memoryview(buffer)
        while at < size:
            with changed:
                while landed == at and not stopped:
                    changed.wait()
                if stopped:
                    break
                end = landed
            while at < end:
                count = os.preadv(fd, [view[: min(PIPE, end - at)]], at)
                hasher.update(view[:count])
                at += count
        view.release()
        return hasher.hexdigest()

    hashing = pool.submit(hash_back)
    pipe_out, pipe_in = os.pipe()
    try:
        fcntl.fcntl(pipe_in, fcntl.F_SETPIPE_SZ, PIPE)
        while landed < size:
            count = os.splice(sock, pipe_in, min(PIPE, size - landed))
            if count == 0:
                raise RuntimeError(f"the sender stopped {size - landed} bytes short")
            while count:
                moved = os.splice(pipe_out, fd, count, offset_dst=landed)
                count -= moved
                with changed:
                    landed += moved
                    changed.notify()
    finally:
        with changed:
            stopped = landed < size  # a failed receive: the hasher stops too
            changed.notify()
        os.close(pipe_out)
        os.close(pipe_in)
    hashing.result()
