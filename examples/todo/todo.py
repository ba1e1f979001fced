"""A shared todo list on the Breakwater SDK: works offline, syncs when the server is back.

    python examples/todo/todo.py --db phone.db add "Buy milk"
    python examples/todo/todo.py --db phone.db done <id>
    python examples/todo/todo.py --db phone.db list
    python examples/todo/todo.py --db tablet.db watch      # live list and sync status
    python examples/todo/todo.py --db phone.db signup ann@example.com "correct horse"

See README.md in this folder for a walk-through with the server going down and coming back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import time

from breakwater.client import Client, Document, Event, MutationRejected, StatusChanged


def show(items: list[Document], client: Client) -> None:
    status = client.status
    synced = time.strftime("%H:%M:%S", time.localtime(status.last_synced_at or 0))
    print(
        f"-- {status.state} via {status.transport or '-'}; {status.pending} unsent;"
        f" last synced {synced if status.last_synced_at else 'never'}"
        + (f"; error: {status.last_error}" if status.last_error else "")
    )
    for item in items:
        mark = "x" if item.data.get("done") else " "
        flag = "  (not yet synced)" if item.pending else ""
        print(f"[{mark}] {item.id}  {item.data.get('title', '')}{flag}")


async def settle(client: Client, seconds: float) -> None:
    """Give the background sync a moment to deliver (the write is durable locally anyway)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await client.wait_synced()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="http://127.0.0.1:8080", help="comma-separated")
    parser.add_argument("--db", default="todo.db", help="this device's database")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("add").add_argument("title")
    sub.add_parser("done").add_argument("id")
    sub.add_parser("remove").add_argument("id")
    sub.add_parser("list")
    sub.add_parser("watch")
    for command in ("signup", "login"):
        account = sub.add_parser(command)
        account.add_argument("email")
        account.add_argument("password")
    sub.add_parser("logout")
    args = parser.parse_args()

    async with Client(args.server.split(","), args.db, backoff_cap=2.0) as client:
        if args.command in ("signup", "login", "logout"):
            # The session is stored in the device database: later commands are signed in.
            if args.command == "signup":
                await client.auth.sign_up(args.email, args.password)
            elif args.command == "login":
                await client.auth.sign_in(args.email, args.password)
            else:
                await client.auth.sign_out()
            print(f"   {client.auth.state.kind} {client.auth.state.uid or ''}")
            return
        todos = client.collection("todos")
        if args.command == "add":
            item_id = f"{int(time.time())}-{secrets.token_hex(2)}"
            await todos.set(item_id, {"title": args.title, "done": False, "at": time.time()})
        elif args.command == "done":
            await todos.patch(args.id, {"done": True})
        elif args.command == "remove":
            await todos.delete(args.id)
        if args.command != "watch":
            await settle(client, 2.0)
            show(await todos.query(order_by="at"), client)
            return

        def on_event(event: Event) -> None:
            if isinstance(event, MutationRejected):
                print(f"!! the server refused {event.rejection.mutation_id}: rolled back")
            elif isinstance(event, StatusChanged):
                print(f"   status: {event.status.state}, {event.status.pending} unsent")

        client.on(on_event)
        async for items in todos.watch(order_by="at"):
            show(items, client)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
