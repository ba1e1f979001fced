"""CPU instructions per pushed document, counted by callgrind: a figure noise cannot move.

Throughput on a shared two-core VM moves by tens of percent from run to run, which hides the
effect of most changes to the hot path. ``valgrind --tool=callgrind`` counts the instructions a
process executes, the same for the same code and input whatever else runs on the machine. This
benchmark runs the push path of one node in one process (the body parsed and validated, the
engine's merge, the SQLite writer's group commit, the answer encoded, and the feed page a
follower reads after each commit), without HTTP, for two numbers of batches, and reports the
difference divided by the documents: the cost of one more document, start-up excluded.

``python -m breakwater.bench.instructions --batches N`` is the measured program.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from breakwater.bench.push import payload, push_body
from breakwater.core import codec
from breakwater.core.cursor import VersionVector
from breakwater.core.engine import Engine
from breakwater.core.hlc import HybridClock
from breakwater.core.limits import Limits
from breakwater.core.mutation import parse_mutation
from breakwater.server.wire import result_json
from breakwater.storage.sqlite import SqliteStore

BATCH = 100
FEW, MANY = 5, 25
"""Batches of the two measured runs; their difference is ``(MANY - FEW) * BATCH`` documents."""


async def push_path(batches: int, data_dir: Path) -> None:
    """``batches`` pushes of :data:`BATCH` new 1 KB documents through parse, store and answer."""
    store = SqliteStore(data_dir / "bench.db", Engine("bench", HybridClock("bench")))
    await store.open()
    limits = Limits()
    document = payload(0)
    position: VersionVector = {}
    try:
        for index in range(batches):
            body = codec.parse_body(push_body("i", index * BATCH, BATCH, document))
            mutations = [parse_mutation(raw, limits) for raw in body["mutations"]]
            results = await store.apply(mutations)
            if any(result.status != "applied" for result in results):
                raise RuntimeError("a benchmark mutation was not applied")
            codec.dumps({"results": [result_json(result) for result in results]})
            page = await store.pull(position, None, BATCH)
            position = page.vector
    finally:
        await store.aclose()


def count(batches: int) -> int:
    """Instructions of one run of :func:`push_path` under callgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("valgrind is not installed (Debian: apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="bw-bench-instr-") as tmp:
        done = subprocess.run(
            [
                valgrind,
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/callgrind.out",
                sys.executable,
                "-m",
                "breakwater.bench.instructions",
                "--batches",
                str(batches),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        match = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or match is None:
            raise RuntimeError(f"callgrind run failed: {done.stderr[-2000:]}")
        return int(match.group(1))


def run(few: int = FEW, many: int = MANY) -> dict[str, Any]:
    """Instructions per document, from runs of ``few`` and ``many`` batches (and the totals)."""
    if not 0 < few < many:
        raise ValueError("the runs need 0 < few < many batches")
    low, high = count(few), count(many)
    return {
        "instructions_per_doc": (high - low) // ((many - few) * BATCH),
        "batches": [few, many],
        "instructions": [low, high],
    }


def main() -> None:
    """The measured program."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bw-bench-instr-data-") as tmp:
        asyncio.run(push_path(args.batches, Path(tmp)))


if __name__ == "__main__":
    main()
