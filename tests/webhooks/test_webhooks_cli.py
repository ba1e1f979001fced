"""``breakwater webhooks``: add prints the secret once; list, deliveries, redeliver, remove."""

from __future__ import annotations

import asyncio
from pathlib import Path

from typer.testing import CliRunner

from breakwater.cli.main import app
from breakwater.server.webhooks._database import SqliteDatabase
from breakwater.server.webhooks.records import Attempt, DeadLetter
from breakwater.server.webhooks.store import WebhookStore


def _record_failure(data: Path, sub_id: str) -> None:
    async def work() -> None:
        store = WebhookStore(SqliteDatabase(data / "webhooks.db"))
        await store.open()
        await store.log([Attempt(sub_id, "whd_1", 1, "failed", 503, 12.5, "HTTP 503", 1000)])
        await store.add_dead_letter(DeadLetter(sub_id, "whd_1", b"{}", 1, "HTTP 503", 1000))
        await store.aclose()

    asyncio.run(work())


def test_the_cli_manages_subscriptions(tmp_path: Path) -> None:
    """add → list (no secret) → deliveries → redeliver once → remove; bad input exits non-zero."""
    runner = CliRunner()
    data = ["--data", str(tmp_path)]
    added = runner.invoke(
        app,
        [
            "webhooks",
            "add",
            "https://h.example/in",
            "--collection",
            "notes",
            "--operation",
            "set",
            *data,
        ],
    )
    assert added.exit_code == 0, added.output
    sub_id, secret = added.output.split()[0], added.output.split()[-1]
    assert secret.startswith("whsec_")
    listed = runner.invoke(app, ["webhooks", "list", *data])
    assert sub_id in listed.output and "notes" in listed.output and secret not in listed.output
    _record_failure(tmp_path, sub_id)
    log = runner.invoke(app, ["webhooks", "deliveries", sub_id, *data])
    assert "whd_1" in log.output and "HTTP 503" in log.output and "12.5ms" in log.output
    dead = runner.invoke(app, ["webhooks", "deliveries", sub_id, "--dead", *data])
    assert "whd_1\tdead" in dead.output
    assert runner.invoke(app, ["webhooks", "redeliver", sub_id, "whd_1", *data]).exit_code == 0
    assert runner.invoke(app, ["webhooks", "redeliver", sub_id, "whd_1", *data]).exit_code != 0
    assert runner.invoke(app, ["webhooks", "remove", sub_id, *data]).exit_code == 0
    assert runner.invoke(app, ["webhooks", "remove", sub_id, *data]).exit_code != 0
    bad = runner.invoke(app, ["webhooks", "add", "ftp://x/y", *data])
    assert bad.exit_code != 0 and "http" in str(bad.exception)


def test_the_cli_adds_a_subscription_with_a_given_id_and_secret_once(tmp_path: Path) -> None:
    """``--id`` and ``--secret-file`` (as in every region of a deployment) are kept; the same id
    again exits non-zero and changes nothing."""
    runner = CliRunner()
    data = ["--data", str(tmp_path)]
    secret = "whsec_" + "z" * 43
    (tmp_path / "secret").write_text(secret + "\n")
    given = ["--id", "wh_everywhere", "--secret-file", str(tmp_path / "secret"), *data]
    added = runner.invoke(app, ["webhooks", "add", "https://h.example/in", *given])
    assert added.exit_code == 0, added.output
    assert added.output.split() == ["wh_everywhere", "https://h.example/in", secret]
    again = runner.invoke(app, ["webhooks", "add", "https://h.example/other", *given])
    assert again.exit_code != 0
    listed = runner.invoke(app, ["webhooks", "list", *data]).output
    assert listed.count("wh_everywhere") == 1 and "other" not in listed
