"""A real S3-compatible server for tests: moto's server mode on loopback, one per test."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from tests.conftest import free_port


@dataclass(frozen=True, slots=True)
class S3Server:
    """A running moto server and the environment that points boto3 at it."""

    endpoint: str
    bucket: str
    env: dict[str, str]


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """Start ``moto.server`` on a free loopback port with one empty bucket; stop it by PID."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **env},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        bucket = f"bw-{uuid.uuid4().hex[:10]}"
        httpx.put(f"{endpoint}/{bucket}", timeout=5).raise_for_status()
        yield S3Server(endpoint, bucket, env)
    finally:
        process.terminate()
        process.wait(timeout=10)
