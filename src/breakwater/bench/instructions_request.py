"""``breakwater bench instructions --requests``: CPU instructions per single-mutation push
through the whole node in one process (middleware, routes, write path, group commit, feed
follower), counted by callgrind, so that what tracing costs (off, on with every trace kept,
on with every trace dropped by the sampler) is a figure noise cannot move.

The measured program is source text run with ``python -c``, so that it runs unchanged against
another source tree (``PYTHONPATH``, e.g. a checkout of main) that lacks this module; it uses
only ``load_config``, ``create_app`` and the logging set-up of ``breakwater serve``, plus the
node's tracing when asked for. Each push sets a small document (``{"n": i}``, compact), or with
``body="peers"`` the peers' harness's 1 KB document (a float time stamp and a padding string)
as Python's ``json.dumps`` writes the push, the body issue 22's per-push targets are measured
with.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

Body = Literal["small", "peers"]
Mode = Literal["off", "on", "dropped", "put"]
"""Tracing off; on with every trace kept; on with every trace dropped by the sampler; tracing
off with each write a REST ``PUT`` of the same document instead of a push."""
FEW, MANY = 40, 200
"""Pushes of the two measured runs; their difference is what one more push costs."""

PROGRAM = """
import asyncio, json, logging, sys, tempfile
from pathlib import Path

import httpx

from breakwater.config import load_config
from breakwater.obs.logging import configure
from breakwater.server.app import create_app

PUSHES, MODE, BODY = int(sys.argv[1]), sys.argv[2], sys.argv[3]
TRACED = MODE in ("on", "dropped")
configure("info", trace_ids=TRACED)  # one JSON access line per request, as `serve` logs
logging.getLogger("httpx").setLevel(logging.WARNING)  # the client's lines are not the node's


async def main() -> None:
    tracing = None
    if TRACED:
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        from breakwater.obs.tracing import build_tracing
        from breakwater.obs.tracing_settings import TracingSettings

        exporter = InMemorySpanExporter()
        ratio = 0.0 if MODE == "dropped" else 1.0
        tracing = build_tracing(
            TracingSettings(enabled=True, sampler_ratio=ratio),
            "bench",
            "bench",
            SimpleSpanProcessor(exporter),
        )
    config = load_config(None, env={}, overrides={"data": Path(tempfile.mkdtemp())})
    app = create_app(config, tracing=tracing) if tracing else create_app(config)
    headers = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            for index in range(PUSHES):
                if MODE == "put":
                    answer = await client.put(f"/v1/collections/bench/docs/d{index}",
                                              json={"n": index}, headers=headers)
                elif BODY == "peers":  # loadgen.py's push: json.dumps, 1 KB, a float
                    data = {"type": "bench", "ts": 1765000000.123456 + index / 1000}
                    data["pad"] = "x" * (1024 - len(json.dumps(data)) - 12)
                    name = f"{index:032x}"
                    body = {"client_id": "loadgen", "mutations": [{"mutation_id": name,
                            "collection": "single", "id": name, "op": "set", "data": data}]}
                    sent = {**headers, "content-type": "application/json"}
                    text = json.dumps(body)
                    answer = await client.post("/v1/sync/push", content=text, headers=sent)
                else:
                    body = {"mutations": [{"mutation_id": f"m{index}", "collection": "bench",
                                           "id": f"d{index}", "op": "set", "data": {"n": index}}]}
                    answer = await client.post("/v1/sync/push", json=body, headers=headers)
                if answer.status_code not in (200, 201):
                    raise RuntimeError(answer.text)
            await asyncio.sleep(0.05)  # the follower's last page


asyncio.run(main())
"""


def count(pushes: int, mode: Mode, source: Path | None = None, body: Body = "small") -> int:
    """Instructions of one run of :data:`PROGRAM` under callgrind (``source``: another tree)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("valgrind is not installed (Debian: apt-get install valgrind)")
    env: Mapping[str, str] = dict(os.environ)
    if source is not None:
        env = {**env, "PYTHONPATH": str(source.resolve()), "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryDirectory(prefix="bw-bench-instr-") as tmp:
        done = subprocess.run(
            [
                valgrind,
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/callgrind.out",
                sys.executable,
                "-c",
                PROGRAM,
                str(pushes),
                mode,
                body,
            ],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        match = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or match is None:
            raise RuntimeError(f"callgrind run failed: {done.stderr[-2000:]}")
        return int(match.group(1))


def per_push(mode: Mode, source: Path | None = None, body: Body = "small") -> int:
    """Instructions one more push costs (the difference of two runs)."""
    return (count(MANY, mode, source, body) - count(FEW, mode, source, body)) // (MANY - FEW)


def run(
    baseline_src: Path | None = None,
    modes: tuple[Mode, ...] = ("off", "on", "dropped", "put"),
    body: Body = "small",
) -> dict[str, Any]:
    """Instructions per write in each mode, and for ``baseline_src`` (tracing off, and a
    ``PUT`` when ``put`` is among the modes); pushes carry ``body`` documents."""
    report: dict[str, Any] = {"pushes": [FEW, MANY], "mutations_per_push": 1, "body": body}
    for mode in modes:
        report["rest_put" if mode == "put" else f"tracing_{mode}"] = per_push(mode, body=body)
    if baseline_src is not None:
        report["baseline"] = per_push("off", baseline_src, body)
        if "put" in modes:
            report["baseline_put"] = per_push("put", baseline_src)
    return report
