"""The two sync calls of the wire protocol (docs/protocol.md#push, #pull) over httpx.

Network errors, 5xx and 429 become :class:`EndpointUnavailable` (transient); other problem
answers become the core error of their ``type``. httpx's exceptions never leave this module.

With :class:`Credentials` (the SDK's ``client.auth``) a request refused with 401 is retried once
after the credentials renewed the token.

With a ``patience`` hook a request also gives up after the seconds it names (the routing's bound
when there is another region, ADR 0038), unless a health probe sent half way shows the
node alive; it then raises :class:`EndpointUnavailable` with ``waited``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Protocol, runtime_checkable

import httpx

from breakwater.client.errors import EndpointUnavailable, error_for_problem
from breakwater.core import codec
from breakwater.core.ascii import is_digits

HeadersProvider = Callable[[], Mapping[str, str] | Awaitable[Mapping[str, str]]]
Patience = Callable[[], float | None]
"""Seconds the next request may wait for its answer (``None``: the HTTP client's timeout)."""


@runtime_checkable
class Credentials(Protocol):
    """A headers provider that can also renew its token (``client.auth``)."""

    def __call__(self) -> Awaitable[Mapping[str, str]]: ...

    async def renew(self, used: Mapping[str, str]) -> bool:
        """After a 401 of a request sent with ``used``: whether a retry has a new token."""
        ...

    async def access_token(self) -> str | None:
        """The token to present now (refreshed when due)."""
        ...

    async def next_renewal(self) -> None:
        """Return when a stream should present a new token."""
        ...


async def auth_headers(provider: HeadersProvider | None) -> dict[str, str]:
    """Headers from the app's access-token hook (sync or async), or none."""
    if provider is None:
        return {}
    headers = provider()
    if inspect.isawaitable(headers):
        headers = await headers
    return dict(headers)


class NodeApi:
    """Push and pull against one endpoint; measures each call's latency for failover."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        headers: HeadersProvider | None = None,
        patience: Patience | None = None,
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self._headers = headers
        self._patience = patience
        self.last_latency = 0.0

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = await auth_headers(self._headers)
        response = await self._send(method, path, headers, **kwargs)
        credentials = self._headers if isinstance(self._headers, Credentials) else None
        # Once: a second 401 is the answer.
        if response.status_code == 401 and credentials and await credentials.renew(headers):
            headers = await auth_headers(self._headers)
            response = await self._send(method, path, headers, **kwargs)
        if 200 <= response.status_code < 300:
            if not response.content:
                return None
            try:
                return codec.loads(response.content)
            except codec.JSONDecodeError as exc:
                raise EndpointUnavailable(f"{self.base_url}: answer is not JSON") from exc
        try:
            problem = codec.loads(response.content)
        except codec.JSONDecodeError:
            problem = {}
        if not isinstance(problem, dict):
            problem = {}
        error = error_for_problem(response.status_code, problem)
        if isinstance(error, EndpointUnavailable):
            retry_after = response.headers.get("retry-after", "")
            error.retry_after = float(retry_after) if is_digits(retry_after) else None
        raise error

    async def _send(
        self, method: str, path: str, headers: dict[str, str], **kwargs: Any
    ) -> httpx.Response:
        if "content" in kwargs:
            headers = {**headers, "content-type": "application/json"}
        started = time.monotonic()
        limit = None if self._patience is None else self._patience()
        request = self.http.request(method, f"{self.base_url}{path}", headers=headers, **kwargs)
        try:
            if limit is None:
                response = await request
            else:
                response = await self._patiently(request, limit)
        except httpx.HTTPError as exc:
            raise EndpointUnavailable(f"{self.base_url}: {type(exc).__name__}: {exc}") from exc
        self.last_latency = time.monotonic() - started
        return response

    async def _patiently(
        self, request: Coroutine[Any, Any, httpx.Response], limit: float
    ) -> httpx.Response:
        """``request``, given up after ``limit`` seconds unless the node shows it is alive: half
        way, a ``GET /readyz`` goes out, and any answer to it (the node is slow, not gone) lets
        the request take its full timeout. A silent node answers neither, a stalled machine
        or a slow request on a live node answers the probe."""
        task = asyncio.ensure_future(request)
        try:
            done, _ = await asyncio.wait({task}, timeout=limit / 2)
            if not done and not await self._answers(task, limit / 2):
                task.cancel()
                raise EndpointUnavailable(
                    f"{self.base_url}: no answer within {limit:.2f} s", waited=limit
                )
            return await task
        finally:
            task.cancel()

    async def _answers(self, request: asyncio.Future[httpx.Response], within: float) -> bool:
        """Whether the node answers ``/readyz`` (any status) or ``request`` completes within
        ``within`` seconds."""
        probe = asyncio.ensure_future(self.http.get(f"{self.base_url}/readyz"))
        try:
            done, _ = await asyncio.wait(
                {request, probe}, timeout=within, return_when=asyncio.FIRST_COMPLETED
            )
            alive = probe in done and probe.exception() is None
            return alive or request in done
        finally:
            probe.cancel()

    async def post(self, path: str, body: dict[str, Any] | None) -> Any:
        """``POST`` a JSON body (or none); the decoded answer, ``None`` for an empty one."""
        content = b"" if body is None else codec.dumps(body)
        return await self._call("POST", path, content=content)

    async def get(self, path: str) -> Any:
        """``GET`` a JSON answer."""
        return await self._call("GET", path)

    async def push(self, mutations: list[dict[str, Any]]) -> dict[str, Any]:
        """``POST /v1/sync/push``: one result per mutation, in order, and the node's clock;
        asks for the applied states and ``stable`` too (a query parameter, which a node
        without it ignores), so the device can settle its writes without pulling them. No
        ``client_id``: the node does not use it, and the mutation ids name the device."""
        body = codec.dumps({"mutations": mutations})
        result: dict[str, Any] = await self._call(
            "POST",
            "/v1/sync/push",
            content=body,
            params={"include_state": "true"},
        )
        return result

    async def pull(
        self,
        cursor: str,
        limit: int,
        wait: float = 0,
        include_state: bool = True,
        collections: str | None = None,
    ) -> dict[str, Any]:
        """``GET /v1/sync/pull``: a page of changes after ``cursor`` (of ``collections`` only,
        comma-separated, when given)."""
        params: dict[str, Any] = {"cursor": cursor, "limit": limit}
        if collections is not None:
            params["collections"] = collections
        if wait:
            params["wait"] = wait
        if include_state:
            params["include_state"] = "true"
        extra: dict[str, Any] = {}
        if wait:
            # The node holds a long poll up to ``wait``: the read timeout counts on top of it.
            limits = self.http.timeout
            extra["timeout"] = httpx.Timeout(
                connect=limits.connect,
                read=wait + (limits.read or 0.0),
                write=limits.write,
                pool=limits.pool,
            )
        result: dict[str, Any] = await self._call("GET", "/v1/sync/pull", params=params, **extra)
        return result

    async def regions(self) -> dict[str, Any]:
        """``GET /v1/regions``: the deployment's region directory (docs/protocol.md)."""
        result: dict[str, Any] = await self._call("GET", "/v1/regions")
        return result

    async def ready(self) -> float:
        """``GET /readyz``; returns the round-trip time, raises when the node cannot serve."""
        await self._call("GET", "/readyz")
        return self.last_latency
