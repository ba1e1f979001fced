"""``breakwater bench files``: upload and download throughput of one large file, against a
plain file copy on the same disk.

A ``breakwater serve`` subprocess whose data directory is on the same file system as the
source file. Each run: a tus upload (creation, then PATCHes of ``chunk`` bytes streamed from
the file, the last one storing it under its SHA-256: written, hashed, fsynced and renamed)
and a download of the whole file (streamed to nothing, as a client saving it to a file it
then fsyncs would do at best). The floor in the same run: ``shutil.copyfile`` of the file
plus ``fsync``, the physical job of an upload without HTTP, hashing or checks. The client
runs in this process, so on a small machine it competes with the node for the CPU.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from breakwater.bench._node import BenchNode, free_port, machine
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


def _chunks(path: Path, offset: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(offset)
        left = length
        while left > 0:
            block = handle.read(min(MIB, left))
            if not block:
                return
            left -= len(block)
            yield block


def _upload(client: httpx.Client, path: Path, size: int, chunk: int) -> tuple[float, str]:
    """Seconds of a whole tus upload, and the stored file's name."""
    metadata = "collection " + base64.b64encode(b"bench").decode()
    started = time.perf_counter()
    created = client.post(
        "/v1/uploads",
        headers={**TUS, "Upload-Length": str(size), "Upload-Metadata": metadata},
    )
    created.raise_for_status()
    location = created.headers["Location"]
    offset = 0
    name = ""
    while offset < size:
        length = min(chunk, size - offset)
        answer = client.patch(
            location,
            content=_chunks(path, offset, length),
            headers={
                **TUS,
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
                "Content-Length": str(length),
            },
        )
        answer.raise_for_status()
        offset = int(answer.headers["Upload-Offset"])
        name = answer.headers.get("Breakwater-File", "")
    return time.perf_counter() - started, name


def _download(client: httpx.Client, name: str, size: int) -> float:
    started = time.perf_counter()
    received = 0
    with client.stream("GET", f"/v1/files/{name}") as answer:
        answer.raise_for_status()
        for block in answer.iter_raw(MIB):
            received += len(block)
    if received != size:
        raise RuntimeError(f"downloaded {received} bytes of {size}")
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
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
                for run_index in range(runs):
                    copies.append(await asyncio.to_thread(_copy, source, root / "copy.bin"))
                    seconds, name = await asyncio.to_thread(
                        _upload, client, source, size, chunk_mb * MIB
                    )
                    uploads.append(seconds)
                    downloads.append(await asyncio.to_thread(_download, client, name, size))
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
    return {
        "size_mb": size_mb,
        "runs": runs,
        "chunk_mb": chunk_mb,
        "copy_mb_s": rate(copy),
        "upload_mb_s": rate(upload),
        "download_mb_s": rate(download),
        "upload_ratio_to_copy": round(copy / upload, 2),
        "download_ratio_to_copy": round(copy / download, 2),
        "samples_s": {"copy": copies, "upload": uploads, "download": downloads},
        "machine": machine(),
    }
