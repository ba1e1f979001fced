"""``breakwater bench files``: upload and download throughput of one large file, against a
plain file copy on the same disk.

A ``breakwater serve`` subprocess whose data directory is on the same file system as the
source file. Each run: a tus upload (creation, then PATCHes of ``chunk`` bytes, the last one
storing the file under its SHA-256: written, hashed, fsynced, renamed) and a download of the
whole file. The client is plain sockets (``sendfile`` up, ``recv_into`` a reused buffer
down), so the figures are the node's, not an HTTP library's. Floors in the same run:
``shutil.copyfile`` plus ``fsync`` (the physical job without HTTP, hashing or checks), and
the same copy hashing every block with SHA-256 on the way (what content addressing cannot
skip). A third floor (:mod:`~breakwater.bench._receive_floor`): the same bytes sent over
loopback TCP and received as the node does (``splice`` into a file, SHA-256 read back on a
second thread, ``fsync``) without HTTP or tus. The client runs on the same machine, so on a
small one it competes for the CPU.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from breakwater.bench._node import BenchNode, free_port, machine
from breakwater.bench._receive_floor import receive_floor
from breakwater.bench.stats import median

MIB = 1 << 20
TUS = {"Tus-Resumable": "1.0.0"}


def _make_file(path: Path, size: int) -> None:
    """Incompressible bytes, written and fsynced once for every run."""
    block = hashlib.shake_256(b"breakwater bench files").digest(MIB)
    with path.open("wb") as handle:
        for _ in range(size // MIB):
            handle.write(block)
        handle.write(block[: size % MIB])
        handle.flush()
        os.fsync(handle.fileno())


def _copy(source: Path, target: Path) -> float:
    """Seconds of a copy that ends on disk (the floor)."""
    started = time.perf_counter()
    shutil.copyfile(source, target)
    with target.open("rb") as handle:
        os.fsync(handle.fileno())
    elapsed = time.perf_counter() - started
    target.unlink()
    return elapsed


def _copy_and_hash(source: Path, target: Path) -> float:
    """Seconds of a copy that hashes every block and ends on disk (the second floor)."""
    started = time.perf_counter()
    hasher = hashlib.sha256()
    with source.open("rb") as reader, target.open("wb") as writer:
        while block := reader.read(MIB):
            hasher.update(block)
            writer.write(block)
        writer.flush()
        os.fsync(writer.fileno())
    elapsed = time.perf_counter() - started
    target.unlink()
    return elapsed


def _read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and the body bytes read past them."""
    data = b""
    while b"\r\n\r\n" not in data:
        block = sock.recv(65536)
        if not block:
            raise RuntimeError("the node closed the connection")
        data += block
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, rest


def _upload(port: int, path: Path, size: int, chunk: int) -> tuple[float, str]:
    """Seconds of a whole tus upload over one kept-alive connection (``sendfile`` for the
    bytes, as curl or a native app would), and the stored file's name."""
    metadata = "collection " + base64.b64encode(b"bench").decode()
    started = time.perf_counter()
    name = ""
    with socket.create_connection(("127.0.0.1", port)) as sock, path.open("rb") as source:
        sock.sendall(
            (
                f"POST /v1/uploads HTTP/1.1\r\nHost: bench\r\nTus-Resumable: 1.0.0\r\n"
                f"Upload-Length: {size}\r\nUpload-Metadata: {metadata}\r\n"
                "Content-Length: 0\r\n\r\n"
            ).encode()
        )
        status, headers, _ = _read_head(sock)
        if status != 201:
            raise RuntimeError(f"creating the upload answered {status}")
        location = headers["location"]
        offset = 0
        while offset < size:
            length = min(chunk, size - offset)
            sock.sendall(
                (
                    f"PATCH {location} HTTP/1.1\r\nHost: bench\r\nTus-Resumable: 1.0.0\r\n"
                    f"Upload-Offset: {offset}\r\n"
                    "Content-Type: application/offset+octet-stream\r\n"
                    f"Content-Length: {length}\r\n\r\n"
                ).encode()
            )
            sock.sendfile(source, offset, length)
            status, headers, _ = _read_head(sock)
            if status != 204:
                raise RuntimeError(f"a PATCH answered {status}")
            offset = int(headers["upload-offset"])
            name = headers.get("breakwater-file", "")
    return time.perf_counter() - started, name


def _download(port: int, name: str, size: int) -> float:
    """Seconds to receive the whole file (into a reused buffer: the client's cost is the
    kernel's copy, as for a native app writing it out)."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(f"GET /v1/files/{name} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        status, headers, rest = _read_head(sock)
        if status != 200:
            raise RuntimeError(f"the download answered {status}")
        left = int(headers["content-length"]) - len(rest)
        buffer = bytearray(MIB)
        while left > 0:
            received = sock.recv_into(buffer, min(MIB, left))
            if not received:
                raise RuntimeError(f"the download ended {left} bytes short of {size}")
            left -= received
    return time.perf_counter() - started


async def run(
    size_mb: int, runs: int, chunk_mb: int, settings: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Medians of ``runs`` upload, download and copy times of a ``size_mb`` MiB file."""
    size = size_mb * MIB
    with tempfile.TemporaryDirectory(prefix="bench-files-") as folder:
        root = Path(folder)
        source = root / "source.bin"
        await asyncio.to_thread(_make_file, source, size)
        port = free_port()
        node = BenchNode(
            root / "data",
            port,
            "warning",
            settings={"BREAKWATER_FILES_MAX_SIZE": str(size + 1), **(settings or {})},
        )
        await node.wait_ready()
        uploads: list[float] = []
        downloads: list[float] = []
        copies: list[float] = []
        hashed: list[float] = []
        received: list[float] = []
        try:
            for run_index in range(runs):
                copies.append(await asyncio.to_thread(_copy, source, root / "copy.bin"))
                hashed.append(await asyncio.to_thread(_copy_and_hash, source, root / "copy.bin"))
                received.append(
                    await asyncio.to_thread(receive_floor, source, root / "copy.bin", size)
                )
                seconds, name = await asyncio.to_thread(_upload, port, source, size, chunk_mb * MIB)
                uploads.append(seconds)
                downloads.append(await asyncio.to_thread(_download, port, name, size))
                # The next run uploads the same bytes: drop the stored copy first.
                blob = root / "data" / "files" / "blobs" / name[:2] / name
                if run_index < runs - 1:
                    blob.unlink()
                    blob.with_name(name + ".json").unlink()
        finally:
            node.stop()

    def rate(seconds: float) -> float:
        return round(size_mb / seconds, 1)

    copy, upload, download = median(copies), median(uploads), median(downloads)
    copy_hash, receive = median(hashed), median(received)
    return {
        "size_mb": size_mb,
        "runs": runs,
        "chunk_mb": chunk_mb,
        "copy_mb_s": rate(copy),
        "upload_mb_s": rate(upload),
        "download_mb_s": rate(download),
        "copy_hash_mb_s": rate(copy_hash),
        "receive_mb_s": rate(receive),
        "upload_ratio_to_copy": round(copy / upload, 2),
        "upload_ratio_to_copy_hash": round(copy_hash / upload, 2),
        "upload_ratio_to_receive": round(receive / upload, 2),
        "receive_ratio_to_copy": round(copy / receive, 2),
        "download_ratio_to_copy": round(copy / download, 2),
        "samples_s": {
            "copy": copies,
            "copy_hash": hashed,
            "receive": received,
            "upload": uploads,
            "download": downloads,
        },
        "machine": machine(),
    }
