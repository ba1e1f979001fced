"""``breakwater webhooks``: subscriptions, their delivery log and dead letters, on a node's data
directory (or its region's PostgreSQL). The signing secret is printed once, by ``add``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from breakwater.config import load_config
from breakwater.core.errors import Conflict, NotFound
from breakwater.server.webhooks.records import OPERATIONS
from breakwater.server.webhooks.store import WebhookStore, webhook_store_for
from breakwater.server.webhooks.subscriptions import new_subscription

app = typer.Typer(help="Webhook subscriptions: add, list, remove, delivery logs, redelivery.")
T = TypeVar("T")

DataOption = Annotated[Path | None, typer.Option(help="Data directory (default ./data).")]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="TOML config file (or BREAKWATER_CONFIG).")
]


def _run(data: Path | None, config: Path | None, work: Callable[[WebhookStore], Awaitable[T]]) -> T:
    store = webhook_store_for(load_config(config, overrides={"data": data}))

    async def opened() -> T:
        await store.open()
        try:
            return await work(store)
        finally:
            await store.aclose()

    return asyncio.run(opened())


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


@app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="The receiver: an absolute http(s) URL.")],
    collection: Annotated[
        list[str] | None, typer.Option("--collection", help="Only this collection; repeat.")
    ] = None,
    operation: Annotated[
        list[str] | None,
        typer.Option("--operation", help=f"Only this operation ({', '.join(OPERATIONS)}); repeat."),
    ] = None,
    description: Annotated[str, typer.Option(help="What the receiver is for.")] = "",
    sub_id: Annotated[
        str | None,
        typer.Option("--id", help="Its id (the same in every region; default: a new one)."),
    ] = None,
    secret_file: Annotated[
        Path | None,
        typer.Option(help="A file holding its signing secret (the same in every region)."),
    ] = None,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Add a subscription; print its id and its signing secret (shown this once).

    It delivers the changes committed after a node's deliverer first sees it.
    """
    fields: dict[str, object] = {"url": url, "description": description}
    if collection:
        fields["collections"] = collection
    if operation:
        fields["operations"] = operation
    if sub_id is not None:
        fields["id"] = sub_id
    if secret_file is not None:
        fields["secret"] = secret_file.read_text().strip()
    subscription = new_subscription(fields, int(time.time() * 1000))

    async def add_new(store: WebhookStore) -> None:
        if await store.subscription(subscription.sub_id) is not None:
            raise Conflict(f"webhook subscription {subscription.sub_id!r} exists already")
        await store.add(subscription, None)

    _run(data, config, add_new)
    typer.echo(f"{subscription.sub_id}\t{subscription.url}")
    typer.echo(subscription.secret)


@app.command("list")
def list_subscriptions(data: DataOption = None, config: ConfigOption = None) -> None:
    """Every subscription: id, URL, collections, operations, dead letters (never the secret)."""

    async def work(store: WebhookStore) -> list[str]:
        lines = []
        for s in await store.subscriptions():
            dead = await store.count_dead(s.sub_id)
            collections = ",".join(s.collections) or "*"
            lines.append(
                f"{s.sub_id}\t{s.url}\t{collections}\t{','.join(s.operations)}"
                f"\t{_when(s.created_ms)}\tdead={dead}"
            )
        return lines

    for line in _run(data, config, work):
        typer.echo(line)


@app.command("remove")
def remove(
    sub_id: Annotated[str, typer.Argument(help="The id printed by add or list.")],
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Remove a subscription with its delivery log and dead letters."""
    if not _run(data, config, lambda store: store.remove(sub_id)):
        raise NotFound(f"no webhook subscription {sub_id!r}")
    typer.echo(f"removed {sub_id}")


@app.command("deliveries")
def deliveries(
    sub_id: Annotated[str, typer.Argument(help="The subscription.")],
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many attempts.")] = 50,
    dead: Annotated[bool, typer.Option("--dead", help="Dead letters instead of attempts.")] = False,
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """The newest attempts (time, delivery id, attempt, outcome, status, latency, error), or with
    ``--dead`` the dead letters (time, delivery id, state, attempts, last error)."""

    async def work(store: WebhookStore) -> list[str]:
        if await store.subscription(sub_id) is None:
            raise NotFound(f"no webhook subscription {sub_id!r}")
        if dead:
            return [
                f"{_when(d.at_ms)}\t{d.delivery_id}\t{d.state}\t{d.attempts}\t{d.error}"
                for d in await store.dead_letters(sub_id, limit)
            ]
        return [
            f"{_when(a.at_ms)}\t{a.delivery_id}\t{a.attempt}\t{a.outcome}\t{a.status or '-'}"
            f"\t{a.latency_ms:.1f}ms\t{a.error}"
            for a in await store.attempts(sub_id, limit)
        ]

    for line in _run(data, config, work):
        typer.echo(line)


@app.command("redeliver")
def redeliver(
    sub_id: Annotated[str, typer.Argument(help="The subscription.")],
    delivery_id: Annotated[str, typer.Argument(help="A dead letter's delivery id.")],
    data: DataOption = None,
    config: ConfigOption = None,
) -> None:
    """Queue a dead letter for delivery again (same body and idempotency key)."""
    if not _run(data, config, lambda store: store.queue_redelivery(sub_id, delivery_id)):
        raise NotFound(f"no dead letter {delivery_id!r} of {sub_id!r}")
    typer.echo(f"queued {delivery_id}")
