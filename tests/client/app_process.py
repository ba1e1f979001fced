"""An app on the SDK, run as a subprocess so that tests can SIGKILL it.

python -m tests.client.app_process write URL DB COUNT   # write, printing "ok I" per write
python -m tests.client.app_process sync URL DB          # sync, printing progress, then a summary
"""

from __future__ import annotations

import asyncio
import json
import sys

from breakwater.client import Client, Event, SyncProgress
from breakwater.core import cursor as cursor_mod


async def write(url: str, db: str, count: int) -> None:
    """Write ``count`` documents (and increments), reporting each one once it has returned."""
    async with Client([url], db, backoff_cap=1.0) as client:
        todos = client.collection("todos")
        for i in range(count):
            await todos.set(f"t{i}", {"title": f"task {i}"})
            await todos.increment("counter", {"n": 1})
            print(f"ok {i}", flush=True)
        print("done", flush=True)
        await asyncio.sleep(3600)


async def sync(url: str, db: str) -> None:
    """Sync to the end, printing ``progress N`` per page; then a JSON summary line."""
    pulled = 0

    def on_event(event: Event) -> None:
        nonlocal pulled
        if isinstance(event, SyncProgress):
            pulled = event.changes
            print(f"progress {event.changes}", flush=True)

    client = Client([url], db, backoff_cap=1.0, pull_limit=1000)
    client.on(on_event)
    async with client:
        start = cursor_mod.decode(client._store.cursor)
        async with asyncio.timeout(600):
            await client.wait_synced()
        docs = len(await client.collection("items").query())
        todos = len(await client.collection("todos").query())
        summary = {"start": start, "pulled": pulled, "items": docs, "todos": todos}
        print(json.dumps(summary), flush=True)


def main() -> None:
    command, url, db, *rest = sys.argv[1:]
    if command == "write":
        asyncio.run(write(url, db, int(rest[0])))
    else:
        asyncio.run(sync(url, db))


if __name__ == "__main__":
    main()
