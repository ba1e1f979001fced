"""``python -m breakwater.bench._sdk_device DIR WRITES PAUSE LOG_LEVEL``: the device's online
writes (:mod:`.sdk_wire`) and their floor (:mod:`.sdk_floor`) in a process of their own.

The device's CPU is its process's CPU time, so that process must run nothing but the device, as
a phone runs the app: in the ``breakwater bench sdk`` process, the progress spinner's refresh
thread (12.5 wake-ups a second) and what the earlier phases left behind counted as the SDK's
(about 0.7 ms per write 0.4 s apart, docs/benchmarks.md). Prints one JSON object: the
``sdk_wire`` figures prefixed ``write_``, the floor's prefixed ``floor_``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from breakwater.bench import sdk_floor
from breakwater.bench.sdk_wire import device_writes
from breakwater.core import codec


async def measure(tmp: Path, writes: int, pause: float, log_level: str) -> dict[str, float]:
    """The device's per-write figures, then the floor's at the same pace."""
    (tmp / "wire").mkdir()
    (tmp / "floor").mkdir()
    wire = await device_writes(tmp / "wire", writes, log_level, pause)
    floor = await sdk_floor.measure(tmp / "floor", writes, pause)
    return {
        **{f"write_{key}": value for key, value in wire.items()},
        **{f"floor_{key}": value for key, value in floor.items()},
    }


async def in_child(tmp: Path, writes: int, pause: float, log_level: str) -> dict[str, float]:
    """:func:`measure` in a fresh Python process; raises if it fails."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "breakwater.bench._sdk_device",
        str(tmp),
        str(writes),
        str(pause),
        log_level,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"the device's process exited with {child.returncode}")
    report: dict[str, float] = codec.loads(out)
    return report


if __name__ == "__main__":
    folder, count, pause, level = sys.argv[1:5]
    result = asyncio.run(measure(Path(folder), int(count), float(pause), level))
    sys.stdout.write(codec.dumps(result).decode() + "\n")
