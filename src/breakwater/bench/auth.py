"""``breakwater bench auth``: what authentication and access rules cost.

- Sign-in rate through the auth service (argon2id at OWASP parameters, SQLite store), against
  the floor measured in the same run: bare argon2id verifications of the same hash.
- Access-token verification per request (µs), against a bare HMAC-SHA256 of the same bytes; and
  with the disabled-accounts denylist (ADR 0026) against the alternative it avoids, an account
  lookup in the auth store per request.
- Push and pull throughput of one node with owner rules on the collection against the same
  node without rules, in the same run, alternating, in-process (ASGI, no sockets): the
  difference is what the rules cost on the write and read paths.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from argon2 import PasswordHasher, Type

from breakwater.auth.passwords import Passwords
from breakwater.auth.records import Account
from breakwater.auth.service import AuthService
from breakwater.auth.signing_keys import SigningKeys
from breakwater.auth.sqlite_store import SqliteAuthStore
from breakwater.auth.tokens import AccessClaims, TokenIssuer
from breakwater.bench._node import machine
from breakwater.bench.stats import median
from breakwater.config import load_config
from breakwater.obs.logging import configure as configure_logging
from breakwater.server.app import create_app

EMAIL = "bench@example.com"
PASSWORD = "bench password 1234"
NO_LIMITS = "rate_per_ip = 0\nrate_per_user = 0\nrate_per_key = 0\nrate_auth_per_ip = 0\n"
WITHOUT_RULES = f'[auth]\nmode = "open"\n{NO_LIMITS}'
WITH_RULES = f"""[auth]
mode = "enforce"
{NO_LIMITS}
[collections.notes]
owner = "owner"
rules.read = "auth.uid == doc.owner || (has(doc.public) && doc.public == true)"
rules.write = "auth.uid == doc.owner"
"""
BATCH = 100
PULL_PAGE = 500


async def _logins(data: Path, count: int, concurrency: int) -> tuple[float, float]:
    """(sign-ins per second through the service, bare argon2id verifications per second)."""
    store = SqliteAuthStore(data / "auth.db")
    store.open()
    issuer = TokenIssuer(SigningKeys([SigningKeys.generate()]), "bench", 900)
    service = AuthService(store, issuer, Passwords(), 86_400)
    try:
        if store.account_by_email(EMAIL) is None:
            await service.signup(EMAIL, PASSWORD)
        started = time.perf_counter()

        async def worker(n: int) -> None:
            for _ in range(n):
                await service.login(EMAIL, PASSWORD)

        await asyncio.gather(*(worker(count // concurrency) for _ in range(concurrency)))
        login_rate = (count // concurrency * concurrency) / (time.perf_counter() - started)
    finally:
        store.close()
    hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.ID)
    encoded = hasher.hash(PASSWORD)

    def verify(n: int) -> None:
        for _ in range(n):
            hasher.verify(encoded, PASSWORD)

    started = time.perf_counter()
    await asyncio.gather(
        *(asyncio.to_thread(verify, count // concurrency) for _ in range(concurrency))
    )
    raw_rate = (count // concurrency * concurrency) / (time.perf_counter() - started)
    return login_rate, raw_rate


def _verify_costs(count: int) -> tuple[float, float, float]:
    """µs per verification of a token seen for the first time, of one seen before (a client's
    next request), and of a bare HMAC-SHA256 of the same signing input."""
    issuer = TokenIssuer(SigningKeys([SigningKeys.generate()]), "bench", 900)
    claims = AccessClaims("u" * 24, False, (), ("pwd",))
    tokens = [issuer.issue(claims) for _ in range(count)]
    started = time.perf_counter()
    for fresh in tokens:
        issuer.verify(fresh)
    first_us = (time.perf_counter() - started) / count * 1e6
    token = tokens[-1]
    started = time.perf_counter()
    for _ in range(count):
        issuer.verify(token)
    again_us = (time.perf_counter() - started) / count * 1e6
    signing_input = token.rsplit(".", 1)[0].encode()
    secret = issuer.keys.current.secret
    started = time.perf_counter()
    for _ in range(count):
        hmac.new(secret, signing_input, hashlib.sha256).digest()
    hmac_us = (time.perf_counter() - started) / count * 1e6
    return first_us, again_us, hmac_us


DENYLIST_SIZE = 1000


def _denylist_costs(root: Path, count: int) -> tuple[float, float]:
    """µs per request of ``verify_access`` (a token seen before, a denylist of
    :data:`DENYLIST_SIZE` uids) and of one account read from the SQLite auth store."""
    store = SqliteAuthStore(root / f"denylist-{uuid.uuid4().hex}.db")
    store.open()
    try:
        issuer = TokenIssuer(SigningKeys([SigningKeys.generate()]), "bench", 900)
        service = AuthService(store, issuer, Passwords(), 60)
        service.disabled = frozenset(f"d{i}" for i in range(DENYLIST_SIZE))
        store.create_account(Account("u" * 24, EMAIL, None, anonymous=False))
        token = issuer.issue(AccessClaims("u" * 24, False, (), ("pwd",)))
        service.verify_access(token)
        started = time.perf_counter()
        for _ in range(count):
            service.verify_access(token)
        denylist_us = (time.perf_counter() - started) / count * 1e6
        lookups = max(count // 20, 1)
        started = time.perf_counter()
        for _ in range(lookups):
            store.account("u" * 24)
        lookup_us = (time.perf_counter() - started) / lookups * 1e6
    finally:
        store.close()
    return denylist_us, lookup_us


class _Node:
    """One in-process node with a signed-up user."""

    def __init__(self, toml: str, root: Path, name: str) -> None:
        file = root / f"{name}.toml"
        file.write_text(toml)
        self.app = create_app(
            load_config(file, env={}, overrides={"data": root / name, "log_level": "warning"})
        )
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://node"
        )
        self.headers: dict[str, str] = {}

    async def start(self) -> None:
        self._lifespan = self.app.router.lifespan_context(self.app)
        await self._lifespan.__aenter__()
        signup = await self.client.post(
            "/v1/auth/signup", json={"email": EMAIL, "password": PASSWORD}
        )
        self.headers = {"Authorization": f"Bearer {signup.json()['access_token']}"}

    async def stop(self) -> None:
        await self.client.aclose()
        await self._lifespan.__aexit__(None, None, None)

    async def push(self, batches: int) -> float:
        """Docs per second for ``batches`` pushes of :data:`BATCH` new documents."""
        started = time.perf_counter()
        for _ in range(batches):
            mutations = [
                {
                    "mutation_id": uuid.uuid4().hex,
                    "collection": "notes",
                    "id": uuid.uuid4().hex,
                    "op": "set",
                    "data": {"title": "a note", "body": "x" * 200, "n": index},
                }
                for index in range(BATCH)
            ]
            response = await self.client.post(
                "/v1/sync/push", json={"mutations": mutations}, headers=self.headers
            )
            results = response.json()["results"]
            if response.status_code != 200 or results[0]["status"] != "applied":
                raise RuntimeError(f"push failed: {response.status_code} {response.text[:200]}")
        return batches * BATCH / (time.perf_counter() - started)

    async def pull_all(self) -> float:
        """Changes per second for reading the whole feed in pages of :data:`PULL_PAGE`."""
        cursor, total = "", 0
        started = time.perf_counter()
        while True:
            response = await self.client.get(
                "/v1/sync/pull",
                params={"cursor": cursor, "limit": PULL_PAGE, "collections": "notes"},
                headers=self.headers,
            )
            body = response.json()
            total += len(body["changes"])
            cursor = body["cursor"]
            if not body["has_more"]:
                break
        return total / (time.perf_counter() - started)


async def _rule_costs(root: Path, runs: int, batches: int) -> dict[str, float]:
    plain = _Node(WITHOUT_RULES, root, "without")
    ruled = _Node(WITH_RULES, root, "with")
    await plain.start()
    await ruled.start()
    figures: dict[str, list[float]] = {key: [] for key in ("push0", "push1", "pull0", "pull1")}
    try:
        for node in (plain, ruled):  # warm-up: imports, caches, the first SQLite pages
            await node.push(2)
            await node.pull_all()
        for run in range(runs):
            # Alternate which node goes first, so drift (other load, a growing file) is shared.
            order = [(0, plain), (1, ruled)] if run % 2 == 0 else [(1, ruled), (0, plain)]
            for index, node in order:
                figures[f"push{index}"].append(await node.push(batches))
            for index, node in order:
                figures[f"pull{index}"].append(await node.pull_all())
    finally:
        await plain.stop()
        await ruled.stop()
    return {key: median(values) for key, values in figures.items()}


async def run(
    runs: int, logins: int, batches: int, progress: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Every figure of the benchmark, medians of ``runs`` runs."""
    with tempfile.TemporaryDirectory(prefix="bw-bench-auth-") as tmp:
        root = Path(tmp)
        configure_logging("warning")
        login_rates, raw_rates, first, again, floor = [], [], [], [], []
        denied, lookups = [], []
        for index in range(runs):
            progress(f"sign-ins {index + 1}/{runs}")
            login_rate, raw_rate = await _logins(root, logins, concurrency=2)
            login_rates.append(login_rate)
            raw_rates.append(raw_rate)
            progress(f"token verification {index + 1}/{runs}")
            first_us, again_us, hmac_us = _verify_costs(20_000)
            first.append(first_us)
            again.append(again_us)
            floor.append(hmac_us)
            denylist_us, lookup_us = _denylist_costs(root, 20_000)
            denied.append(denylist_us)
            lookups.append(lookup_us)
        progress("push and pull with and without rules")
        rules = await _rule_costs(root, runs, batches)
    return {
        "benchmark": "auth",
        "runs": runs,
        "machine": machine(),
        "logins_per_s": round(median(login_rates), 1),
        "raw_argon2id_verifies_per_s": round(median(raw_rates), 1),
        "login_ratio_to_raw": round(median(login_rates) / median(raw_rates), 3),
        "token_verify_first_us": round(median(first), 2),
        "token_verify_again_us": round(median(again), 2),
        "hmac_sha256_us": round(median(floor), 2),
        "token_verify_with_denylist_us": round(median(denied), 2),
        "auth_store_lookup_us": round(median(lookups), 2),
        "push_docs_per_s_without_rules": round(rules["push0"]),
        "push_docs_per_s_with_rules": round(rules["push1"]),
        "push_ratio": round(rules["push1"] / rules["push0"], 3),
        "pull_changes_per_s_without_rules": round(rules["pull0"]),
        "pull_changes_per_s_with_rules": round(rules["pull1"]),
        "pull_ratio": round(rules["pull1"] / rules["pull0"], 3),
        "batch": BATCH,
        "pull_page": PULL_PAGE,
        "docs_per_run": batches * BATCH,
    }
